"""mpy/nanonn/int8/kernels_wide_viper.py is tools/gen_wide_kernel.py's output for today's
kernels_viper.py (`make kernels` writes it): its requantization cannot drift from
kernels_viper's, and its multiply-accumulate is the generator's."""

from __future__ import annotations

from support import load_tool


def test_wide_kernel_is_generated_from_kernels_viper(capsys):
    gen = load_tool("gen_wide_kernel")
    assert gen.main(["--check"]) == 0, capsys.readouterr().err
    text = gen.TARGET.read_text()
    # the generated dense keeps kernels_viper's requantization, word for word
    source = gen.SOURCE.read_text()
    requant = source[source.index(gen.END) + len(gen.END) : source.index("\n\n\n", source.index(gen.END))]
    assert requant in text


def test_check_names_a_stale_file(tmp_path, monkeypatch, capsys):
    gen = load_tool("gen_wide_kernel")
    stale = tmp_path / "kernels_wide_viper.py"
    stale.write_text("# stale\n")
    monkeypatch.setattr(gen, "TARGET", stale)
    assert gen.main(["--check"]) == 1
    assert "out of date: run make kernels" in capsys.readouterr().err

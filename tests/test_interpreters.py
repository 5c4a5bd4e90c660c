"""tools/interpreters.py: the board interpreters' build (the builds themselves are exercised by
the board tests: tests/test_device.py, tests/test_ports.py, tests/test_baremetal.py)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from support import ROOT, load_tool

interpreters = load_tool("interpreters")


def test_package_list_names_every_interpreters_packages():
    listed = set((ROOT / "tools" / "system-packages.txt").read_text().split())
    for name, interp in interpreters.INTERPRETERS.items():
        missing = set(interp.packages + interpreters.COMMON_PACKAGES) - listed
        assert not missing, "%s needs %s, not in tools/system-packages.txt" % (name, missing)


def test_missing_packages_are_named_with_the_command_that_installs_them(monkeypatch, tmp_path, capsys):
    fake = dataclasses.replace(
        interpreters.INTERPRETERS["x86-32"], name="fake", packages=("nanonn-no-such-package",)
    )
    monkeypatch.setitem(interpreters.INTERPRETERS, "fake", fake)
    monkeypatch.setattr(interpreters, "CACHE", tmp_path)
    assert interpreters.missing_packages("fake") == ["nanonn-no-such-package"]
    with pytest.raises(interpreters.InterpreterError, match="apt-get install -y nanonn-no-such-package"):
        interpreters.build("fake")
    monkeypatch.delenv("CI", raising=False)
    assert interpreters.main(["build", "fake", "--available"]) == 0
    assert "nanonn-no-such-package" in capsys.readouterr().err
    monkeypatch.setenv("CI", "true")
    assert interpreters.main(["build", "fake", "--available"]) == 1, "CI: a board that cannot be built fails"


def test_unknown_name_lists_the_interpreters():
    with pytest.raises(interpreters.InterpreterError, match="x86-32, armv6m, armv7m, cortex-m3, rv32imc"):
        interpreters.get("esp32")


@pytest.mark.boards  # builds the x86-32 interpreter when build/interpreters/ has none (`make interpreters`)
def test_a_current_build_is_reused_and_a_changed_input_rebuilds():
    """The key of a built interpreter covers every input: unchanged, build() returns at once."""
    name = "x86-32"
    if interpreters.missing_packages(name):
        pytest.skip("x86-32 cannot be built here: %s" % interpreters.missing_packages(name))
    binary = interpreters.build(name)
    stamp = binary.parent / "build.json"
    before = stamp.stat().st_mtime_ns
    assert interpreters.build(name) == binary and stamp.stat().st_mtime_ns == before
    key = json.loads(stamp.read_text())["key"]
    assert key == interpreters.build_key(interpreters.get(name))
    changed = dataclasses.replace(interpreters.get(name), cflags=interpreters.get(name).cflags + ("-DX=1",))
    assert interpreters.build_key(changed) != key, "a flag change must change the key"

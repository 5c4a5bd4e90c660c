"""The web page (examples/web) in a real headless browser: Debian's chromium driven by
playwright-core (examples/web/test_page.mjs; no browser download). The page runs nanonn
in MicroPython's WebAssembly port; digits drawn on it by pointer events must get the
classes and probabilities the unix port computes for the same 8x8 input, and the
training demo's loss must fall. Prints the page's sizes and times and where it saved the
screenshot (pytest's temporary folder: no test writes into the checkout)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from support import ROOT, WEB, node, run_device_json, wasm_runtime

pytestmark = pytest.mark.slow  # a browser: `make test` runs it, `make test-fast` not


def _chromium() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if path is None:
        message = "the page test needs a browser: the Debian package chromium (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; under CI `make test` installs it")
        pytest.skip(message + " is not installed")
    return path


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """The folder of the page's models (served as build/web/), its screenshot and figures:
    pytest's temporary folder (kept after the run for a look; never the checkout)."""
    return tmp_path_factory.mktemp("web")


@pytest.fixture(scope="module")
def page(out):
    chromium = _chromium()
    wasm_runtime()
    # the models as `make web` makes them (examples/web/make_models.py)
    subprocess.run(
        [sys.executable, str(WEB / "make_models.py"), "--out", str(out / "models")],
        check=True,
        capture_output=True,
    )
    server = subprocess.Popen(
        [sys.executable, str(WEB / "serve.py"), "--port", "0", "--models", str(out / "models")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split()[3]
        (out / "screenshot.png").unlink(missing_ok=True)
        proc = subprocess.run(
            [node(), str(WEB / "test_page.mjs"), url, str(out / "screenshot.png"), chromium],
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        server.terminate()
        server.wait(10)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["error"] is None, result
    return result


UNIX = r"""
import json, sys
from array import array
import nanonn
p = json.loads(sys.stdin.read())
out = {}
for name, file in (("float32", "digits_f32.nnm"), ("int8", "digits_int8.nnm")):
    net = nanonn.load(p["folder"] + "/" + file)
    out[name] = [list(net.predict(array("f", x))) for x in p["inputs"]]
print(json.dumps(out))
"""


def test_drawn_digits_classified_as_on_the_unix_port(page, out):
    drawings = page["drawings"]
    assert sorted(drawings) == ["0", "7"]
    inputs = [drawings[d]["pixels"] for d in sorted(drawings)]
    for pixels in inputs:
        assert len(pixels) == 64 and all(0 <= p <= 16 for p in pixels)
    unix = run_device_json("micropython", UNIX, {"folder": str(out / "models"), "inputs": inputs})
    for k, digit in enumerate(sorted(drawings)):
        for name in ("float32", "int8"):
            probs, top, us = drawings[digit]["result"][name]
            expected = unix[name][k]
            assert top == expected.index(max(expected)), (digit, name, probs, expected)
            if name == "int8":
                assert probs == expected  # the same int8 outputs, dequantized: the same floats
            else:
                assert probs == pytest.approx(expected, abs=1e-6)
            assert us > 0
            # the drawing rasterized as the data set was prepared: the model reads the digit drawn
            assert top == int(digit), (digit, name, drawings[digit]["pixels"])


def test_training_demo_loss_falls(page):
    losses = page["train"]["losses"]
    assert page["train"]["epochs"] == len(losses) >= 60
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.5 * first, (first, last)


def test_page_sizes_and_times(page, out, capsys):
    stats = page["stats"]
    wasm = wasm_runtime().with_name("micropython.wasm").stat().st_size
    assert stats["wasmBytes"] == wasm
    package = json.loads((ROOT / "package.json").read_text())["urls"]
    assert stats["packageFiles"] == len(package)
    assert stats["packageBytes"] == sum((ROOT / src).stat().st_size for _, src in package)
    assert (out / "screenshot.png").stat().st_size > 10000
    drawn = page["drawings"]
    us = {name: [drawn[d]["result"][name][2] for d in sorted(drawn)] for name in ("float32", "int8")}
    lines = [
        "web page (headless chromium, MicroPython WebAssembly %s):" % stats["micropython"],
        "  runtime micropython.wasm %d B; nanonn package %d files, %d B of .py; models %s"
        % (wasm, stats["packageFiles"], stats["packageBytes"], stats["modelBytes"]),
        "  first prediction %.0f ms after the page started (runtime %.0f ms, files %.0f ms, models %.0f ms, "
        "first predict call %.0f ms)"
        % (
            stats["readyMs"],
            stats["runtimeMs"],
            stats["filesMs"],
            stats["loadModelsMs"],
            stats["firstPredictionMs"],
        ),
        "  per inference in the page: float32 %s us, int8 %s us (the drawn 0 and 7)"
        % ("/".join("%.0f" % v for v in us["float32"]), "/".join("%.0f" % v for v in us["int8"])),
        "  training demo: %d epochs of 200 samples in %.1f s"
        % (page["train"]["epochs"], page["train"]["ms"] / 1000),
        "  screenshot: %s" % (out / "screenshot.png"),
    ]
    with capsys.disabled():  # printed in `make test`'s output too
        print("\n" + "\n".join(lines))
    (out / "measurements.txt").write_text("\n".join(lines) + "\n")

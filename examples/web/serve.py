"""Serve the repository on localhost for the web page (`make web`).

    python serve.py [--port 8000] [--models DIR]

The page (examples/web/index.html) fetches the device package as mip would install it
(the files the root package.json lists, under mpy/nanonn/), the models from build/web/
(or, with --models, from DIR served in its place: the test serves its own) and the
MicroPython WebAssembly runtime from examples/web/node_modules/: so the repository root
is served, on 127.0.0.1 only. Prints the page's URL (port 0: any free port) and serves
until interrupted.
"""

from __future__ import annotations

import argparse
import functools
import posixpath
import sys
import urllib.parse
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PAGE = "examples/web/"
MODELS = "/build/web/"  # where the page fetches its models (app.js)


class Handler(SimpleHTTPRequestHandler):
    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",
        ".js": "text/javascript",
        ".wasm": "application/wasm",
        ".nnm": "application/octet-stream",
        ".py": "text/plain; charset=utf-8",
    }

    models: Path | None = None  # --models: the folder served as MODELS

    def translate_path(self, path):
        url = urllib.parse.unquote(urllib.parse.urlsplit(path).path)
        if self.models is not None and url.startswith(MODELS):
            return str(self.models / posixpath.basename(url))  # a flat folder: no subpaths
        return super().translate_path(path)

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")  # edits show on reload
        super().end_headers()

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass  # quiet: the page reports its own errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--models", type=Path, help="serve this folder's models as build/web/")
    args = parser.parse_args(argv)
    handler_class = Handler
    if args.models is not None:
        handler_class = type("ModelsHandler", (Handler,), {"models": args.models.resolve()})
    handler = functools.partial(handler_class, directory=str(ROOT))
    with ThreadingHTTPServer(("127.0.0.1", args.port), handler) as server:
        print(
            "nanonn web demo: http://127.0.0.1:%d/%s  (Ctrl-C stops)" % (server.server_address[1], PAGE),
            flush=True,
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

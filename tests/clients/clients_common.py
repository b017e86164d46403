"""What the JavaScript client tests share: the pinned packages (a fixture), and a local web server for the pages.

(Not a conftest.py: ``from conftest import ...`` in this folder must keep reaching ``tests/conftest.py``.)"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import threading
from typing import Dict, Iterator

import pytest

JS_DIR = pathlib.Path(__file__).resolve().parent / "js"
PACKAGES = ("@tensorflow/tfjs", "@tensorflow-models/speech-commands")


def installed() -> bool:
    """Whether ``js/node_modules`` holds every pinned package."""
    return all((JS_DIR / "node_modules" / p / "package.json").is_file() for p in PACKAGES)


def pinned(package: str) -> str:
    """The version ``js/package.json`` pins ``package`` to."""
    return json.loads((JS_DIR / "package.json").read_text())["dependencies"][package]


@contextlib.contextmanager
def serve(folders: Dict[str, pathlib.Path]) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` serving each folder under ``/<name>/``, quietly, until the block ends."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    with tempfile.TemporaryDirectory() as root:
        for name, folder in folders.items():
            os.symlink(folder, os.path.join(root, name))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=root))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


@pytest.fixture(scope="session")
def node_modules() -> pathlib.Path:
    """``js/node_modules`` with the pinned packages, installed by ``npm ci`` if absent."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node/npm not found: TF.js runtime tests need Node.js >= 18 and npm")
    if not installed():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, capture_output=True, text=True, timeout=600
        )
        if done.returncode != 0 or not installed():
            pytest.skip(f"`npm ci` in {JS_DIR} failed, no node_modules: {done.stderr.strip()[-800:]}")
    return JS_DIR / "node_modules"

"""Third-party specs plug in through the ``model_maker.audio_specs`` entry-point group.

A tiny distribution is built as a wheel here, pip-installed into a temporary
folder, and put on ``sys.path``; ``model_spec.get`` must then find its spec by
name, exactly as an installed package's would be found.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile

import pytest

from mm_browserfft import model_spec
from mm_browserfft.errors import InvalidInputError

DIST, VERSION = "toy_audio_spec", "0.1.0"
TOY_MODULE = '''
class ToySpec:
    """A spec that only remembers how it was made."""

    target_sample_rate = 16000

    def __init__(self, **options):
        self.options = options


def make_quiet_spec(**options):
    return ToySpec(quiet=True, **options)
'''
ENTRY_POINTS = f"""[{model_spec.ENTRY_POINT_GROUP}]
toy_spec = {DIST}:ToySpec
toy_quiet = {DIST}:make_quiet_spec
audio_browser_fft = {DIST}:ToySpec
"""


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _build_wheel(folder) -> str:
    """Write ``toy_audio_spec-0.1.0-py3-none-any.whl`` (a package + .dist-info with entry_points.txt)."""
    info = f"{DIST}-{VERSION}.dist-info"
    files = {
        f"{DIST}/__init__.py": TOY_MODULE.encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {DIST}\nVersion: {VERSION}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test_plugin_entry_points\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": ENTRY_POINTS.encode(),
    }
    record = [_record_line(name, data) for name, data in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = folder / f"{DIST}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
    return str(path)


@pytest.fixture(scope="module")
def installed_toy(tmp_path_factory):
    """Folder that pip installed the toy distribution into (not yet on ``sys.path``)."""
    wheel = _build_wheel(tmp_path_factory.mktemp("wheel"))
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", str(target), wheel],
        check=True,
    )
    assert (target / f"{DIST}-{VERSION}.dist-info" / "entry_points.txt").is_file()
    return target


@pytest.fixture
def toy_on_path(installed_toy, monkeypatch):
    monkeypatch.syspath_prepend(str(installed_toy))
    yield
    sys.modules.pop(DIST, None)


def test_third_party_spec_is_unknown_until_installed(installed_toy):
    assert "toy_spec" not in model_spec.available()
    with pytest.raises(InvalidInputError, match="toy_spec"):
        model_spec.get("toy_spec")


def test_get_finds_an_installed_third_party_spec(toy_on_path):
    assert {"toy_spec", "toy_quiet", "audio_browser_fft"} <= set(model_spec.available())
    spec = model_spec.get("toy_spec", model_dir="/tmp/somewhere")
    assert type(spec).__module__ == DIST and type(spec).__name__ == "ToySpec"
    assert spec.options == {"model_dir": "/tmp/somewhere"}


def test_an_entry_point_may_name_a_factory(toy_on_path):
    spec = model_spec.get("toy_quiet")
    assert type(spec).__name__ == "ToySpec" and spec.options == {"quiet": True}


def test_our_own_names_win_over_a_third_party_claiming_them(toy_on_path):
    from mm_browserfft.spec import BrowserFftSpec

    assert isinstance(model_spec.get("audio_browser_fft"), BrowserFftSpec)

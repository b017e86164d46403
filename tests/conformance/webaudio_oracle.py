"""The WebAudio oracle: the browser's own spectrogram of a waveform, for conformance tests.

:func:`browser_spectrograms` renders each clip through a real Chromium
``OfflineAudioContext`` -> ``AnalyserNode`` (fftSize 2048, smoothingTimeConstant 0)
on ``analyser.html`` beside this file and reads ``getFloatFrequencyData`` after
every 1024 samples: 43 frames of the first 232 bins, in dB, what the TF.js
speech-commands recogniser sees. Frame ``t`` covers samples ``[1024 (t - 1), 1024 (t + 1))``
with zeros before the clip. Digital silence reads ``-inf``, as in the browser.

Needs Debian's ``chromium`` and ``chromium-driver`` and ``selenium`` (the test extra).
"""

from __future__ import annotations

import base64
import pathlib
import shutil
from typing import Iterator

import contextlib

import numpy as np

from mm_browserfft.frontend import NUM_BINS, NUM_FRAMES, WAVEFORM_LENGTH

__all__ = ["CHROMIUM", "CHROMEDRIVER", "missing", "browser", "browser_spectrograms"]

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PAGE = pathlib.Path(__file__).resolve().parent / "analyser.html"
_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
    "--autoplay-policy=no-user-gesture-required",
)  # fmt: skip
_BATCH = 8  # clips per script call (keeps each WebDriver message small)


def missing() -> str:
    """Why the oracle cannot run here ("" when it can)."""
    for binary in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(binary) is None:
            return f"{binary} is missing (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return ""


@contextlib.contextmanager
def browser() -> Iterator[object]:
    """A headless Chromium (selenium WebDriver) with the oracle page loaded."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in _FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_script_timeout(300)
        driver.get(PAGE.as_uri())
        if not driver.execute_script("return window.oracleReady === true"):
            raise RuntimeError(f"the oracle page did not load: {PAGE}")
        yield driver
    finally:
        driver.quit()


def browser_spectrograms(waves: np.ndarray, *, driver=None) -> np.ndarray:
    """The browser's dB spectrograms of clips at 44.1 kHz.

    Args:
      waves: float32 ``[n, 44032]`` samples in [-1, 1].
      driver: a WebDriver from :func:`browser` (one is started for this call when None).

    Returns:
      float32 ``[n, 43, 232]``: ``getFloatFrequencyData`` in dB, ``-inf`` for silent frames.
    """
    waves = np.ascontiguousarray(np.atleast_2d(waves), dtype="<f4")
    if waves.shape[1] != WAVEFORM_LENGTH:
        raise ValueError(f"expected clips of {WAVEFORM_LENGTH} samples, got shape {waves.shape}")
    if driver is None:
        with browser() as started:
            return browser_spectrograms(waves, driver=started)
    out = []
    for start in range(0, len(waves), _BATCH):
        batch = waves[start : start + _BATCH]
        encoded = base64.b64encode(batch.tobytes()).decode("ascii")
        result = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "window.renderSpectrograms(arguments[0], arguments[1]).then(done, (e) => done('error: ' + e));",
            encoded,
            len(batch),
        )
        if result.startswith("error: "):
            raise RuntimeError(f"the browser failed to render: {result[7:]}")
        out.append(np.frombuffer(base64.b64decode(result), "<f4").reshape(len(batch), NUM_FRAMES, NUM_BINS))
    return np.concatenate(out)

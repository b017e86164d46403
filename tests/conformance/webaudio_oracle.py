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
import contextlib
import pathlib
from typing import Iterator

import numpy as np

import chromium
from mm_browserfft.frontend import NUM_BINS, NUM_FRAMES, WAVEFORM_LENGTH

__all__ = ["missing", "browser", "browser_spectrograms"]

PAGE = pathlib.Path(__file__).resolve().parent / "analyser.html"
_BATCH = 8  # clips per script call (keeps each WebDriver message small)


def missing() -> str:
    """Why the oracle cannot run here ("" when it can)."""
    return chromium.missing()


@contextlib.contextmanager
def browser() -> Iterator[object]:
    """A headless Chromium (selenium WebDriver) with the oracle page loaded."""
    with chromium.driver(extra_flags=["--autoplay-policy=no-user-gesture-required"], script_timeout_s=300) as driver:
        driver.get(PAGE.as_uri())
        if not driver.execute_script("return window.oracleReady === true"):
            raise RuntimeError(f"the oracle page did not load: {PAGE}")
        yield driver


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

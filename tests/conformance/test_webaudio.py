"""Conformance: ``spectrogram(mode="browser")`` against Chromium's own AnalyserNode.

The oracle (``../shared/tools/webaudio/oracle.py`` from the repository root) renders
each clip through a real ``OfflineAudioContext`` -> ``AnalyserNode`` and reads
``getFloatFrequencyData`` every 1024 samples. Chromium's FFT (PFFFT) works in float32,
our reference in float64, so the two differ by float32 FFT rounding, an absolute
error in |X| proportional to the frame's energy. Measured on the clips below
(Chromium 14x, x86-64):

* every bin within 75 dB of its frame's energy agrees within 1e-3 dB
  (max 4.8e-4 dB; the first bin over 1e-3 dB sits 78 dB below its frame);
* every finite bin satisfies ``| |X_ours| - |X_chromium| | <= k eps ||X_frame||`` with
  measured k = 5.2 (float32 eps; ``||X_frame||`` the frame's spectral norm), i.e. the
  only disagreement is rounding: 0.12 dB on bins 140 dB below their frame.

Modelling Chromium closer changed none of these numbers: neither the window product
rounded to float32 before a float64 FFT, nor a float32 NumPy FFT, nor an operation-by-
operation NumPy replay of PFFFT (bit-identical to PFFFT's C source compiled here, SSE and
scalar builds): Chromium 156 matches that replay no better than exact arithmetic, so the
deep bins' rounding noise cannot be reproduced from the published source (docs/frontend.md).
"""

from __future__ import annotations

import importlib.util
import pathlib
import shutil

import numpy as np
import pytest

from mm_browserfft import frontend as fe
from mm_browserfft.audio import load_audio

pytestmark = pytest.mark.browser

REPO = pathlib.Path(__file__).resolve().parents[2]
ORACLE = REPO.parent / "shared" / "tools" / "webaudio" / "oracle.py"
DATA = REPO.parent / "shared" / "data" / "speech_commands"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

NEAR_FRAME_DB = 75.0  # bins this close to their frame's energy must agree within TOLERANCE_DB
TOLERANCE_DB = 1e-3
ROUNDING_K = 16.0  # measured 5.2; a wrong window or framing gives k in the thousands


def _missing() -> str:
    if not ORACLE.is_file():
        return f"the WebAudio oracle is not at {ORACLE}"
    for binary in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(binary) is None:
            return f"{binary} is missing (apt-get install chromium chromium-driver)"
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install selenium)"
    return ""


if _missing():
    pytest.skip(_missing(), allow_module_level=True)


def _load_oracle():
    spec = importlib.util.spec_from_file_location("webaudio_oracle", ORACLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fit(waveform: np.ndarray) -> np.ndarray:
    out = np.zeros(fe.WAVEFORM_LENGTH, np.float32)
    out[: min(fe.WAVEFORM_LENGTH, waveform.size)] = waveform[: fe.WAVEFORM_LENGTH]
    return out


def _clips() -> dict:
    """Real speech plus synthetic signals, ``name -> float32 [44032]`` at 44.1 kHz."""
    rng = np.random.default_rng(7)
    n = fe.WAVEFORM_LENGTH
    t = np.arange(n) / fe.SAMPLE_RATE
    files = sorted(DATA.glob("*/*.flac"))
    clips = {f"speech:{f.parent.name}/{f.name}": _fit(load_audio(f)) for f in files[:: max(1, len(files) // 10)][:10]}
    # Tones and chirps get a noise floor at about -60 dB: without it most of their bins lie
    # 150+ dB below the frame, where both FFTs return their own float32 rounding noise and
    # the comparison would test nothing but rounding.
    floor = 1e-3 * rng.standard_normal(n)
    pink = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) / np.sqrt(np.maximum(np.arange(n // 2 + 1), 1)), n)
    clips.update(
        {
            "white_noise": 0.3 * rng.standard_normal(n),
            "pink_noise": 0.5 * pink / np.abs(pink).max(),
            "tone_1kHz": 0.5 * np.sin(2 * np.pi * 1000 * t) + floor,
            "tone_on_bin_100": 0.9 * np.sin(2 * np.pi * 100 * np.arange(n) / fe.FFT_SIZE) + floor,
            "chirp_100Hz_4kHz": 0.5 * np.sin(2 * np.pi * (100 * t + 2000 * t**2)) + floor,
        }
    )
    speech = next(iter(clips.values()))
    padded = speech.copy()
    padded[:5000] = 0.0  # frames 0-3 are all zero: the browser says -inf
    padded[-8000:] = 0.0  # frames 37-42 too
    clips["silence_padded_speech"] = padded
    return {name: np.asarray(x, np.float32) for name, x in clips.items()}


@pytest.fixture(scope="module")
def measured():
    if not DATA.is_dir():
        pytest.skip(f"no Speech Commands clips under {DATA}")
    clips = _clips()
    waves = np.stack(list(clips.values()))
    browser = _load_oracle().browser_spectrograms(waves).astype(np.float64)  # one browser session
    # JavaScript's -Infinity comes back through WebDriver's JSON as null -> NaN
    browser[np.isnan(browser)] = -np.inf
    return list(clips), waves, browser


def _frame_norm_db(waves: np.ndarray) -> np.ndarray:
    """Spectral norm of each windowed frame in the browser's dB scale, ``[n, 43, 1]``."""
    frames = fe.frame_waveform(waves).astype(np.float64) * fe.blackman_window(float32_taps=False)
    power = np.sum(np.abs(np.fft.rfft(frames, axis=-1)) ** 2, axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        return 10 * np.log10(power) - 20 * np.log10(fe.FFT_SIZE)


def test_silent_frames_are_minus_inf_in_the_browser_and_the_floor_here(measured):
    names, waves, browser = measured
    ours = fe.spectrogram(waves, mode="browser")[..., 0].astype(np.float64)
    silent = np.all(fe.frame_waveform(waves) == 0, axis=-1)  # [n, 43]
    i = names.index("silence_padded_speech")
    assert silent[i].sum() == 10
    assert np.all(np.isneginf(browser[silent])) and np.all(np.isfinite(browser[~silent]))
    floor_db = 10 * np.log10(fe.POWER_FLOOR) - 20 * np.log10(fe.FFT_SIZE)
    np.testing.assert_allclose(ours[silent], floor_db, atol=1e-3)


def test_bins_near_their_frame_energy_agree_within_1e_3_db(measured):
    names, waves, browser = measured
    ours = fe.spectrogram(waves, mode="browser")[..., 0].astype(np.float64)
    near = np.isfinite(browser) & (ours >= _frame_norm_db(waves) - NEAR_FRAME_DB)
    diff = np.abs(ours - browser)
    assert near.mean() > 0.7  # measured 0.80: most bins are tested at 1e-3 dB
    for i, name in enumerate(names):
        assert near[i].sum() >= 4 * fe.NUM_FRAMES, name  # tones: their noise floor sits 85-93 dB below the frame
        worst = diff[i][near[i]].max()
        assert worst <= TOLERANCE_DB, f"{name}: {worst:.2e} dB"


def test_every_finite_bin_differs_by_float32_rounding_only(measured):
    names, waves, browser = measured
    ours = fe.spectrogram(waves, mode="browser")[..., 0].astype(np.float64)
    finite = np.isfinite(browser)
    norm = 10 ** (_frame_norm_db(waves) / 20)
    with np.errstate(divide="ignore", invalid="ignore"):  # silent frames have norm 0 (and no finite bin)
        k = np.abs(10 ** (ours / 20) - 10 ** (browser / 20)) / norm / np.finfo(np.float32).eps
    for i, name in enumerate(names):
        assert k[i][finite[i]].max() <= ROUNDING_K, f"{name}: k = {k[i][finite[i]].max():.1f}"

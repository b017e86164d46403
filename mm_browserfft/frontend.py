"""The browser-FFT spectrogram: what TF.js speech-commands models take as input.

One set of constants, two implementations that agree:

* :func:`spectrogram` -- the NumPy reference (float64 arithmetic on float32 frames);
* :class:`mm_browserfft.layers.BrowserFftLayer` -- a Keras layer for the serving model,
  usable under Keras 3 and Keras 2 (tf-keras). When TensorFlow runs it (``predict``)
  it computes in float64 and equals the reference to float32 output rounding.
  Traced inside :func:`float32_graph` (as :mod:`mm_browserfft.export` and the
  training input pipeline do) it builds a float32 graph of TFLite builtin ops only
  (PAD, RESHAPE, CONCATENATION, MUL, RFFT2D, REAL, IMAG, LOG, MEAN, ...); LiteRT
  computes RFFT2D in double internally, and the ``.tflite`` agrees with the
  reference within 5e-3 (z units; 99.9th percentile 3e-5) on real speech. TensorFlow's
  float32 FFT is less exact: its rounding reached 7e-4 on bins 80-90 dB under a clip's
  loudest bin. The SavedModel export traces this graph too (convertible to TFLite).

Two output modes:

``"model_maker"`` (default)
    What Model Maker's ``sc_preproc_model`` and Teachable Machine TFLite models
    compute: 1024 zeros in front of the 44032-sample clip, 43 frames of 2048
    samples with hop 1024 (frame ``t`` covers samples ``[1024 (t-1), 1024 (t+1))``),
    a periodic Blackman window whose taps are evaluated in float32, a real FFT,
    bins 0..231, the natural log of the magnitude, and a z-score over the whole
    43 x 232 plane: ``(x - mean) / (std + STD_EPSILON)``.

``"browser"``
    The same frames in decibels, ``20 log10(|X| / 2048)``, exactly what WebAudio's
    ``AnalyserNode.getFloatFrequencyData`` returns (fftSize 2048, smoothing 0).

Empty bins (a deliberate, documented departure from Model Maker). Model Maker's
preprocessing takes the log of exact zeros: a clip whose first 1024 samples are
digital silence becomes an all-NaN spectrogram. The browser reports ``-inf`` for
the same bins. Here a bin is *empty* when its power ``|X|^2`` is below
:data:`POWER_FLOOR` (the smallest normal float32: digital silence, underflow) or
:data:`EMPTY_RANGE_DB` = 300 dB or more under the clip's loudest bin. No recording
holds a sound there (16-bit audio spans 96 dB, 24-bit 144 dB); what does lie there is
digital silence and the ringing of a resampler into it (samples of 1e-18 and less,
where the browser's own values are not those of its formula either). Every other
bin is the browser's own log magnitude, however quiet: rounding in an FFT is
relative to each frame's energy, so a quiet frame is as accurate as a loud one.

* Model Maker mode: empty bins take the value of the quietest non-empty bin of
  the clip, then the whole 43 x 232 plane is z-scored. A clip with no empty bin
  is exactly the z-score of the browser's log magnitude; leading, inner or
  trailing silence reads as the quietest sound the clip holds; an all-zero clip
  (every bin empty) z-scores to all zeros. The rule is relative to the clip, so the
  z-scores are invariant to gain (as long as the gain moves no bin under the float32
  underflow).
* Browser mode: empty bins read :data:`POWER_FLOOR`, ``-445.6`` dB where the
  browser reports ``-inf``; every other bin is its formula's value.

``STD_EPSILON`` is 1e-7, TF.js's float32 backend epsilon that the browser
recognizer adds in ``normalize``. It only matters for (near-)constant planes.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator, Literal

import numpy as np

__all__ = [
    "SAMPLE_RATE",
    "WAVEFORM_LENGTH",
    "FFT_SIZE",
    "HOP_LENGTH",
    "NUM_FRAMES",
    "NUM_BINS",
    "SPECTROGRAM_SHAPE",
    "STD_EPSILON",
    "POWER_FLOOR",
    "EMPTY_RANGE_DB",
    "Mode",
    "blackman_window",
    "frame_waveform",
    "spectrogram",
    "float32_graph",
    "is_float32_graph",
]

SAMPLE_RATE = 44100
"""Hz; the AudioContext rate of the speech-commands recognizer."""
FFT_SIZE = 2048
"""Samples per frame (``AnalyserNode.fftSize``)."""
HOP_LENGTH = 1024
"""Samples between frames (one recognizer tick)."""
NUM_FRAMES = 43
"""Frames per spectrogram."""
NUM_BINS = 232
"""Frequency bins kept, 0..231 (0 to 4974 Hz at 21.533 Hz per bin)."""
WAVEFORM_LENGTH = NUM_FRAMES * HOP_LENGTH
"""44032 samples at 44.1 kHz (0.998 s): the model's input length."""
SPECTROGRAM_SHAPE = (NUM_FRAMES, NUM_BINS, 1)
"""Shape of one spectrogram, without the batch axis."""
STD_EPSILON = 1e-7
"""Added to the plane's standard deviation before dividing (TF.js's float32 epsilon)."""
POWER_FLOOR = float(np.finfo(np.float32).tiny)
"""A bin whose power |X|^2 is below this (the smallest normal float32, 1.1754944e-38) is empty."""
EMPTY_RANGE_DB = 300.0
"""Model Maker mode: a bin this far or further under the clip's loudest bin is empty too."""

Mode = Literal["model_maker", "browser"]
_MODES = ("model_maker", "browser")
_DB_PER_NEPER = 20.0 / np.log(10.0)  # 20 log10(m) == _DB_PER_NEPER * ln(m)


def blackman_window(*, float32_taps: bool = True) -> np.ndarray:
    """The periodic Blackman window, alpha 0.16, N = 2048.

    ``w[n] = a0 - a1 cos(2 pi n / N) + a2 cos(4 pi n / N)`` with ``a0 = (1 - alpha) / 2``,
    ``a1 = 1 / 2``, ``a2 = alpha / 2``.

    Args:
      float32_taps: evaluate the formula in float32 arithmetic, as the TF graph of
        ``sc_preproc_model`` stores it (tap 0 is +1.4901161e-8, not 0); otherwise
        evaluate in float64, as the browsers' AnalyserNode does.

    Returns:
      array ``[2048]``, float32 or float64.
    """
    dtype = np.float32 if float32_taps else np.float64
    alpha = dtype(0.16)
    a0, a1, a2 = (dtype(1) - alpha) / dtype(2), dtype(0.5), alpha / dtype(2)
    phase = dtype(2.0 * np.pi) * np.arange(FFT_SIZE, dtype=dtype) / dtype(FFT_SIZE)
    return (a0 - a1 * np.cos(phase) + a2 * np.cos(dtype(2) * phase)).astype(dtype)


def _check_mode(mode: str) -> None:
    if mode not in _MODES:
        from .errors import InvalidInputError

        raise InvalidInputError(f"mode must be one of {_MODES}, got {mode!r}")


def frame_waveform(waveform: np.ndarray) -> np.ndarray:
    """Cut clips into the 43 overlapping frames the analyser sees.

    Frame ``t`` covers samples ``[1024 (t - 1), 1024 (t + 1))`` of the clip, with
    zeros before sample 0 (the analyser's buffer before playback starts).

    Args:
      waveform: float array ``[..., 44032]`` (samples at 44.1 kHz, in [-1, 1]).

    Returns:
      float32 array ``[..., 43, 2048]``.
    """
    from .errors import InvalidInputError

    x = np.asarray(waveform, dtype=np.float32)
    if x.shape[-1:] != (WAVEFORM_LENGTH,):
        raise InvalidInputError(
            f"expected waveforms of {WAVEFORM_LENGTH} samples on the last axis, got shape {x.shape}"
        )
    pad = [(0, 0)] * (x.ndim - 1) + [(HOP_LENGTH, 0)]
    blocks = np.pad(x, pad).reshape(*x.shape[:-1], NUM_FRAMES + 1, HOP_LENGTH)
    return np.concatenate([blocks[..., :-1, :], blocks[..., 1:, :]], axis=-1)


def _log_magnitude(power: np.ndarray, mode: str) -> np.ndarray:
    """``ln|X|`` ``[..., 43, 232]`` of powers ``|X|^2``, empty bins filled as the module docstring says."""
    log_mag = 0.5 * np.log(np.maximum(power, POWER_FLOOR))
    if mode == "browser":
        return log_mag
    peak = power.max(axis=(-2, -1), keepdims=True)
    empty = power < np.maximum(POWER_FLOOR, peak * 10.0 ** (-EMPTY_RANGE_DB / 10.0))
    # the quietest non-empty bin of each clip; 0 where a clip has none (the plane is then constant)
    quietest = np.where(empty, np.inf, log_mag).min(axis=(-2, -1), keepdims=True)
    quietest = np.where(np.isfinite(quietest), quietest, 0.0)
    return np.where(empty, quietest, log_mag)


def spectrogram(waveform: np.ndarray, *, mode: Mode = "model_maker") -> np.ndarray:
    """The NumPy reference of the browser-FFT spectrogram.

    Args:
      waveform: float array ``[44032]`` or ``[batch, 44032]``, 44.1 kHz samples.
      mode: ``"model_maker"`` for z-scored natural-log magnitudes (the model's
        input), ``"browser"`` for dB values as ``getFloatFrequencyData`` returns.

    Returns:
      float32 array ``[43, 232, 1]`` (or ``[batch, 43, 232, 1]``): z-scores in
      ``"model_maker"`` mode, dB in ``"browser"`` mode. Always finite for finite input.
    """
    _check_mode(mode)
    window = blackman_window(float32_taps=mode == "model_maker")
    frames = frame_waveform(waveform).astype(np.float64) * window
    spectrum = np.fft.rfft(frames, axis=-1)[..., :NUM_BINS]
    log_mag = _log_magnitude(spectrum.real**2 + spectrum.imag**2, mode)
    if mode == "browser":
        out = _DB_PER_NEPER * (log_mag - np.log(FFT_SIZE))
    else:
        mean = log_mag.mean(axis=(-2, -1), keepdims=True)
        std = log_mag.std(axis=(-2, -1), keepdims=True)
        out = (log_mag - mean) / (std + STD_EPSILON)
    return out[..., np.newaxis].astype(np.float32)


_FLOAT32_GRAPH = contextvars.ContextVar("mm_browserfft_float32_graph", default=False)


@contextlib.contextmanager
def float32_graph() -> Iterator[None]:
    """Trace :class:`~mm_browserfft.layers.BrowserFftLayer` as TFLite runs it: float32, builtin ops only.

    Outside this context the layer computes in float64 (``tf.signal.rfft`` on float64
    is neither a TFLite builtin nor a Flex op). Wrap the tracing of a serving model
    for conversion in it; :func:`mm_browserfft.export.convert_to_tflite` does::

        with frontend.float32_graph():
            concrete = serve.get_concrete_function()

    ``BrowserFftSpec.featurize`` (the training input pipeline) uses it too: inside
    ``tf.data`` the float64 graph measured 376 MB more peak memory on 20,000 clips
    (0.38 GB over 1.48 GB), so training features come from the float32 graph
    (TensorFlow's float32 FFT, whose rounding shows on the quietest bins; the exported
    model's RFFT2D computes in double).

    The graph is fixed when traced: a function traced inside keeps float32 after
    the context exits.
    """
    token = _FLOAT32_GRAPH.set(True)
    try:
        yield
    finally:
        _FLOAT32_GRAPH.reset(token)


def is_float32_graph() -> bool:
    """Whether :func:`float32_graph` is active here (the layer reads it when traced)."""
    return _FLOAT32_GRAPH.get()

"""The browser-FFT spectrogram: what TF.js speech-commands models take as input.

One set of constants, two implementations that agree:

* :func:`spectrogram` -- the NumPy reference (float64 arithmetic on float32 frames);
* :class:`BrowserFftLayer` -- a Keras layer for the serving model, usable under
  Keras 3 and Keras 2 (tf-keras). When TensorFlow runs it (``predict``, SavedModel)
  it computes in float64 and equals the reference to float32 output rounding.
  Traced inside :func:`float32_graph` (as :mod:`mm_browserfft.export` and the
  training input pipeline do) it builds a float32 graph of TFLite builtin ops only
  (PAD, RESHAPE, CONCATENATION, MUL, RFFT2D, REAL, IMAG, LOG, MEAN, ...); LiteRT
  computes RFFT2D in double internally, and the ``.tflite`` agrees with the
  reference within 1e-4 (z units). TensorFlow's float32 FFT does not: its rounding
  reaches 7e-4 on bins 80-90 dB under a clip's loudest bin.

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
    "BrowserFftLayer",
    "float32_graph",
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
_MIN_SCALE_EXPONENT = -100.0  # the Keras layer scales a clip by 2**floor(log2(peak |sample|)), at least 2**-100
# Every constant of the Keras graph is representable in float16 (a float16 .tflite stores them so):
# thresholds are compared in the log domain, and nothing is smaller than 6e-5 or larger than 6e4.
_LN_EMPTY_MAGNITUDE = 0.5 * float(np.log(POWER_FLOOR))  # ln sqrt(POWER_FLOOR) = -43.67
_LN_EMPTY_RANGE = EMPTY_RANGE_DB / _DB_PER_NEPER  # 300 dB = 34.54 nepers
_NO_VALUE = 1e4  # larger than any log magnitude the graph computes


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
    """Trace :class:`BrowserFftLayer` as TFLite runs it: float32, builtin ops only.

    Outside this context the layer computes in float64 (``tf.signal.rfft`` on float64
    is neither a TFLite builtin nor a Flex op). Wrap the tracing of a serving model
    for conversion in it; :func:`mm_browserfft.export.convert_to_tflite` does::

        with frontend.float32_graph():
            concrete = serve.get_concrete_function()

    ``BrowserFftSpec.featurize`` (the training input pipeline) uses it too: inside
    ``tf.data`` the float64 graph measured 376 MB more peak memory on 20,000 clips
    (0.38 GB over 1.48 GB), so training features come from the float32 graph: within
    1e-3 z of the reference (TensorFlow's float32 FFT; 3e-4 to 7e-4 on rare bins
    80-90 dB under a clip's loudest bin), where the exported model is within 1e-4.

    The graph is fixed when traced: a function traced inside keeps float32 after
    the context exits.
    """
    token = _FLOAT32_GRAPH.set(True)
    try:
        yield
    finally:
        _FLOAT32_GRAPH.reset(token)


def _keras():
    """The Keras that ``tf.keras`` resolves to (Keras 3, or Keras 2 / tf-keras)."""
    import tensorflow as tf

    return tf.keras


def _make_layer_class():
    import tensorflow as tf

    keras = _keras()

    class BrowserFftLayer(keras.layers.Layer):
        """Keras layer: waveform ``[batch, 44032]`` -> spectrogram ``[batch, 43, 232, 1]``.

        The graph equals :func:`spectrogram` (same framing, window, floor and
        normalisation): float64 arithmetic when TensorFlow runs it, float32 builtin
        TFLite ops when traced inside :func:`float32_graph`. Output is float32.

        Args:
          mode: ``"model_maker"`` (z-scored ln|X|) or ``"browser"`` (dB).
          name: the layer's name.
        """

        def __init__(self, *, mode: Mode = "model_maker", name: str = "browser_fft", **kwargs):
            _check_mode(mode)
            kwargs.setdefault("trainable", False)
            super().__init__(name=name, **kwargs)
            self.mode = mode
            self._window = blackman_window(float32_taps=mode == "model_maker")

        def call(self, waveform):
            # float64 arithmetic when TensorFlow runs the layer; float32 (TFLite builtins)
            # while a graph is traced for conversion under float32_graph().
            dtype = tf.float32 if _FLOAT32_GRAPH.get() else tf.float64

            def const(value):
                return tf.constant(value, dtype)

            x = tf.reshape(tf.cast(waveform, tf.float32), [-1, WAVEFORM_LENGTH])
            # Work on the clip divided by the power of two at or below its peak sample (an
            # exact division, added back in the log domain), so the squared magnitudes below
            # cannot overflow float32 for any finite input. Scaling and framing are exact in
            # float32; the arithmetic starts with the window.
            peak_sample = tf.reduce_max(tf.abs(x), axis=1, keepdims=True)
            exponent = tf.maximum(tf.floor(tf.math.log(peak_sample) * np.float32(1.0 / np.log(2.0))), _MIN_SCALE_EXPONENT)
            scale = tf.pow(np.float32(2.0), exponent)
            x = tf.pad(x / scale, [[0, 0], [HOP_LENGTH, 0]])
            blocks = tf.reshape(x, [-1, NUM_FRAMES + 1, HOP_LENGTH])
            frames = tf.concat([blocks[:, :-1, :], blocks[:, 1:, :]], axis=-1)
            frames = tf.cast(frames, dtype) * const(self._window)
            spectrum = tf.signal.rfft(frames, fft_length=[FFT_SIZE])
            if dtype != tf.float32:
                spectrum = spectrum[:, :, :NUM_BINS]  # TensorFlow slices complex tensors cheaply
            # Keep 232 of 1025 bins before the magnitude. Slicing the complex tensor itself
            # would be a Flex op in TFLite; REAL and IMAG are builtins.
            real = tf.math.real(spectrum)[:, :, :NUM_BINS]
            imag = tf.math.imag(spectrum)[:, :, :NUM_BINS]
            ln_scale = tf.cast(exponent * np.float32(np.log(2.0)), dtype)[:, :, tf.newaxis]  # [batch, 1, 1]
            # ln(|X| / scale), |X|^2 / scale^2 held at or over 2**-126 (POWER_FLOOR, made at run time:
            # a float16 model could not store it) so that no value is -inf, not even for calibration
            tiny = tf.pow(const(2.0), const(-126.0))
            ln_mag = 0.5 * tf.math.log(tf.maximum(real * real + imag * imag, tiny))
            # Empty bins: |X|^2 < POWER_FLOOR on the unscaled clip (compared in the log domain), or
            # EMPTY_RANGE_DB under the loudest bin (Model Maker mode). The loudest bin of a clip scaled
            # to a peak sample in [1, 2) is at least ln 0.34, so the held bins above are always empty.
            empty_below = const(_LN_EMPTY_MAGNITUDE) - ln_scale
            if self.mode == "browser":
                log_mag = tf.maximum(ln_mag, empty_below) + ln_scale
                out = const(_DB_PER_NEPER) * (log_mag - const(np.log(FFT_SIZE)))
            else:  # the scale cancels in the z-score
                peak = tf.reduce_max(ln_mag, axis=[1, 2], keepdims=True)
                empty = ln_mag < tf.maximum(empty_below, peak - const(_LN_EMPTY_RANGE))
                # the quietest non-empty bin; 0 where there is none (the plane is then constant)
                quietest = tf.reduce_min(tf.where(empty, const(_NO_VALUE), ln_mag), axis=[1, 2], keepdims=True)
                quietest = tf.where(quietest < const(_NO_VALUE), quietest, const(0.0))
                log_mag = tf.where(empty, quietest, ln_mag)
                mean = tf.reduce_mean(log_mag, axis=[1, 2], keepdims=True)
                centred = log_mag - mean
                std = tf.sqrt(tf.reduce_mean(tf.square(centred), axis=[1, 2], keepdims=True))
                out = centred / (std + const(STD_EPSILON))
            return tf.expand_dims(tf.cast(out, tf.float32), -1)

        def compute_output_shape(self, input_shape):
            return (input_shape[0],) + SPECTROGRAM_SHAPE

        def get_config(self):
            config = super().get_config()
            config.update({"mode": self.mode})
            return config

    return BrowserFftLayer


_LAYER_CLASSES: dict = {}


def __getattr__(name: str):
    """Build :class:`BrowserFftLayer` lazily, so importing this module needs no TensorFlow."""
    if name == "BrowserFftLayer":
        keras = _keras()
        key = id(keras)
        if key not in _LAYER_CLASSES:
            _LAYER_CLASSES[key] = _make_layer_class()
        return _LAYER_CLASSES[key]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

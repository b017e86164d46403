"""The browser-FFT front end as Keras layers (inside every serving and exported model).

:class:`NoiseFloorLayer` adds the fixed noise floor (:func:`mm_browserfft.audio.noise_floor`)
that inference puts under every window; :class:`BrowserFftLayer` computes
:func:`mm_browserfft.frontend.spectrogram` with TensorFlow ops. Both are registered for
Keras serialization (``mm_browserfft>NoiseFloorLayer``, ``mm_browserfft>BrowserFftLayer``).
The front end builds one of two graphs of the same formula: float64 arithmetic when TensorFlow
runs it (``predict``), equal to the NumPy reference; float32 TFLite builtin ops when
traced inside :func:`mm_browserfft.frontend.float32_graph` (TFLite and SavedModel
export, the training input pipeline). Whatever the Keras dtype policy (``mixed_float16``
included), its input and output are float32: the layer's own policy is float32.

Importing this module imports TensorFlow; :mod:`mm_browserfft.frontend` does not.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .audio import NOISE_FLOOR_PERIOD, noise_floor
from .frontend import (
    _DB_PER_NEPER,
    EMPTY_RANGE_DB,
    FFT_SIZE,
    HOP_LENGTH,
    NUM_BINS,
    NUM_FRAMES,
    POWER_FLOOR,
    SPECTROGRAM_SHAPE,
    STD_EPSILON,
    WAVEFORM_LENGTH,
    Mode,
    _check_mode,
    blackman_window,
    is_float32_graph,
)

__all__ = ["BrowserFftLayer", "NoiseFloorLayer"]

_MIN_SCALE_EXPONENT = -100.0  # a clip is scaled by 2**floor(log2(peak |sample|)), at least 2**-100
# Every constant of the graph is representable in float16 (a float16 .tflite stores them so):
# thresholds are compared in the log domain, and nothing is smaller than 6e-5 or larger than 6e4.
_LN_EMPTY_MAGNITUDE = 0.5 * float(np.log(POWER_FLOOR))  # ln sqrt(POWER_FLOOR) = -43.67
_LN_EMPTY_RANGE = EMPTY_RANGE_DB / _DB_PER_NEPER  # 300 dB = 34.54 nepers
_NO_VALUE = 1e4  # larger than any log magnitude the graph computes


@tf.keras.utils.register_keras_serializable(package="mm_browserfft")
class NoiseFloorLayer(tf.keras.layers.Layer):
    """Keras layer: waveform ``[batch, 44032]`` -> the same plus :func:`~mm_browserfft.audio.noise_floor`, float32.

    The serving model's first layer: every window gets the same faint noise (standard deviation
    1e-5), as training gave it fresh noise of that level, so that digital silence never reaches
    the front end and predictions are deterministic.

    Args:
      seed: which draw of the floor (:func:`~mm_browserfft.audio.noise_floor`).
      name: the layer's name.
    """

    def __init__(self, *, seed: int = 0, name: str = "noise_floor", **kwargs):
        kwargs.setdefault("trainable", False)
        kwargs["dtype"] = "float32"
        super().__init__(name=name, **kwargs)
        self.seed = int(seed)
        self._period = noise_floor(seed=self.seed)[:NOISE_FLOOR_PERIOD]

    def call(self, waveform):
        # One period is the graph's constant (11 KB), tiled at run time. The one exception to the
        # float16 rule above: a float16 .tflite stores its values (about 1e-5) as float16 subnormals,
        # within 6e-8 (the floor's level moves by under 1 %); a runtime that flushed subnormals to
        # zero would run without the floor, as before it existed.
        x = tf.reshape(tf.cast(waveform, tf.float32), [-1, WAVEFORM_LENGTH])
        repeats = -(-WAVEFORM_LENGTH // NOISE_FLOOR_PERIOD)
        floor = tf.tile(tf.constant(self._period), [repeats])[:WAVEFORM_LENGTH]
        return x + floor[tf.newaxis, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], WAVEFORM_LENGTH)

    def get_config(self):
        config = super().get_config()
        config.update({"seed": self.seed})
        return config


@tf.keras.utils.register_keras_serializable(package="mm_browserfft")
class BrowserFftLayer(tf.keras.layers.Layer):
    """Keras layer: waveform ``[batch, 44032]`` -> spectrogram ``[batch, 43, 232, 1]``, float32.

    The graph equals :func:`mm_browserfft.frontend.spectrogram` (same framing, window,
    empty-bin rule and normalisation): float64 arithmetic when TensorFlow runs it,
    float32 builtin TFLite ops when traced inside :func:`mm_browserfft.frontend.float32_graph`.

    Args:
      mode: ``"model_maker"`` (z-scored ln|X|) or ``"browser"`` (dB).
      name: the layer's name.
    """

    def __init__(self, *, mode: Mode = "model_maker", name: str = "browser_fft", **kwargs):
        _check_mode(mode)
        kwargs.setdefault("trainable", False)
        kwargs["dtype"] = "float32"  # never autocast to a mixed policy's float16
        super().__init__(name=name, **kwargs)
        self.mode = mode
        self._window = blackman_window(float32_taps=mode == "model_maker")

    def call(self, waveform):
        # float64 arithmetic when TensorFlow runs the layer; float32 (TFLite builtins)
        # while a graph is traced for conversion under float32_graph().
        dtype = tf.float32 if is_float32_graph() else tf.float64

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

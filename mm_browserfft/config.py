"""Export options with Model Maker's names: :class:`QuantizationConfig` and :class:`ExportFormat`.

Importing this module does not import TensorFlow; building a
:class:`QuantizationConfig` does (its defaults are TF objects, as in Model Maker).
"""

from __future__ import annotations

import enum
from typing import Callable, Iterable, Iterator, List, Optional

import numpy as np

from .errors import InvalidInputError
from .frontend import WAVEFORM_LENGTH

__all__ = ["DEFAULT_QUANTIZATION_STEPS", "ExportFormat", "QuantizationConfig"]

DEFAULT_QUANTIZATION_STEPS = 500
"""Calibration waveforms used by :meth:`QuantizationConfig.for_int8` unless told otherwise."""


@enum.unique
class ExportFormat(enum.Enum):
    """What ``AudioClassifier.export`` writes (Model Maker's ``config.ExportFormat``)."""

    TFLITE = "TFLITE"
    SAVED_MODEL = "SAVED_MODEL"
    LABEL = "LABEL"
    TFJS = "TFJS"

    @classmethod
    def coerce(cls, value) -> "ExportFormat":
        """One export format from ours, another enum of the same names (Model Maker's
        ``tflite_model_maker.config.ExportFormat``, as migrated code passes it) or a name
        (any case).

        Raises:
          InvalidInputError: ``value`` names no format.
        """
        if isinstance(value, cls):
            return value
        name = value.name if isinstance(value, enum.Enum) else value
        if isinstance(name, str) and name.upper() in cls.__members__:
            return cls[name.upper()]
        from .errors import InvalidInputError

        raise InvalidInputError(f"unknown export format {value!r}; choose from {sorted(cls.__members__)}")


def _as_list(value) -> Optional[list]:
    return None if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


class QuantizationConfig:
    """Post-training quantization settings for the TFLite converter (Model Maker's API).

    Use a constructor:

    * :meth:`for_dynamic` -- int8 weights, float activations (about 1.5 MB for the 18w model);
    * :meth:`for_float16` -- float16 weights;
    * :meth:`for_int8` -- int8 weights *and* activations of the learned layers,
      calibrated on waveforms; the browser-FFT front end stays float32, and so
      do the model's input and output.

    Args:
      optimizations: ``tf.lite.Optimize`` values; default ``[tf.lite.Optimize.DEFAULT]``.
      representative_data: calibration waveforms, one of: an object with a
        ``gen_waveforms()`` method yielding float32 ``[44032]`` arrays (the
        DataLoader), a float array ``[n, 44032]``, or any iterable of ``[44032]``
        arrays.
      quantization_steps: how many calibration waveforms to use (default
        :data:`DEFAULT_QUANTIZATION_STEPS` when there are representative data).
      inference_input_type, inference_output_type: ``tf.float32`` (the only
        type audio clients accept for the waveform) or None.
      supported_ops: ``tf.lite.OpsSet`` values; None keeps builtins with float fallback.
      supported_types: e.g. ``[tf.float16]``.
      experimental_new_quantizer: passed to the converter when not None.
    """

    def __init__(
        self,
        optimizations=None,
        representative_data=None,
        quantization_steps: Optional[int] = None,
        inference_input_type=None,
        inference_output_type=None,
        supported_ops=None,
        supported_types=None,
        experimental_new_quantizer: Optional[bool] = None,
    ) -> None:
        import tensorflow as tf

        self.optimizations = _as_list(optimizations) or [tf.lite.Optimize.DEFAULT]
        self.representative_data = representative_data
        if representative_data is not None and quantization_steps is None:
            quantization_steps = DEFAULT_QUANTIZATION_STEPS
        if quantization_steps is not None and quantization_steps <= 0:
            raise InvalidInputError(f"quantization_steps must be positive, got {quantization_steps}")
        self.quantization_steps = quantization_steps
        self.inference_input_type = inference_input_type
        self.inference_output_type = inference_output_type
        self.supported_ops = _as_list(supported_ops)
        self.supported_types = _as_list(supported_types)
        self.experimental_new_quantizer = experimental_new_quantizer

    @classmethod
    def for_dynamic(cls) -> "QuantizationConfig":
        """Dynamic-range quantization: int8 weights, float activations."""
        return cls()

    @classmethod
    def for_float16(cls) -> "QuantizationConfig":
        """Float16 weights (half the size, float kernels)."""
        import tensorflow as tf

        return cls(supported_types=[tf.float16])

    @classmethod
    def for_int8(
        cls,
        representative_data,
        quantization_steps: Optional[int] = None,
        inference_input_type=None,
        inference_output_type=None,
        supported_ops=None,
    ) -> "QuantizationConfig":
        """Integer quantization of the learned layers, calibrated on waveforms.

        Unlike Model Maker (whose defaults ``tf.uint8`` in/out and
        ``TFLITE_BUILTINS_INT8`` cannot hold the FFT front end), the input and
        output types default to ``tf.float32`` and ``supported_ops`` to builtins
        with float fallback, so the model still takes a float waveform.

        Args:
          representative_data: see the class docstring.
          quantization_steps: calibration waveforms (default 500).
          inference_input_type, inference_output_type: None means ``tf.float32``.
          supported_ops: None means ``[tf.lite.OpsSet.TFLITE_BUILTINS]``.
        """
        import tensorflow as tf

        if representative_data is None:
            raise InvalidInputError("for_int8 needs representative_data (calibration waveforms)")
        return cls(
            representative_data=representative_data,
            quantization_steps=quantization_steps,
            inference_input_type=inference_input_type or tf.float32,
            inference_output_type=inference_output_type or tf.float32,
            supported_ops=supported_ops,
        )

    def representative_waveforms(self) -> Iterator[np.ndarray]:
        """The calibration waveforms, each float32 ``[1, 44032]``, at most ``quantization_steps``.

        Raises:
          InvalidInputError: no representative data, a waveform of the wrong
            length, or none at all.
        """
        if self.representative_data is None:
            raise InvalidInputError("this QuantizationConfig has no representative_data")
        count = 0
        for waveform in _iter_waveforms(self.representative_data):
            if count >= self.quantization_steps:
                break
            count += 1
            yield waveform[np.newaxis]
        if count == 0:
            raise InvalidInputError("representative_data yielded no waveforms")

    def representative_dataset(self) -> Callable[[], Iterator[List[np.ndarray]]]:
        """A ``converter.representative_dataset`` callable: yields ``[waveform [1, 44032]]``.

        One-shot iterators are read once and kept, so the converter may call it again.
        """
        data = self.representative_data
        reiterable = hasattr(data, "gen_waveforms") or isinstance(data, (np.ndarray, list, tuple))
        cached = None if reiterable else list(self.representative_waveforms())

        def generate():
            for waveform in cached if cached is not None else self.representative_waveforms():
                yield [waveform]

        return generate

    def get_converter_with_quantization(self, converter, **kwargs):
        """Apply these settings to a ``tf.lite.TFLiteConverter`` and return it (Model Maker's hook).

        ``kwargs`` are accepted for Model Maker compatibility and ignored.
        """
        del kwargs
        converter.optimizations = self.optimizations
        if self.representative_data is not None:
            converter.representative_dataset = self.representative_dataset()
        if self.inference_input_type is not None:
            converter.inference_input_type = self.inference_input_type
        if self.inference_output_type is not None:
            converter.inference_output_type = self.inference_output_type
        if self.supported_ops:
            converter.target_spec.supported_ops = self.supported_ops
        if self.supported_types:
            converter.target_spec.supported_types = self.supported_types
        if self.experimental_new_quantizer is not None:
            converter.experimental_new_quantizer = self.experimental_new_quantizer
        return converter

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "representative_data" and v is not None)
        data = self.representative_data
        data = "" if data is None else f", representative_data=<{type(data).__name__}>"
        return f"QuantizationConfig({fields}{data})"


def _iter_waveforms(data) -> Iterator[np.ndarray]:
    """Float32 ``[44032]`` waveforms from any supported representative-data form."""
    source: Iterable = data.gen_waveforms() if hasattr(data, "gen_waveforms") else data
    if isinstance(source, np.ndarray):
        source = source.reshape(-1, source.shape[-1]) if source.ndim else [source]
    for item in source:
        waveform = np.asarray(item, dtype=np.float32)
        if waveform.shape not in ((WAVEFORM_LENGTH,), (1, WAVEFORM_LENGTH)):
            raise InvalidInputError(
                f"representative waveforms must have shape [{WAVEFORM_LENGTH}], got {waveform.shape}"
            )
        yield waveform.reshape(WAVEFORM_LENGTH)

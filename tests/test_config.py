"""QuantizationConfig and ExportFormat: Model Maker's names, our waveform calibration data."""

from __future__ import annotations

import numpy as np
import pytest

from mm_browserfft.config import DEFAULT_QUANTIZATION_STEPS, ExportFormat, QuantizationConfig
from mm_browserfft.errors import InvalidInputError
from mm_browserfft.frontend import WAVEFORM_LENGTH

tf = pytest.importorskip("tensorflow")


def _waveforms(n: int) -> np.ndarray:
    return np.random.default_rng(n).normal(0, 0.1, (n, WAVEFORM_LENGTH)).astype(np.float32)


def test_export_format_values_are_model_makers():
    assert [(f.name, f.value) for f in ExportFormat] == [
        ("TFLITE", "TFLITE"), ("SAVED_MODEL", "SAVED_MODEL"), ("LABEL", "LABEL"), ("TFJS", "TFJS"),
    ]  # fmt: skip
    assert ExportFormat("TFLITE") is ExportFormat.TFLITE


def test_dynamic_and_float16_constructors():
    dynamic = QuantizationConfig.for_dynamic()
    assert dynamic.optimizations == [tf.lite.Optimize.DEFAULT]
    assert dynamic.representative_data is None and dynamic.quantization_steps is None
    assert QuantizationConfig.for_float16().supported_types == [tf.float16]


def test_int8_defaults_keep_float_input_and_output():
    config = QuantizationConfig.for_int8(_waveforms(2))
    assert config.inference_input_type == tf.float32 and config.inference_output_type == tf.float32
    assert config.supported_ops is None
    assert config.quantization_steps == DEFAULT_QUANTIZATION_STEPS
    with pytest.raises(InvalidInputError):
        QuantizationConfig.for_int8(None)


@pytest.mark.parametrize("form", ["array", "list", "generator"])
def test_representative_data_forms_yield_batched_waveforms(form):
    clips = _waveforms(5)
    data = {
        "array": lambda: clips,
        "list": lambda: list(clips),
        "generator": lambda: (c for c in clips),
    }[form]()
    dataset = QuantizationConfig.for_int8(data, quantization_steps=4).representative_dataset()
    for _ in range(2):  # the converter may ask twice; one-shot generators are kept
        batches = [inputs[0] for inputs in dataset()]
        assert len(batches) == 4
        assert all(b.shape == (1, WAVEFORM_LENGTH) and b.dtype == np.float32 for b in batches)
        np.testing.assert_array_equal(np.concatenate(batches), clips[:4])


def test_a_data_loader_calibrates_with_its_own_windows(speech_dir):
    from mm_browserfft.audio_classifier import BrowserFftSpec, DataLoader

    loader = DataLoader.from_folder(BrowserFftSpec(), speech_dir, categories=["no", "yes"], shuffle=False)
    dataset = QuantizationConfig.for_int8(loader, quantization_steps=4).representative_dataset()  # Model Maker's call
    batches = [inputs[0] for inputs in dataset()]
    assert [b.shape for b in batches] == [(1, WAVEFORM_LENGTH)] * 4
    np.testing.assert_array_equal(np.concatenate(batches), loader.waveforms()[0][:4])


def test_bad_representative_data_is_refused():
    with pytest.raises(InvalidInputError, match="shape"):
        list(QuantizationConfig.for_int8(np.zeros((2, 16000), np.float32)).representative_waveforms())
    with pytest.raises(InvalidInputError, match="no waveforms"):
        list(QuantizationConfig.for_int8(np.zeros((0, WAVEFORM_LENGTH), np.float32)).representative_waveforms())
    with pytest.raises(InvalidInputError, match="quantization_steps"):
        QuantizationConfig.for_int8(_waveforms(1), quantization_steps=0)


def test_get_converter_with_quantization_sets_the_converter():
    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    def double(x):
        return 2.0 * x

    converter = tf.lite.TFLiteConverter.from_concrete_functions([double.get_concrete_function()])
    config = QuantizationConfig.for_int8(_waveforms(2), quantization_steps=2)
    assert config.get_converter_with_quantization(converter) is converter
    assert converter.optimizations == [tf.lite.Optimize.DEFAULT]
    assert converter.inference_input_type == tf.float32
    assert len(list(converter.representative_dataset())) == 2
    float16 = QuantizationConfig.for_float16().get_converter_with_quantization(
        tf.lite.TFLiteConverter.from_concrete_functions([double.get_concrete_function()])
    )
    assert float16.target_spec.supported_types == [tf.float16]

"""Predictors: a model that is not a browser-FFT waveform classifier is refused by name, before any audio."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_cli
from mm_browserfft.errors import ModelFormatError
from mm_browserfft.frontend import WAVEFORM_LENGTH
from mm_browserfft.predict import SavedModelPredictor, TFLitePredictor, load_predictor


def _tflite_of(inputs: int, outputs: int) -> bytes:
    """A plain float .tflite (no metadata): ``[1, inputs]`` -> ``[1, outputs]`` softmax."""
    keras = tf.keras
    model = keras.Sequential([keras.Input((inputs,), batch_size=1), keras.layers.Dense(outputs, activation="softmax")])
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def test_a_tflite_of_another_input_is_refused_naming_the_file(tmp_path):
    yamnet_like = tmp_path / "yamnet_like.tflite"
    yamnet_like.write_bytes(_tflite_of(15600, 3))
    with pytest.raises(ModelFormatError, match=f"{yamnet_like}: takes input of shape \\[1, 15600\\]"):
        TFLitePredictor(yamnet_like, labels=["a", "b", "c"])


def test_a_tflite_without_metadata_or_with_too_few_labels_names_the_file(tmp_path):
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(_tflite_of(WAVEFORM_LENGTH, 3))
    with pytest.raises(ModelFormatError, match=f"{bare}: the model has no TFLite metadata"):
        TFLitePredictor(bare)
    with pytest.raises(ModelFormatError, match=f"{bare}: 2 labels for a model of 3 outputs"):
        TFLitePredictor(bare, labels=["a", "b"])
    assert TFLitePredictor(bare, labels=()).labels == ["0", "1", "2"]  # run without names
    code, _, stderr = run_cli("predict", bare, tmp_path / "missing.wav")
    assert code == 2 and "Traceback" not in stderr


def test_a_saved_model_without_a_serving_signature_or_with_too_few_labels_is_refused(cli_trained, tmp_path):
    module = tf.Module()
    module.scale = tf.Variable(2.0)
    unsigned = tmp_path / "unsigned"
    tf.saved_model.save(module, str(unsigned))
    with pytest.raises(ModelFormatError, match=f"{unsigned}: has no serving_default signature"):
        SavedModelPredictor(unsigned, labels=["a"])

    saved = tmp_path / "saved_model"
    shutil.copytree(cli_trained[0] / "saved_model", saved)
    labels = (saved / "labels.txt").read_text().splitlines()
    (saved / "labels.txt").write_text("\n".join(labels[:-1]) + "\n")  # one label lost
    with pytest.raises(ModelFormatError, match=f"{saved}: {len(labels) - 1} labels for a model of {len(labels)} outputs"):
        load_predictor(saved)
    (saved / "labels.txt").write_text("\n".join(labels) + "\n")
    predictor = load_predictor(saved)
    assert predictor.labels == labels and predictor.predict(np.zeros((2, WAVEFORM_LENGTH), np.float32)).shape == (2, 5)

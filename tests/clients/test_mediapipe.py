"""The real MediaPipe Tasks AudioClassifier loads our .tflite and returns our labels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from client_model import client_model_dir  # noqa: F401  (a pytest fixture)

pytest.importorskip("mediapipe", reason="mediapipe is not installed (pip install mediapipe==1.2.2)")
from mediapipe.tasks import python as mp_tasks  # noqa: E402
from mediapipe.tasks.python import audio as mp_audio  # noqa: E402
from mediapipe.tasks.python.components.containers import audio_data  # noqa: E402


def _classify(path, waveform, **options):
    settings = mp_audio.AudioClassifierOptions(base_options=mp_tasks.BaseOptions(model_asset_path=str(path)), **options)
    with mp_audio.AudioClassifier.create_from_options(settings) as classifier:
        results = classifier.classify(audio_data.AudioData.create_from_array(waveform, 44100))
    assert len(results) == 1  # one 44032-sample window -> one result
    return results[0].classifications[0].categories


def test_mediapipe_returns_our_label_names_and_scores(client_model_dir):
    waveform = np.load(client_model_dir / "waveform.npy")
    expected = np.load(client_model_dir / "scores.npy")
    labels = json.loads((client_model_dir / "labels.json").read_text())["default"]
    categories = _classify(client_model_dir / "model.tflite", waveform)
    assert sorted(c.category_name for c in categories) == sorted(labels)
    for category in categories:
        assert category.category_name == labels[category.index]
        assert category.score == pytest.approx(expected[category.index], abs=1e-5)


def test_mediapipe_uses_display_names_of_the_locale(client_model_dir):
    waveform = np.load(client_model_dir / "waveform.npy")
    french = json.loads((client_model_dir / "labels.json").read_text())["fr"]
    categories = _classify(client_model_dir / "model_fr.tflite", waveform, display_names_locale="fr")
    assert categories and all(c.display_name == french[c.index] for c in categories)


def test_mediapipe_refuses_a_model_without_metadata(client_model_dir):
    with pytest.raises((ValueError, RuntimeError)):
        _classify(client_model_dir / "bare.tflite", np.load(client_model_dir / "waveform.npy"))

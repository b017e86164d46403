"""The client model as our own reader sees it (main env; also saves it for ``tox -e tasklib``)."""

from __future__ import annotations

import json

import numpy as np

from client_model import client_model_dir  # noqa: F401  (a pytest fixture)

from mm_browserfft import metadata
from mm_browserfft.export import run_tflite


def test_client_model_has_model_maker_metadata_and_labels(client_model_dir):
    labels = json.loads((client_model_dir / "labels.json").read_text())["default"]
    model = client_model_dir / "model.tflite"
    expected_json = metadata.metadata_json(metadata.classifier_metadata(labels)[0])
    assert (client_model_dir / "model.json").read_text() == expected_json
    assert metadata.read_associated_files(model) == {"probability_labels.txt": "\n".join(labels).encode()}


def test_client_model_scores_are_reproducible(client_model_dir):
    waveform = np.load(client_model_dir / "waveform.npy")
    scores = run_tflite(client_model_dir / "model.tflite", waveform)[0]
    np.testing.assert_allclose(scores, np.load(client_model_dir / "scores.npy"), atol=1e-6)
    assert abs(float(scores.sum()) - 1.0) < 1e-5

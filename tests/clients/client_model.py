"""The model the real clients (Task Library, MediaPipe) load, made once per session (a shared fixture).

In the main env (TensorFlow present) it is built here, and also saved into
``$MM_BROWSERFFT_ARTIFACTS/client_model`` when that is set; the ``tasklib`` env
(tflite-support, no TensorFlow) reads it from there.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil

import numpy as np
import pytest

LABELS = ["down", "go", "no", "up", "yes"]
FRENCH = ["bas", "va", "non", "haut", "oui"]
CLIP_LABEL = "yes"
_BUILT: dict = {}


def _build(folder: pathlib.Path, speech_dir: pathlib.Path) -> None:
    """Write model.tflite (MM's 5-class metadata), model_fr.tflite (+ French labels),
    bare.tflite (no metadata), a real clip and the scores our LiteRT run gives it."""
    import tensorflow as tf

    from mm_browserfft import audio, export, metadata
    from mm_browserfft.frontend import WAVEFORM_LENGTH
    from mm_browserfft.layers import BrowserFftLayer

    tf.keras.utils.set_random_seed(0)
    serving = tf.keras.Sequential(
        [
            tf.keras.layers.Input((WAVEFORM_LENGTH,)),
            BrowserFftLayer(),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(len(LABELS), activation="softmax"),
        ]
    )
    bare = export.convert_to_tflite(serving)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bare.tflite").write_bytes(bare)
    model = metadata.write_classifier_metadata(bare, LABELS)
    (folder / "model.tflite").write_bytes(model)
    localized = metadata.write_classifier_metadata(bare, {None: LABELS, "fr": FRENCH})
    (folder / "model_fr.tflite").write_bytes(localized)
    (folder / "model.json").write_text(metadata.metadata_json(metadata.read_metadata(model)))
    clip = sorted((speech_dir / CLIP_LABEL).glob("*.flac"))[0]
    waveform = audio.split_windows(audio.load_audio(clip), pad_short=True)[0]
    np.save(folder / "waveform.npy", waveform)
    np.save(folder / "scores.npy", export.run_tflite(model, waveform)[0])
    (folder / "labels.json").write_text(json.dumps({"default": LABELS, "fr": FRENCH}))


@pytest.fixture(scope="session")
def client_model_dir(tmp_path_factory, speech_dir) -> pathlib.Path:
    """Folder with model.tflite, model_fr.tflite, bare.tflite, model.json, waveform.npy, scores.npy, labels.json."""
    artifacts = os.environ.get("MM_BROWSERFFT_ARTIFACTS")
    saved = pathlib.Path(artifacts) / "client_model" if artifacts else None
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        if saved is not None and (saved / "scores.npy").is_file():
            return saved
        pytest.skip(
            "no TensorFlow here to build the client model, and no "
            "$MM_BROWSERFFT_ARTIFACTS/client_model/ from the main env (run tox -e py311 first)"
        )
    if "folder" in _BUILT:  # the fixture is imported by several modules; build once
        return _BUILT["folder"]
    folder = _BUILT["folder"] = tmp_path_factory.mktemp("client_model")
    _build(folder, speech_dir)
    if saved is not None:
        shutil.rmtree(saved, ignore_errors=True)
        shutil.copytree(folder, saved)
    return folder

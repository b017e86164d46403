"""The real TFLite Task Library (tflite-support 0.4.4) reads and runs our .tflite.

tflite-support needs protobuf < 4, so this runs in an env without TensorFlow
(``tox -e tasklib``) on the models the main env saved (see conftest.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from client_model import client_model_dir  # noqa: F401  (a pytest fixture)

tflite_support = pytest.importorskip("tflite_support", reason="tflite-support is not installed (run `tox -e tasklib`)")
tfs_metadata = tflite_support.metadata
task_audio = pytest.importorskip(
    "tflite_support.task.audio", reason="tflite-support's Task Library is not installed (run `tox -e tasklib`)"
)


def _labels(folder):
    return json.loads((folder / "labels.json").read_text())


def test_metadata_displayer_reads_our_metadata_and_labels(client_model_dir):
    displayer = tfs_metadata.MetadataDisplayer.with_model_file(str(client_model_dir / "model.tflite"))
    assert displayer.get_metadata_json() == (client_model_dir / "model.json").read_text()
    assert displayer.get_packed_associated_file_list() == ["probability_labels.txt"]
    labels = displayer.get_associated_file_buffer("probability_labels.txt")
    assert labels == "\n".join(_labels(client_model_dir)["default"]).encode()


def test_metadata_displayer_sees_localized_label_files(client_model_dir):
    displayer = tfs_metadata.MetadataDisplayer.with_model_file(str(client_model_dir / "model_fr.tflite"))
    files = json.loads(displayer.get_metadata_json())["subgraph_metadata"][0]["output_tensor_metadata"][0][
        "associated_files"
    ]
    assert [(f["name"], f.get("locale")) for f in files] == [
        ("probability_labels.txt", None),
        ("probability_labels_fr.txt", "fr"),
    ]
    assert sorted(displayer.get_packed_associated_file_list()) == [f["name"] for f in files]


def _classify(path, waveform, **options):
    from tflite_support.task import core, processor

    classifier = task_audio.AudioClassifier.create_from_options(
        task_audio.AudioClassifierOptions(
            base_options=core.BaseOptions(file_name=str(path)),
            classification_options=processor.ClassificationOptions(**options),
        )
    )
    audio_format = classifier.required_audio_format
    assert (audio_format.sample_rate, audio_format.channels) == (44100, 1)
    assert classifier.required_input_buffer_size == 44032
    tensor = task_audio.TensorAudio(audio_format, classifier.required_input_buffer_size)
    tensor.load_from_array(waveform.reshape(-1, 1))
    return classifier.classify(tensor).classifications[0].categories


def test_audio_classifier_returns_our_labels_and_scores(client_model_dir):
    waveform = np.load(client_model_dir / "waveform.npy")
    expected = np.load(client_model_dir / "scores.npy")
    labels = _labels(client_model_dir)["default"]
    categories = _classify(client_model_dir / "model.tflite", waveform, max_results=len(labels))
    assert sorted(c.category_name for c in categories) == sorted(labels)
    for category in categories:
        assert category.category_name == labels[category.index]
        assert category.score == pytest.approx(expected[category.index], abs=1e-5)


def test_audio_classifier_uses_display_names_of_the_locale(client_model_dir):
    waveform = np.load(client_model_dir / "waveform.npy")
    french = _labels(client_model_dir)["fr"]
    categories = _classify(client_model_dir / "model_fr.tflite", waveform, display_names_locale="fr")
    assert categories and all(c.display_name == french[c.index] for c in categories)


def test_audio_classifier_refuses_a_model_without_metadata(client_model_dir):
    with pytest.raises((ValueError, RuntimeError), match="(?i)metadata|audio format"):
        task_audio.AudioClassifier.create_from_file(str(client_model_dir / "bare.tflite"))


def test_our_reader_reads_what_tflite_support_writes(client_model_dir, tmp_path):
    ours = pytest.importorskip("mm_browserfft.metadata", reason="mm_browserfft is not importable here")
    from tflite_support.metadata_writers import audio_classifier as writer

    label_file = tmp_path / "labels.txt"
    label_file.write_text("cat\ndog")
    bare = (client_model_dir / "bare.tflite").read_bytes()
    # The bare model has 5 outputs; tflite-support does not check the count.
    written = writer.MetadataWriter.create_for_inference(bare, 16000, 2, [str(label_file)])
    model = written.populate()
    displayed = tfs_metadata.MetadataDisplayer.with_model_buffer(model).get_metadata_json()
    assert ours.metadata_json(ours.read_metadata(model)) == displayed
    assert ours.read_associated_files(model) == {"labels.txt": b"cat\ndog"}


_SAMPLES = [
    {"name": "plain"},
    {
        "name": "caf\u00e9 \u65e5\u672c \U0001f3b5",
        "description": 'quote " backslash \\ newline \n tab \t del \x7f bell \x07',
        "subgraph_metadata": [
            {
                "input_tensor_metadata": [
                    {
                        "name": "image",
                        "dimension_names": [],
                        "content": {
                            "content_properties_type": "ImageProperties",
                            "content_properties": {"color_space": "RGB", "default_size": {"width": 224, "height": 7}},
                            "range": {"min": -3, "max": 2},
                        },
                        "process_units": [
                            {
                                "options_type": "NormalizationOptions",
                                "options": {"mean": [127.5, -0.25, 1e-3], "std": [0.1, 3.0e6, 1.0 / 3.0]},
                            }
                        ],
                        "stats": {"max": [255.0], "min": [-1.5]},
                    }
                ],
                "output_tensor_metadata": [],
                "custom_metadata": [{"name": "blob", "data": bytes(range(5))}],
            }
        ],
        "associated_files": [{"name": "v.txt", "type": "VOCABULARY", "locale": "pt-BR", "version": "2"}],
        "min_parser_version": "1.5.0",
    },
]


@pytest.mark.parametrize("sample", _SAMPLES)
def test_our_json_equals_tflite_support_json_for_our_encoding(sample):
    ours = pytest.importorskip("mm_browserfft.metadata", reason="mm_browserfft is not importable here")
    buffer = ours.encode_metadata(sample)
    theirs = tfs_metadata.convert_to_json(buffer)
    assert ours.metadata_json(sample) == theirs
    assert ours.metadata_json(ours.decode_metadata(buffer)) == theirs

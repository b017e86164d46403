"""TFLite metadata: Model Maker's exact JSON, packing into the model, reading back, errors."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from mm_browserfft import metadata
from mm_browserfft.errors import InvalidInputError, ModelFormatError
from mm_browserfft.export import convert_to_tflite, run_tflite
from mm_browserfft.frontend import WAVEFORM_LENGTH

LABELS = [f"label_{i}" for i in range(5)]

# Model Maker's audio_spec_test.py (BrowserFFTSpecTest.test_basic_training) expects
# exactly this text from model_util.extract_tflite_metadata_json for 5 classes.
MODEL_MAKER_JSON = """{
  "name": "AudioClassifier",
  "description": "Identify the most prominent type in the audio clip from a known set of categories.",
  "version": "v1",
  "subgraph_metadata": [
    {
      "input_tensor_metadata": [
        {
          "name": "audio_clip",
          "description": "Input audio clip to be classified.",
          "content": {
            "content_properties_type": "AudioProperties",
            "content_properties": {
              "sample_rate": 44100,
              "channels": 1
            }
          },
          "stats": {
          }
        }
      ],
      "output_tensor_metadata": [
        {
          "name": "probability",
          "description": "Scores of the labels respectively.",
          "content": {
            "content_properties_type": "FeatureProperties",
            "content_properties": {
            }
          },
          "stats": {
            "max": [
              1.0
            ],
            "min": [
              0.0
            ]
          },
          "associated_files": [
            {
              "name": "probability_labels.txt",
              "description": "Labels for categories that the model can recognize.",
              "type": "TENSOR_AXIS_LABELS"
            }
          ]
        }
      ]
    }
  ],
  "author": "TensorFlow Lite Model Maker",
  "license": "Apache License. Version 2.0 http://www.apache.org/licenses/LICENSE-2.0.",
  "min_parser_version": "1.3.0"
}
"""


@pytest.fixture(scope="module")
def bare_model() -> bytes:
    """A small float classifier: front end + Dense(5), no metadata."""
    import tensorflow as tf

    from mm_browserfft.layers import BrowserFftLayer

    tf.keras.utils.set_random_seed(1)
    serving = tf.keras.Sequential(
        [
            tf.keras.layers.Input((WAVEFORM_LENGTH,)),
            BrowserFftLayer(),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(len(LABELS), activation="softmax"),
        ]
    )
    return convert_to_tflite(serving)


@pytest.fixture(scope="module")
def model(bare_model) -> bytes:
    return metadata.write_classifier_metadata(bare_model, LABELS)


def test_json_is_model_makers_text_byte_for_byte(model):
    assert metadata.metadata_json(metadata.read_metadata(model)) == MODEL_MAKER_JSON
    assert metadata.metadata_json(metadata.classifier_metadata(LABELS)[0]) == MODEL_MAKER_JSON


def test_read_metadata_returns_what_was_written_field_by_field(model):
    written, _ = metadata.classifier_metadata(LABELS)
    read = metadata.read_metadata(model)
    assert read == written
    (subgraph,) = read["subgraph_metadata"]
    (audio_in,) = subgraph["input_tensor_metadata"]
    (scores_out,) = subgraph["output_tensor_metadata"]
    assert audio_in["content"]["content_properties"] == {"sample_rate": 44100, "channels": 1}
    assert audio_in["stats"] == {}
    assert scores_out["stats"] == {"max": [1.0], "min": [0.0]}
    assert scores_out["associated_files"][0]["type"] == "TENSOR_AXIS_LABELS"
    assert read["min_parser_version"] == "1.3.0"


def test_labels_are_an_uncompressed_zip_member_without_trailing_newline(model):
    with zipfile.ZipFile(io.BytesIO(model)) as archive:
        (info,) = archive.infolist()
        assert info.filename == "probability_labels.txt"
        assert info.compress_type == zipfile.ZIP_STORED
        assert archive.read(info) == b"label_0\nlabel_1\nlabel_2\nlabel_3\nlabel_4"
    assert metadata.read_associated_files(model) == {"probability_labels.txt": "\n".join(LABELS).encode()}


def test_packed_model_runs_exactly_like_the_bare_one(bare_model, model):
    waveforms = np.random.default_rng(0).normal(0, 0.1, (2, WAVEFORM_LENGTH)).astype(np.float32)
    np.testing.assert_array_equal(run_tflite(model, waveforms), run_tflite(bare_model, waveforms))
    assert len(bare_model) < len(model) < len(bare_model) + 4096


def test_other_metadata_entries_and_signatures_survive(bare_model, model):
    from ai_edge_litert.interpreter import Interpreter

    before, after = Interpreter(model_content=bare_model), Interpreter(model_content=model)
    assert after.get_signature_list() == before.get_signature_list()
    assert [op.code for op in metadata.read_operators(model)] == [op.code for op in metadata.read_operators(bare_model)]


def test_localized_labels_get_their_own_files(bare_model):
    french = [f"\u00e9tiquette {i}" for i in range(5)]
    model = metadata.write_classifier_metadata(bare_model, {None: LABELS, "fr": french})
    files = metadata.read_metadata(model)["subgraph_metadata"][0]["output_tensor_metadata"][0]["associated_files"]
    assert [(f["name"], f.get("locale")) for f in files] == [
        ("probability_labels.txt", None),
        ("probability_labels_fr.txt", "fr"),
    ]
    packed = metadata.read_associated_files(model)
    assert packed["probability_labels_fr.txt"].decode("utf-8").split("\n")[0] == "\u00e9tiquette 0"
    assert '"locale": "fr"' in metadata.metadata_json(metadata.read_metadata(model))


def test_writing_again_replaces_metadata_and_labels(model):
    renamed = [f"word_{i}" for i in range(5)]
    again = metadata.write_classifier_metadata(model, renamed)
    assert metadata.read_associated_files(again) == {"probability_labels.txt": "\n".join(renamed).encode()}
    assert metadata.read_metadata(again) == metadata.read_metadata(model)
    assert abs(len(again) - len(model)) < 4096  # the old buffer is reused, not appended


def test_generic_metadata_round_trips():
    sample = {
        "name": "x",
        "subgraph_metadata": [
            {
                "input_tensor_metadata": [
                    {
                        "name": "image",
                        "content": {
                            "content_properties_type": "ImageProperties",
                            "content_properties": {"color_space": "RGB", "default_size": {"width": 224, "height": 7}},
                        },
                        "process_units": [
                            {"options_type": "NormalizationOptions", "options": {"mean": [127.5], "std": [0.5]}}
                        ],
                    }
                ],
                "custom_metadata": [{"name": "blob", "data": bytes(range(40))}],
            }
        ],
        "associated_files": [{"name": "v.txt", "type": "VOCABULARY", "locale": "pt-BR"}],
    }
    buffer = metadata.encode_metadata(sample)
    assert buffer[4:8] == b"M001"
    assert metadata.decode_metadata(buffer) == sample


def test_json_escapes_and_float_format_follow_flatbuffers():
    text = metadata.metadata_json(
        {"name": "caf\u00e9 \"q\"\n\U0001f3b5", "subgraph_metadata": [
            {"input_tensor_metadata": [{"name": "t", "stats": {"max": [255.0, 0.1], "min": []}}]}
        ]}  # fmt: skip
    )
    assert '"name": "caf\\u00E9 \\"q\\"\\n\\uD83C\\uDFB5"' in text
    assert "255.0,\n" in text and "0.1\n" in text
    assert '"min": [\n\n' in text  # an empty vector, as flatbuffers prints it


@pytest.mark.parametrize(
    "labels",
    [[], ["a", "b\nc"], ["a", "b\u2028c"], ["a", ""], ["a", 3], "ab", {None: ["a", "b"], "fr": ["a"]}],
    ids=["empty", "newline", "line-separator", "empty-label", "not-str", "string", "locale-length"],
)
def test_bad_labels_are_refused(labels):
    with pytest.raises(InvalidInputError):
        metadata.classifier_metadata(labels)


def test_label_count_must_match_the_output(bare_model):
    with pytest.raises(InvalidInputError, match="does not end in 3"):
        metadata.write_classifier_metadata(bare_model, ["a", "b", "c"])


def test_unknown_metadata_fields_are_refused():
    with pytest.raises(InvalidInputError, match="unknown fields"):
        metadata.encode_metadata({"name": "x", "colour": "red"})
    with pytest.raises(InvalidInputError, match="AssociatedFile.type"):
        metadata.encode_metadata({"associated_files": [{"name": "a", "type": "LABELS"}]})


def test_files_must_match_the_metadata(bare_model):
    md, files = metadata.classifier_metadata(LABELS)
    with pytest.raises(InvalidInputError, match="refers to files"):
        metadata.pack_metadata(bare_model, md, {**files, "extra.txt": b""})


def test_bad_files_raise_model_format_error_naming_the_file(tmp_path, bare_model, model):
    not_a_model = tmp_path / "notes.tflite"
    not_a_model.write_bytes(b"hello, this is not a flatbuffer at all")
    with pytest.raises(ModelFormatError, match="notes.tflite.*TFL3"):
        metadata.read_metadata(not_a_model)
    without = tmp_path / "bare.tflite"
    without.write_bytes(bare_model)
    with pytest.raises(ModelFormatError, match="bare.tflite: the model has no TFLite metadata"):
        metadata.read_metadata(without)
    assert metadata.read_associated_files(without) == {}
    truncated = tmp_path / "cut.tflite"
    truncated.write_bytes(model[:2000])
    with pytest.raises(ModelFormatError, match="cut.tflite"):
        metadata.read_metadata(truncated)
    with pytest.raises(ModelFormatError, match="missing.tflite"):
        metadata.read_metadata(tmp_path / "missing.tflite")


def test_corrupt_offsets_never_crash_or_hang(model):
    rng = np.random.default_rng(0)
    for _ in range(50):
        damaged = bytearray(model)
        for position in rng.integers(0, 4096, size=8):
            damaged[position] = rng.integers(0, 256)
        try:
            metadata.read_metadata(bytes(damaged))
        except ModelFormatError:
            pass

"""The metadata schema (tflite-support's metadata_schema.fbs 1.5.0) described as data, and the
names Model Maker wrote."""

from __future__ import annotations

import os
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

from flatbuffers import number_types as fbn


ModelSource = Union[bytes, bytearray, str, "os.PathLike[str]"]
Labels = Union[Sequence[str], Mapping[Optional[str], Sequence[str]]]


def _path_of(source) -> Optional[str]:
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else None


METADATA_NAME = "TFLITE_METADATA"
"""Name of the ``Model.metadata`` entry whose buffer holds the metadata flatbuffer."""
_METADATA_IDENTIFIER = b"M001"
_TFLITE_IDENTIFIER = b"TFL3"
MIN_PARSER_VERSION = "1.3.0"
"""Oldest metadata parser that understands what we write (``AudioProperties`` came in 1.3.0)."""

# What Model Maker's BrowserFftSpec wrote (audio_spec.py).
MODEL_NAME = "AudioClassifier"
MODEL_DESCRIPTION = "Identify the most prominent type in the audio clip from a known set of categories."
MODEL_VERSION = "v1"
MODEL_AUTHOR = "TensorFlow Lite Model Maker"
MODEL_LICENSE = "Apache License. Version 2.0 http://www.apache.org/licenses/LICENSE-2.0."
INPUT_NAME = "audio_clip"
INPUT_DESCRIPTION = "Input audio clip to be classified."
OUTPUT_NAME = "probability"
OUTPUT_DESCRIPTION = "Scores of the labels respectively."
LABELS_DESCRIPTION = "Labels for categories that the model can recognize."

# ---------------------------------------------------------------------------------------
# metadata_schema.fbs (schema 1.5.0), described as data. Each table lists its fields in
# declaration order; a field's slot is its position, except that a union takes two
# slots (its type, then its value). Kinds: "string", "uint", "int", "float",
# "enum:<E>" (a byte), "union:<U>", "[<kind>]" (vector), "[ubyte]", or a table name.

_ENUMS: Dict[str, Tuple[str, ...]] = {
    "AssociatedFileType": (
        "UNKNOWN", "DESCRIPTIONS", "TENSOR_AXIS_LABELS", "TENSOR_VALUE_LABELS",
        "TENSOR_AXIS_SCORE_CALIBRATION", "VOCABULARY", "SCANN_INDEX_FILE",
    ),
    "ColorSpaceType": ("UNKNOWN", "RGB", "GRAYSCALE"),
    "BoundingBoxType": ("UNKNOWN", "BOUNDARIES", "UPPER_LEFT", "CENTER"),
    "CoordinateType": ("RATIO", "PIXEL"),
    "ScoreTransformationType": ("IDENTITY", "LOG", "INVERSE_LOGISTIC"),
}  # fmt: skip

_UNIONS: Dict[str, Tuple[str, ...]] = {
    "ContentProperties": (
        "NONE", "FeatureProperties", "ImageProperties", "BoundingBoxProperties", "AudioProperties",
    ),
    "ProcessUnitOptions": (
        "NONE", "NormalizationOptions", "ScoreCalibrationOptions", "ScoreThresholdingOptions",
        "BertTokenizerOptions", "SentencePieceTokenizerOptions", "RegexTokenizerOptions",
    ),
}  # fmt: skip

_TABLES: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "AssociatedFile": (
        ("name", "string"), ("description", "string"), ("type", "enum:AssociatedFileType"),
        ("locale", "string"), ("version", "string"),
    ),
    "FeatureProperties": (),
    "ImageSize": (("width", "uint"), ("height", "uint")),
    "ImageProperties": (("color_space", "enum:ColorSpaceType"), ("default_size", "ImageSize")),
    "AudioProperties": (("sample_rate", "uint"), ("channels", "uint")),
    "BoundingBoxProperties": (
        ("index", "[uint]"), ("type", "enum:BoundingBoxType"), ("coordinate_type", "enum:CoordinateType"),
    ),
    "ValueRange": (("min", "int"), ("max", "int")),
    "Content": (("content_properties", "union:ContentProperties"), ("range", "ValueRange")),
    "NormalizationOptions": (("mean", "[float]"), ("std", "[float]")),
    "ScoreCalibrationOptions": (
        ("score_transformation", "enum:ScoreTransformationType"), ("default_score", "float"),
    ),
    "ScoreThresholdingOptions": (("global_score_threshold", "float"),),
    "BertTokenizerOptions": (("vocab_file", "[AssociatedFile]"),),
    "SentencePieceTokenizerOptions": (
        ("sentencePiece_model", "[AssociatedFile]"), ("vocab_file", "[AssociatedFile]"),
    ),
    "RegexTokenizerOptions": (("delim_regex_pattern", "string"), ("vocab_file", "[AssociatedFile]")),
    "ProcessUnit": (("options", "union:ProcessUnitOptions"),),
    "Stats": (("max", "[float]"), ("min", "[float]")),
    "TensorGroup": (("name", "string"), ("tensor_names", "[string]")),
    "TensorMetadata": (
        ("name", "string"), ("description", "string"), ("dimension_names", "[string]"),
        ("content", "Content"), ("process_units", "[ProcessUnit]"), ("stats", "Stats"),
        ("associated_files", "[AssociatedFile]"),
    ),
    "CustomMetadata": (("name", "string"), ("data", "[ubyte]")),
    "SubGraphMetadata": (
        ("name", "string"), ("description", "string"),
        ("input_tensor_metadata", "[TensorMetadata]"), ("output_tensor_metadata", "[TensorMetadata]"),
        ("associated_files", "[AssociatedFile]"),
        ("input_process_units", "[ProcessUnit]"), ("output_process_units", "[ProcessUnit]"),
        ("input_tensor_groups", "[TensorGroup]"), ("output_tensor_groups", "[TensorGroup]"),
        ("custom_metadata", "[CustomMetadata]"),
    ),
    "ModelMetadata": (
        ("name", "string"), ("description", "string"), ("version", "string"),
        ("subgraph_metadata", "[SubGraphMetadata]"), ("author", "string"), ("license", "string"),
        ("associated_files", "[AssociatedFile]"), ("min_parser_version", "string"),
    ),
}  # fmt: skip

_SCALARS = {"uint": fbn.Uint32Flags, "int": fbn.Int32Flags, "float": fbn.Float32Flags}
_CUSTOM_DATA_ALIGNMENT = 16  # CustomMetadata.data and tflite Buffer.data are force_align: 16


def _slots(table: str):
    """``(field name, kind, slot)`` of a table's fields, unions taking two slots."""
    slot = 0
    for name, kind in _TABLES[table]:
        yield name, kind, slot
        slot += 2 if kind.startswith("union:") else 1


def _num_slots(table: str) -> int:
    return sum(2 if kind.startswith("union:") else 1 for _, kind in _TABLES[table])

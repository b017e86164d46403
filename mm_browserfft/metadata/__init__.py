"""TFLite model metadata: write and read it without tflite-support.

A ``.tflite`` file with metadata is three things in one file:

1. the TFLite model flatbuffer (file identifier ``"TFL3"``);
2. one extra entry of its ``Model.buffers``, named ``"TFLITE_METADATA"`` in
   ``Model.metadata``, that holds a *metadata* flatbuffer (identifier ``"M001"``,
   tflite-support's ``metadata_schema.fbs``, root table ``ModelMetadata``);
3. the associated files (label lists) as an uncompressed ZIP archive appended
   after the flatbuffer; interpreters ignore it, the Task Library and MediaPipe
   read labels from it.

Model Maker's ``BrowserFftSpec`` wrote one input ``"audio_clip"`` with
``AudioProperties`` (44100 Hz, 1 channel) and one output ``"probability"`` whose
labels live in ``probability_labels.txt`` (one label per line, no trailing
newline). :func:`write_classifier_metadata` writes exactly that;
:func:`metadata_json` renders metadata the way tflite-support's
``MetadataDisplayer.get_metadata_json`` does (the JSON file Model Maker wrote
beside the model), and :func:`read_metadata` / :func:`read_associated_files`
read any model's metadata back.

Metadata is handled as plain dicts shaped like that JSON: keys are the schema's
field names (in schema order), enums and union types are their names
(``"TENSOR_AXIS_LABELS"``, ``"AudioProperties"``), a union's value sits under the
field name and its type under ``<field>_type``.

The package: :mod:`~mm_browserfft.metadata.schema` (the schema as data, Model Maker's names),
:mod:`~mm_browserfft.metadata.view` (safe flatbuffer reading), :mod:`~mm_browserfft.metadata.codec`
(metadata flatbuffer <-> dict <-> JSON), :mod:`~mm_browserfft.metadata.classifier` (the metadata
Model Maker wrote) and :mod:`~mm_browserfft.metadata.tflite` (the model file).
"""

from .classifier import (
    classifier_metadata,
    is_single_line,
    label_file_name,
)
from .codec import (
    decode_metadata,
    encode_metadata,
    metadata_json,
)
from .schema import (
    INPUT_DESCRIPTION,
    INPUT_NAME,
    LABELS_DESCRIPTION,
    METADATA_NAME,
    MIN_PARSER_VERSION,
    MODEL_AUTHOR,
    MODEL_DESCRIPTION,
    MODEL_LICENSE,
    MODEL_NAME,
    MODEL_VERSION,
    OUTPUT_DESCRIPTION,
    OUTPUT_NAME,
)
from .tflite import (
    Operator,
    has_metadata,
    pack_metadata,
    read_associated_files,
    read_labels,
    read_metadata,
    read_operators,
    write_classifier_metadata,
)

__all__ = [
    "METADATA_NAME",
    "MIN_PARSER_VERSION",
    "MODEL_NAME",
    "MODEL_DESCRIPTION",
    "MODEL_VERSION",
    "MODEL_AUTHOR",
    "MODEL_LICENSE",
    "INPUT_NAME",
    "INPUT_DESCRIPTION",
    "OUTPUT_NAME",
    "OUTPUT_DESCRIPTION",
    "LABELS_DESCRIPTION",
    "label_file_name",
    "is_single_line",
    "classifier_metadata",
    "encode_metadata",
    "decode_metadata",
    "metadata_json",
    "pack_metadata",
    "write_classifier_metadata",
    "has_metadata",
    "read_metadata",
    "read_associated_files",
    "Operator",
    "read_operators",
    "read_labels",
]

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
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import flatbuffers
from flatbuffers import number_types as fbn
from flatbuffers.table import Table

from .errors import InvalidInputError, ModelFormatError
from .frontend import SAMPLE_RATE

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
]

ModelSource = Union[bytes, bytearray, str, "os.PathLike[str]"]
Labels = Union[Sequence[str], Mapping[Optional[str], Sequence[str]]]

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


# ---------------------------------------------------------------------------------------
# Reading flatbuffers safely.


class _Corrupt(Exception):
    """A flatbuffer offset or length points outside the buffer; becomes ModelFormatError."""


class _View:
    """A bounds-checked view of one flatbuffer table (wraps ``flatbuffers.table.Table``)."""

    def __init__(self, buf: bytes, pos: int) -> None:
        _check(buf, pos, 4)
        vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        _check(buf, vtable, 4)
        _check(buf, vtable, struct.unpack_from("<H", buf, vtable)[0])
        self.buf = buf
        self.tab = Table(buf, pos)

    def num_slots(self) -> int:
        """How many field slots the table's vtable has (present or not)."""
        vtable = self.tab.Pos - self.tab.Get(fbn.SOffsetTFlags, self.tab.Pos)
        return (self.tab.Get(fbn.VOffsetTFlags, vtable) - 4) // 2

    def _field(self, slot: int) -> int:
        """Absolute position of a field's value, or 0 when the field is absent."""
        offset = self.tab.Offset(4 + 2 * slot)
        return self.tab.Pos + offset if offset else 0

    def has(self, slot: int) -> bool:
        return self._field(slot) != 0

    def scalar(self, slot: int, flags, default=0):
        pos = self._field(slot)
        if not pos:
            return default
        _check(self.buf, pos, flags.bytewidth)
        return self.tab.Get(flags, pos)

    def target(self, slot: int) -> Optional[int]:
        """Absolute position of the object an offset field points at, or None."""
        pos = self._field(slot)
        if not pos:
            return None
        _check(self.buf, pos, 4)
        target = self.tab.Indirect(pos)
        _check(self.buf, target, 4)
        return target

    def table(self, slot: int) -> Optional["_View"]:
        target = self.target(slot)
        return None if target is None else _View(self.buf, target)

    def vector(self, slot: int, elem_size: int) -> Optional[Tuple[int, int]]:
        """``(start, length)`` of a vector field, or None."""
        target = self.target(slot)
        if target is None:
            return None
        length = self.tab.Get(fbn.Uint32Flags, target)
        _check(self.buf, target + 4, length * elem_size)
        return target + 4, length

    def string(self, slot: int) -> Optional[str]:
        span = self.vector(slot, 1)
        return None if span is None else _utf8(self.buf[span[0] : span[0] + span[1]])

    def tables(self, slot: int) -> List["_View"]:
        span = self.vector(slot, 4)
        if span is None:
            return []
        start, length = span
        positions = (start + 4 * i for i in range(length))
        return [_View(self.buf, pos + self.tab.Get(fbn.UOffsetTFlags, pos)) for pos in positions]

    def strings(self, slot: int) -> List[str]:
        span = self.vector(slot, 4)
        if span is None:
            return []
        out = []
        for i in range(span[1]):
            pos = span[0] + 4 * i
            target = pos + self.tab.Get(fbn.UOffsetTFlags, pos)
            _check(self.buf, target, 4)
            length = self.tab.Get(fbn.Uint32Flags, target)
            _check(self.buf, target + 4, length)
            out.append(_utf8(self.buf[target + 4 : target + 4 + length]))
        return out

    def scalars(self, slot: int, flags) -> list:
        span = self.vector(slot, flags.bytewidth)
        if span is None:
            return []
        return [self.tab.Get(flags, span[0] + flags.bytewidth * i) for i in range(span[1])]


def _check(buf: bytes, pos: int, size: int) -> None:
    if pos < 0 or size < 0 or pos + size > len(buf):
        raise _Corrupt(f"offset {pos} (+{size} bytes) lies outside the {len(buf)}-byte buffer")


def _utf8(raw: bytes) -> str:
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Corrupt(f"a string is not UTF-8 ({exc.reason})") from None


# ---------------------------------------------------------------------------------------
# Metadata flatbuffer <-> dict.


def encode_metadata(metadata: Mapping) -> bytes:
    """Serialise a metadata dict (``ModelMetadata``) to a flatbuffer with identifier ``"M001"``.

    Fields whose value equals the schema default (0, empty) are left out, as
    flatbuffers writers do; unknown keys raise :class:`InvalidInputError`.
    """
    builder = flatbuffers.Builder(1024)
    root = _encode_table(builder, "ModelMetadata", metadata)
    builder.Finish(root, file_identifier=_METADATA_IDENTIFIER)
    return bytes(builder.Output())


def _encode_table(builder, table: str, value: Mapping) -> int:
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"metadata {table} must be a dict, got {type(value).__name__}")
    known = {name for name, _ in _TABLES[table]}
    known |= {f"{name}_type" for name, kind in _TABLES[table] if kind.startswith("union:")}
    unknown = sorted(set(value) - known)
    if unknown:
        raise InvalidInputError(f"metadata {table} has unknown fields {unknown}")
    # Children first: a flatbuffers builder cannot nest objects.
    children = {}
    for name, kind, _ in _slots(table):
        if value.get(name) is not None and not _is_scalar(kind):
            children[name] = _encode_child(builder, kind, value, name)
    builder.StartObject(_num_slots(table))
    for name, kind, slot in _slots(table):
        if name in children:
            if kind.startswith("union:"):
                builder.PrependUint8Slot(slot, children[name][0], 0)
                builder.PrependUOffsetTRelativeSlot(slot + 1, children[name][1], 0)
            else:
                builder.PrependUOffsetTRelativeSlot(slot, children[name], 0)
        elif value.get(name) is not None:
            _prepend_scalar_slot(builder, kind, slot, value[name], table, name)
    return builder.EndObject()


def _is_scalar(kind: str) -> bool:
    return kind in _SCALARS or kind.startswith("enum:")


def _prepend_scalar_slot(builder, kind: str, slot: int, value, table: str, name: str) -> None:
    if kind.startswith("enum:"):
        builder.PrependInt8Slot(slot, _enum_index(_ENUMS[kind[5:]], value, f"{table}.{name}"), 0)
    elif kind == "float":
        builder.PrependFloat32Slot(slot, float(value), 0.0)
    elif kind == "uint":
        builder.PrependUint32Slot(slot, _integer(value, 0, 2**32 - 1, f"{table}.{name}"), 0)
    else:
        builder.PrependInt32Slot(slot, _integer(value, -(2**31), 2**31 - 1, f"{table}.{name}"), 0)


def _integer(value, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInputError(f"metadata {what} must be an integer in [{low}, {high}], got {value!r}")
    return value


def _enum_index(names: Sequence[str], value, what: str) -> int:
    if value not in names:
        raise InvalidInputError(f"metadata {what} must be one of {list(names)}, got {value!r}")
    return names.index(value)


def _encode_child(builder, kind: str, value: Mapping, name: str):
    item = value[name]
    if kind == "string":
        return builder.CreateString(str(item))
    if kind.startswith("union:"):
        members = _UNIONS[kind[6:]]
        member = value.get(f"{name}_type")
        index = _enum_index(members[1:], member, f"{name}_type") + 1
        return index, _encode_table(builder, member, item)
    if kind == "[ubyte]":
        return _byte_vector(builder, bytes(item), _CUSTOM_DATA_ALIGNMENT)
    if kind.startswith("["):
        return _encode_vector(builder, kind[1:-1], list(item))
    return _encode_table(builder, kind, item)


def _encode_vector(builder, kind: str, items: list) -> int:
    if kind == "string" or kind in _TABLES:
        offsets = [builder.CreateString(str(x)) if kind == "string" else _encode_table(builder, kind, x) for x in items]
        builder.StartVector(4, len(offsets), 4)
        for offset in reversed(offsets):
            builder.PrependUOffsetTRelative(offset)
        return builder.EndVector()
    builder.StartVector(4, len(items), 4)
    for x in reversed(items):
        if kind == "float":
            builder.PrependFloat32(float(x))
        else:
            builder.PrependUint32(_integer(x, 0, 2**32 - 1, "vector element"))
    return builder.EndVector()


def _byte_vector(builder, data: bytes, alignment: int) -> int:
    """A ``[ubyte]`` vector whose first byte is ``alignment``-aligned."""
    builder.StartVector(1, len(data), alignment)
    builder.head = builder.head - len(data)
    builder.Bytes[builder.head : builder.head + len(data)] = data
    return builder.EndVector()


def decode_metadata(buffer: bytes, *, source: Optional[ModelSource] = None) -> dict:
    """Parse a metadata flatbuffer (identifier ``"M001"``) into a dict.

    Args:
      buffer: the bytes of the ``TFLITE_METADATA`` buffer.
      source: the file the buffer came from, named in errors.

    Raises:
      ModelFormatError: wrong identifier, or offsets outside the buffer.
    """
    buf = bytes(buffer)
    if len(buf) < 8 or buf[4:8] != _METADATA_IDENTIFIER:
        raise ModelFormatError("the TFLite metadata buffer lacks the 'M001' identifier", path=_path_of(source))
    try:
        return _decode_table(_View(buf, struct.unpack_from("<I", buf, 0)[0]), "ModelMetadata")
    except (_Corrupt, struct.error) as exc:
        raise ModelFormatError(f"corrupt TFLite metadata: {exc}", path=_path_of(source)) from None


def _decode_table(view: _View, table: str) -> dict:
    out: dict = {}
    for name, kind, slot in _slots(table):
        if not view.has(slot + (1 if kind.startswith("union:") else 0)):
            continue
        if kind.startswith("union:"):
            members = _UNIONS[kind[6:]]
            index = view.scalar(slot, fbn.Uint8Flags)
            if not 0 < index < len(members):
                raise _Corrupt(f"{table}.{name} has unknown union type {index}")
            out[f"{name}_type"] = members[index]
            out[name] = _decode_table(view.table(slot + 1), members[index])
        elif kind == "string":
            out[name] = view.string(slot)
        elif kind in _SCALARS:
            out[name] = view.scalar(slot, _SCALARS[kind])
        elif kind.startswith("enum:"):
            names = _ENUMS[kind[5:]]
            index = view.scalar(slot, fbn.Int8Flags)
            out[name] = names[index] if 0 <= index < len(names) else index
        elif kind == "[ubyte]":
            start, length = view.vector(slot, 1)
            out[name] = bytes(view.buf[start : start + length])
        elif kind == "[string]":
            out[name] = view.strings(slot)
        elif kind.startswith("["):
            inner = kind[1:-1]
            if inner in _TABLES:
                out[name] = [_decode_table(v, inner) for v in view.tables(slot)]
            else:
                out[name] = view.scalars(slot, _SCALARS[inner])
        else:
            out[name] = _decode_table(view.table(slot), kind)
    return out


# ---------------------------------------------------------------------------------------
# JSON, as tflite-support's MetadataDisplayer prints it (flatbuffers' text generator
# with strict JSON and an indent of 2).


def metadata_json(metadata: Mapping) -> str:
    """Render a metadata dict as tflite-support's ``MetadataDisplayer`` JSON.

    Fields in schema order, two-space indent, empty tables as ``{`` newline ``}``,
    floats with a decimal point, enums by name, non-ASCII escaped; ends with a
    newline. This is the text Model Maker saved as ``<model>.json``.
    """
    return _json_table("ModelMetadata", metadata, 0) + "\n"


def _json_table(table: str, value: Mapping, indent: int) -> str:
    pad = " " * (indent + 2)
    parts = []
    for name, kind, _ in _slots(table):
        if kind.startswith("union:") and value.get(name) is not None:
            member = value[f"{name}_type"]
            parts.append(f'{pad}"{name}_type": {_json_string(member)}')
            parts.append(f'{pad}"{name}": {_json_table(member, value[name], indent + 2)}')
        elif value.get(name) is not None:
            parts.append(f'{pad}"{name}": {_json_value(kind, value[name], indent + 2)}')
    body = ",\n".join(parts) + "\n" if parts else ""
    return "{\n" + body + " " * indent + "}"


def _json_value(kind: str, value, indent: int) -> str:
    if kind == "string" or kind.startswith("enum:"):
        return _json_string(value) if isinstance(value, str) else str(int(value))
    if kind == "float":
        return _json_float(value)
    if kind in _SCALARS:
        return str(int(value))
    if kind.startswith("["):
        inner = "uint" if kind == "[ubyte]" else kind[1:-1]
        pad = " " * (indent + 2)
        items = [pad + _json_value(inner, x, indent + 2) for x in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    return _json_table(kind, value, indent)


def _json_float(value: float) -> str:
    """flatbuffers' ``FloatToString``: fixed notation, 6 decimals, trailing zeros cut to one."""
    text = f"{float(struct.unpack('<f', struct.pack('<f', value))[0]):.6f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _json_string(text: str) -> str:
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _JSON_ESCAPES:
            out.append(_JSON_ESCAPES[ch])
        elif 0x20 <= code <= 0x7E:
            out.append(ch)
        elif code > 0xFFFF:
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}")
        else:
            out.append(f"\\u{code:04X}")
    out.append('"')
    return "".join(out)


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


# ---------------------------------------------------------------------------------------
# The classifier metadata Model Maker wrote.


def label_file_name(locale: Optional[str] = None, *, output_name: str = OUTPUT_NAME) -> str:
    """``probability_labels.txt``, or ``probability_labels_<locale>.txt`` for a locale."""
    return f"{output_name}_labels{'_' + locale if locale else ''}.txt"


def _label_sets(labels: Labels) -> List[Tuple[Optional[str], List[str]]]:
    """``[(locale or None, labels)]``, checked: same length, no newlines, no empty set."""
    sets = list(labels.items()) if isinstance(labels, Mapping) else [(None, labels)]
    if not sets:
        raise InvalidInputError("labels must not be empty")
    out = []
    for locale, names in sets:
        if isinstance(names, (str, bytes)):
            raise InvalidInputError(f"labels must be a list of strings, got {type(names).__name__}")
        names = list(names)
        bad = [n for n in names if not isinstance(n, str) or "\n" in n or "\r" in n]
        if not names or bad:
            raise InvalidInputError(f"labels must be non-empty single-line strings, got {bad or names!r}")
        if len(names) != len(sets[0][1]):
            raise InvalidInputError(f"locale {locale!r} has {len(names)} labels, expected {len(sets[0][1])}")
        out.append((locale, names))
    return out


def classifier_metadata(
    labels: Labels, *, sample_rate: int = SAMPLE_RATE, channels: int = 1
) -> Tuple[dict, Dict[str, bytes]]:
    """The metadata Model Maker's BrowserFftSpec wrote, and its label files.

    Args:
      labels: class names in output order; or a mapping ``locale -> names``
        (Model Maker's OrderedDict form; ``None`` is the default locale) for
        translated label files.
      sample_rate: Hz of the input clip (``AudioProperties.sample_rate``).
      channels: interleaved channels of the input (``AudioProperties.channels``).

    Returns:
      ``(metadata dict, {file name: file bytes})``; label files hold one UTF-8
      label per line with no trailing newline.
    """
    if sample_rate <= 0 or channels <= 0:
        raise InvalidInputError(f"sample_rate and channels must be positive, got {sample_rate}, {channels}")
    files: Dict[str, bytes] = {}
    file_entries = []
    for locale, names in _label_sets(labels):
        name = label_file_name(locale)
        files[name] = "\n".join(names).encode("utf-8")
        entry = {"name": name, "description": LABELS_DESCRIPTION, "type": "TENSOR_AXIS_LABELS"}
        if locale:
            entry["locale"] = locale
        file_entries.append(entry)
    audio_input = {
        "name": INPUT_NAME,
        "description": INPUT_DESCRIPTION,
        "content": {
            "content_properties_type": "AudioProperties",
            "content_properties": {"sample_rate": int(sample_rate), "channels": int(channels)},
        },
        "stats": {},
    }
    scores_output = {
        "name": OUTPUT_NAME,
        "description": OUTPUT_DESCRIPTION,
        "content": {"content_properties_type": "FeatureProperties", "content_properties": {}},
        "stats": {"max": [1.0], "min": [0.0]},
        "associated_files": file_entries,
    }
    metadata = {
        "name": MODEL_NAME,
        "description": MODEL_DESCRIPTION,
        "version": MODEL_VERSION,
        "subgraph_metadata": [{"input_tensor_metadata": [audio_input], "output_tensor_metadata": [scores_output]}],
        "author": MODEL_AUTHOR,
        "license": MODEL_LICENSE,
        "min_parser_version": MIN_PARSER_VERSION,
    }
    return metadata, files


# ---------------------------------------------------------------------------------------
# The TFLite model: find, replace and read its metadata buffer.

# tflite schema.fbs slots: Model {version, operator_codes, subgraphs, description,
# buffers, metadata_buffer, metadata, signature_defs}; Buffer {data, offset, size};
# Metadata {name, buffer}; SubGraph {tensors, inputs, outputs, ...}; Tensor {shape, ...}.
_MODEL_VERSION, _MODEL_BUFFERS, _MODEL_METADATA = 0, 4, 6
_MODEL_OFFSET_SLOTS = (1, 2, 3, 5, 7)  # operator_codes, subgraphs, description, metadata_buffer, signature_defs
_MODEL_NUM_SLOTS = 8
_BUFFER_DATA, _BUFFER_OFFSET = 0, 1


def _load(model: ModelSource) -> Tuple[bytes, Optional[str]]:
    """``(bytes, path or None)`` of a model given as bytes or a file path."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), None
    path = os.fspath(model)
    try:
        with open(path, "rb") as handle:
            return handle.read(), path
    except OSError as exc:
        raise ModelFormatError(f"cannot read the model ({exc.strerror or exc})", path=path) from None


def _path_of(source) -> Optional[str]:
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else None


def _split_zip(data: bytes) -> Tuple[bytes, Optional[zipfile.ZipFile]]:
    """``(flatbuffer bytes, appended ZIP archive or None)``."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return data, None
    start = min((m.header_offset for m in members), default=0)
    if not members or start < 8:
        return data, None
    return data[:start], archive


def _model_root(flatbuffer: bytes) -> _View:
    if len(flatbuffer) < 8 or flatbuffer[4:8] != _TFLITE_IDENTIFIER:
        raise _Corrupt("not a TFLite model (no 'TFL3' identifier)")
    root = _View(flatbuffer, struct.unpack_from("<I", flatbuffer, 0)[0])
    extra = [slot for slot in range(_MODEL_NUM_SLOTS, root.num_slots()) if root.has(slot)]
    if extra:
        raise _Corrupt(f"the Model table has fields {extra} that this reader does not know")
    return root


def _metadata_entries(root: _View) -> List[Tuple[str, int]]:
    """``[(name, buffer index)]`` of ``Model.metadata``."""
    return [(m.string(0) or "", m.scalar(1, fbn.Uint32Flags)) for m in root.tables(_MODEL_METADATA)]


def _buffer_data(root: _View, index: int) -> bytes:
    buffers = root.tables(_MODEL_BUFFERS)
    if index >= len(buffers):
        raise _Corrupt(f"metadata refers to buffer {index}, the model has {len(buffers)}")
    span = buffers[index].vector(_BUFFER_DATA, 1)
    return b"" if span is None else root.buf[span[0] : span[0] + span[1]]


def pack_metadata(model: bytes, metadata: Mapping, files: Mapping[str, bytes]) -> bytes:
    """Embed metadata and its associated files into a TFLite model.

    The model flatbuffer is rebuilt with one more buffer holding
    :func:`encode_metadata` ``(metadata)`` and a ``"TFLITE_METADATA"`` entry pointing
    at it (an existing entry's buffer is replaced instead); every other object of
    the model is kept byte for byte. Any ZIP archive already appended is
    dropped, and ``files`` are appended as a new, uncompressed one.

    Args:
      model: a ``.tflite`` flatbuffer (with or without metadata).
      metadata: a ``ModelMetadata`` dict (see :func:`classifier_metadata`).
      files: the associated files, ``{name: bytes}``; the names must be exactly
        those the metadata refers to.

    Returns:
      the bytes of the new ``.tflite`` file.
    """
    referenced = set(_associated_file_names(metadata))
    if referenced != set(files):
        raise InvalidInputError(
            f"metadata refers to files {sorted(referenced)} but {sorted(files)} were given"
        )
    flatbuffer, _ = _split_zip(bytes(model))
    try:
        packed = _rebuild_model(flatbuffer, encode_metadata(metadata))
    except (_Corrupt, struct.error) as exc:
        raise ModelFormatError(f"cannot add metadata to this model: {exc}") from None
    out = io.BytesIO(packed)
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, bytes(data))
    return out.getvalue()


def _associated_file_names(metadata: Mapping) -> List[str]:
    """Names of every associated file a metadata dict refers to, wherever it sits."""
    names = []

    def visit(node):
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key in ("associated_files", "vocab_file", "sentencePiece_model"):
                    names.extend(f.get("name") for f in value)
                else:
                    visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(metadata)
    return names


def _rebuild_model(flatbuffer: bytes, metadata_buffer: bytes) -> bytes:
    """A new Model root that reuses the original objects in place.

    The original flatbuffer is copied whole, 16-byte aligned, to the end of the
    new one; the new root table, its new ``buffers`` and ``metadata`` vectors and
    the new Buffer/Metadata tables come before it and point forward into it, so
    every original offset stays valid. Unreferenced leftovers (the old root and
    its two old vectors) stay behind as a few dead bytes.
    """
    root = _model_root(flatbuffer)
    buffers = root.tables(_MODEL_BUFFERS)
    for index, buffer in enumerate(buffers):
        if buffer.scalar(_BUFFER_OFFSET, fbn.Uint64Flags) > 1:
            raise _Corrupt(f"buffer {index} is stored outside the flatbuffer (models over 2 GB are not supported)")
    entries = _metadata_entries(root)
    existing = [i for i, (name, _) in enumerate(entries) if name == METADATA_NAME]

    builder = flatbuffers.Builder(len(flatbuffer) + len(metadata_buffer) + 4096)
    _byte_vector(builder, flatbuffer, _CUSTOM_DATA_ALIGNMENT)
    blob_start = builder.Offset() - 4  # "offset from the end" of the original's first byte

    def original(position: int) -> int:
        return blob_start - position

    data = _byte_vector(builder, metadata_buffer, _CUSTOM_DATA_ALIGNMENT)
    builder.StartObject(3)
    builder.PrependUOffsetTRelativeSlot(_BUFFER_DATA, data, 0)
    new_buffer = builder.EndObject()

    buffer_offsets = [original(b.tab.Pos) for b in buffers]
    metadata_offsets = [original(m.tab.Pos) for m in root.tables(_MODEL_METADATA)]
    if existing:
        buffer_offsets[entries[existing[0]][1]] = new_buffer
    else:
        name = builder.CreateString(METADATA_NAME)
        builder.StartObject(2)
        builder.PrependUint32Slot(1, len(buffers), 0)
        builder.PrependUOffsetTRelativeSlot(0, name, 0)
        metadata_offsets.append(builder.EndObject())
        buffer_offsets.append(new_buffer)

    vectors = {}
    for slot, offsets in ((_MODEL_BUFFERS, buffer_offsets), (_MODEL_METADATA, metadata_offsets)):
        builder.StartVector(4, len(offsets), 4)
        for offset in reversed(offsets):
            builder.PrependUOffsetTRelative(offset)
        vectors[slot] = builder.EndVector()

    builder.StartObject(_MODEL_NUM_SLOTS)
    builder.PrependUint32Slot(_MODEL_VERSION, root.scalar(_MODEL_VERSION, fbn.Uint32Flags), 0)
    for slot in _MODEL_OFFSET_SLOTS:
        target = root.target(slot)
        if target is not None:
            builder.PrependUOffsetTRelativeSlot(slot, original(target), 0)
    for slot, vector in vectors.items():
        builder.PrependUOffsetTRelativeSlot(slot, vector, 0)
    builder.Finish(builder.EndObject(), file_identifier=_TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def _io_shapes(root: _View) -> Tuple[List[List[int]], List[List[int]]]:
    """Shapes of the first subgraph's inputs and outputs."""
    subgraphs = root.tables(2)
    if not subgraphs:
        raise _Corrupt("the model has no subgraph")
    tensors = subgraphs[0].tables(0)

    def shapes(slot):
        out = []
        for index in subgraphs[0].scalars(slot, fbn.Int32Flags):
            if not 0 <= index < len(tensors):
                raise _Corrupt(f"tensor index {index} out of range")
            out.append(tensors[index].scalars(0, fbn.Int32Flags))
        return out

    return shapes(1), shapes(2)


class Operator(NamedTuple):
    """One operator of a TFLite graph, in execution order."""

    code: int
    """The ``tflite.BuiltinOperator`` value (e.g. 3 = CONV_2D, 9 = FULLY_CONNECTED)."""
    inputs: Tuple[str, ...]
    """Names of its input tensors (optional inputs left out)."""
    outputs: Tuple[str, ...]
    """Names of its output tensors."""


def read_operators(model: ModelSource) -> List[Operator]:
    """The operators of a TFLite model's first subgraph, in execution order.

    Raises:
      ModelFormatError: not a TFLite model, or corrupt.
    """
    data, path = _load(model)
    try:
        root = _model_root(_split_zip(data)[0])
        # OperatorCode {deprecated_builtin_code: byte, custom_code, version, builtin_code: int}
        codes = [max(c.scalar(0, fbn.Int8Flags), c.scalar(3, fbn.Int32Flags)) for c in root.tables(1)]
        subgraphs = root.tables(2)
        if not subgraphs:
            raise _Corrupt("the model has no subgraph")
        names = [t.string(3) or "" for t in subgraphs[0].tables(0)]

        def tensor_names(indices):
            if any(i >= len(names) for i in indices):
                raise _Corrupt("an operator refers to a tensor that does not exist")
            return tuple(names[i] for i in indices if i >= 0)

        out = []
        for op in subgraphs[0].tables(3):  # Operator {opcode_index, inputs, outputs, ...}
            index = op.scalar(0, fbn.Uint32Flags)
            if index >= len(codes):
                raise _Corrupt(f"operator code {index} does not exist")
            out.append(
                Operator(
                    codes[index],
                    tensor_names(op.scalars(1, fbn.Int32Flags)),
                    tensor_names(op.scalars(2, fbn.Int32Flags)),
                )
            )
        return out
    except (_Corrupt, struct.error) as exc:
        raise ModelFormatError(f"not a valid TFLite model: {exc}", path=path) from None


def write_classifier_metadata(
    model: bytes, labels: Labels, *, sample_rate: int = SAMPLE_RATE, channels: int = 1
) -> bytes:
    """Add Model Maker's audio-classifier metadata and label files to a TFLite model.

    Args:
      model: a converted classifier: one input ``[1, samples]`` float32, one
        output ``[1, N]`` scores.
      labels: ``N`` class names (or ``{locale: names}``, see :func:`classifier_metadata`).
      sample_rate, channels: the input's audio format.

    Returns:
      the ``.tflite`` bytes with metadata and ``probability_labels*.txt`` packed in.

    Raises:
      InvalidInputError: not one input and one output, or ``N`` differs from the label count.
      ModelFormatError: the bytes are not a TFLite model.
    """
    metadata, files = classifier_metadata(labels, sample_rate=sample_rate, channels=channels)
    try:
        inputs, outputs = _io_shapes(_model_root(_split_zip(bytes(model))[0]))
    except (_Corrupt, struct.error) as exc:
        raise ModelFormatError(f"not a usable TFLite model: {exc}") from None
    num_labels = len(_label_sets(labels)[0][1])
    if len(inputs) != 1 or len(outputs) != 1:
        raise InvalidInputError(f"expected one input and one output, the model has {len(inputs)} and {len(outputs)}")
    if not outputs[0] or outputs[0][-1] != num_labels:
        raise InvalidInputError(f"the model's output shape {outputs[0]} does not end in {num_labels} (the label count)")
    return pack_metadata(model, metadata, files)


def _metadata_buffer(model: ModelSource) -> Tuple[Optional[bytes], Optional[str]]:
    """``(the TFLITE_METADATA buffer or None when the model has none, the file's path)``.

    Raises:
      ModelFormatError: not a TFLite model, or corrupt.
    """
    data, path = _load(model)
    try:
        root = _model_root(_split_zip(data)[0])
        indices = [index for name, index in _metadata_entries(root) if name == METADATA_NAME]
        return (_buffer_data(root, indices[0]) if indices else None), path
    except (_Corrupt, struct.error) as exc:
        raise ModelFormatError(f"not a valid TFLite model: {exc}", path=path) from None


def has_metadata(model: ModelSource) -> bool:
    """Whether a ``.tflite`` file or bytes carries ``TFLITE_METADATA``.

    Raises:
      ModelFormatError: not a TFLite model, or corrupt.
    """
    return _metadata_buffer(model)[0] is not None


def read_metadata(model: ModelSource) -> dict:
    """The metadata of a ``.tflite`` file or bytes, as a dict shaped like :func:`metadata_json`.

    Raises:
      ModelFormatError: not a TFLite model, corrupt, or without ``TFLITE_METADATA``.
    """
    buffer, path = _metadata_buffer(model)
    if buffer is None:
        raise ModelFormatError("the model has no TFLite metadata", path=path)
    return decode_metadata(buffer, source=path)


def read_associated_files(model: ModelSource) -> Dict[str, bytes]:
    """``{name: bytes}`` of the files packed into a ``.tflite`` (empty when none).

    Raises:
      ModelFormatError: not a TFLite model, or a damaged archive.
    """
    data, path = _load(model)
    flatbuffer, archive = _split_zip(data)
    try:
        _model_root(flatbuffer)
    except (_Corrupt, struct.error) as exc:
        raise ModelFormatError(f"not a valid TFLite model: {exc}", path=path) from None
    if archive is None:
        return {}
    try:
        with archive:
            return {info.filename: archive.read(info) for info in archive.infolist()}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ModelFormatError(f"the packed files are damaged ({exc})", path=path) from None


def read_labels(model: ModelSource, *, locale: Optional[str] = None) -> List[str]:
    """Class names of the first output, from its ``TENSOR_AXIS_LABELS`` file.

    Args:
      model: ``.tflite`` bytes or path.
      locale: pick the label file of this locale (display names); the file
        without a locale (the category names) by default.

    Raises:
      ModelFormatError: no metadata, no label file for the locale, or a damaged archive.
    """
    data, path = _load(model)
    outputs = read_metadata(data)["subgraph_metadata"][0].get("output_tensor_metadata", [])
    entries = [
        f for f in (outputs[0].get("associated_files", []) if outputs else [])
        if f.get("type") == "TENSOR_AXIS_LABELS" and f.get("locale") == locale
    ]
    if not entries:
        raise ModelFormatError(f"no TENSOR_AXIS_LABELS file for locale {locale!r}", path=path)
    files = read_associated_files(data)
    name = entries[0]["name"]
    if name not in files:
        raise ModelFormatError(f"the label file {name} is declared but not packed", path=path)
    return files[name].decode("utf-8").splitlines()

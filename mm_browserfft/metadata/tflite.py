"""The TFLite model file: find, replace and read its metadata buffer, its tensors and its
operators."""

from __future__ import annotations

import io
import os
import struct
import zipfile
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

import flatbuffers
from flatbuffers import number_types as fbn

from ..errors import InvalidInputError, ModelFormatError
from ..frontend import SAMPLE_RATE
from .classifier import _label_sets, classifier_metadata
from .codec import _byte_vector, decode_metadata, encode_metadata
from .schema import Labels, METADATA_NAME, ModelSource, _CUSTOM_DATA_ALIGNMENT, _TFLITE_IDENTIFIER
from .view import _Corrupt, _View


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

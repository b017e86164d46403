"""Metadata flatbuffer <-> dict, and its JSON as tflite-support prints it."""

from __future__ import annotations

import struct
from typing import Mapping, Optional, Sequence

import flatbuffers
from flatbuffers import number_types as fbn

from ..errors import InvalidInputError, ModelFormatError
from .schema import (
    _path_of,
    ModelSource,
    _CUSTOM_DATA_ALIGNMENT,
    _ENUMS,
    _METADATA_IDENTIFIER,
    _SCALARS,
    _TABLES,
    _UNIONS,
    _num_slots,
    _slots,
)
from .view import _Corrupt, _View


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

"""Reading flatbuffers safely: every offset and size checked before it is followed."""

from __future__ import annotations

import struct
from typing import List, Optional, Tuple

from flatbuffers import number_types as fbn
from flatbuffers.table import Table


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

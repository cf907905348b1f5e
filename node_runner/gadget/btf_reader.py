"""Reading a raw ``.BTF`` blob (header, string section, type section) into type records.

Traps avoided:
- Every count and offset comes from the input: all reads are bounds-checked and failures are
  ``GadgetFormatError`` saying what was read, never ``IndexError``/``struct.error``.
- vmlinux has 100k+ types: the type section is read once as an array of u32 words (every BTF
  record is a multiple of 4 bytes) and strings are decoded once, so parsing stays well < 2 s.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Callable

from node_runner.gadget.btf_types import (
    VOID,
    Array,
    BtfType,
    Composite,
    Datasec,
    DeclTag,
    EnumType,
    EnumValue,
    Float,
    Func,
    FuncParam,
    FuncProto,
    Fwd,
    Int,
    Kind,
    Member,
    Modifier,
    Ptr,
    Typedef,
    Var,
    VarSecinfo,
)
from node_runner.gadget.errors import GadgetFormatError

BTF_MAGIC = 0xEB9F
# magic, version, flags, hdr_len, type_off, type_len, str_off, str_len
_HEADER = struct.Struct("<HBBIIIII")


class _Strings:
    """The string section, decoded once; offsets into the middle of a string also work."""

    def __init__(self, raw: bytes) -> None:
        if raw and (raw[0] != 0 or raw[-1] != 0):
            raise GadgetFormatError("reading BTF strings: section must start and end with NUL")
        self._raw = raw
        self._by_off: dict[int, str] = {}
        pos = 0
        for piece in raw.split(b"\0"):
            self._by_off[pos] = piece.decode("utf-8", errors="replace")
            pos += len(piece) + 1

    def get(self, off: int) -> str:
        found = self._by_off.get(off)
        if found is not None:
            return found
        if off >= len(self._raw):
            raise GadgetFormatError(
                f"reading BTF: string offset {off} is outside the string section "
                f"({len(self._raw)} bytes)"
            )
        end = self._raw.index(b"\0", off)
        return self._raw[off:end].decode("utf-8", errors="replace")


def _s32(v: int) -> int:
    return v - (1 << 32) if v & 0x80000000 else v


_Names = Callable[[int], str]
# A maker gets (kind, name, size_or_type, vlen, kind_flag, extra words, string lookup).
_Maker = Callable[[int, str, int, int, int, list[int], _Names], BtfType]


def _int(k: int, n: str, st: int, vl: int, kf: int, x: list[int], s: _Names) -> BtfType:
    return Int(n, st, x[0] & 0xFF, (x[0] >> 16) & 0xFF, (x[0] >> 24) & 0x0F)


def _composite(k: int, n: str, st: int, vl: int, kf: int, x: list[int], s: _Names) -> BtfType:
    if kf:  # offset word = bitfield_size << 24 | bit_offset
        members = tuple(
            Member(s(x[i]), x[i + 1], x[i + 2] & 0xFFFFFF, x[i + 2] >> 24)
            for i in range(0, len(x), 3)
        )
    else:
        members = tuple(Member(s(x[i]), x[i + 1], x[i + 2], 0) for i in range(0, len(x), 3))
    return Composite(Kind(k), n, st, members)


def _enum(k: int, n: str, st: int, vl: int, kf: int, x: list[int], s: _Names) -> BtfType:
    values = tuple(
        EnumValue(s(x[i]), _s32(x[i + 1]) if kf else x[i + 1]) for i in range(0, len(x), 2)
    )
    return EnumType(Kind.ENUM, n, st, bool(kf), values)


def _enum64(k: int, n: str, st: int, vl: int, kf: int, x: list[int], s: _Names) -> BtfType:
    values = []
    for i in range(0, len(x), 3):
        v = x[i + 1] | (x[i + 2] << 32)
        if kf and v & (1 << 63):
            v -= 1 << 64
        values.append(EnumValue(s(x[i]), v))
    return EnumType(Kind.ENUM64, n, st, bool(kf), tuple(values))


def _proto(k: int, n: str, st: int, vl: int, kf: int, x: list[int], s: _Names) -> BtfType:
    return FuncProto(n, st, tuple(FuncParam(s(x[i]), x[i + 1]) for i in range(0, len(x), 2)))


def _datasec(k: int, n: str, st: int, vl: int, kf: int, x: list[int], s: _Names) -> BtfType:
    return Datasec(n, st, tuple(VarSecinfo(*x[i : i + 3]) for i in range(0, len(x), 3)))


def _modifier(k: int, n: str, st: int, vl: int, kf: int, x: list[int], s: _Names) -> BtfType:
    return Modifier(Kind(k), n, st)


# kind -> (extra words after the 3-word header, words per vlen entry, maker)
_LAYOUT: dict[int, tuple[int, int, _Maker]] = {
    Kind.INT: (1, 0, _int),
    Kind.PTR: (0, 0, lambda k, n, st, vl, kf, x, s: Ptr(n, st)),
    Kind.ARRAY: (3, 0, lambda k, n, st, vl, kf, x, s: Array(n, x[0], x[1], x[2])),
    Kind.STRUCT: (0, 3, _composite),
    Kind.UNION: (0, 3, _composite),
    Kind.ENUM: (0, 2, _enum),
    Kind.FWD: (0, 0, lambda k, n, st, vl, kf, x, s: Fwd(n, bool(kf))),
    Kind.TYPEDEF: (0, 0, lambda k, n, st, vl, kf, x, s: Typedef(n, st)),
    Kind.VOLATILE: (0, 0, _modifier),
    Kind.CONST: (0, 0, _modifier),
    Kind.RESTRICT: (0, 0, _modifier),
    Kind.FUNC: (0, 0, lambda k, n, st, vl, kf, x, s: Func(n, st, vl)),
    Kind.FUNC_PROTO: (0, 2, _proto),
    Kind.VAR: (1, 0, lambda k, n, st, vl, kf, x, s: Var(n, st, x[0])),
    Kind.DATASEC: (0, 3, _datasec),
    Kind.FLOAT: (0, 0, lambda k, n, st, vl, kf, x, s: Float(n, st)),
    Kind.DECL_TAG: (1, 0, lambda k, n, st, vl, kf, x, s: DeclTag(n, st, _s32(x[0]))),
    Kind.TYPE_TAG: (0, 0, _modifier),
    Kind.ENUM64: (0, 3, _enum64),
}


def _read_types(w: list[int], names: _Names) -> list[BtfType]:
    """Walk the type section (u32 words) and build one record per type; [0] is void."""
    out: list[BtfType] = [VOID]
    pos, n = 0, len(w)
    while pos < n:
        if pos + 3 > n:
            raise GadgetFormatError(f"reading BTF type [{len(out)}]: truncated type header")
        name_off, info, st = w[pos], w[pos + 1], w[pos + 2]
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        layout = _LAYOUT.get(kind)
        if layout is None:
            raise GadgetFormatError(f"reading BTF type [{len(out)}]: unknown kind {kind}")
        start = pos + 3
        pos = start + layout[0] + vlen * layout[1]
        if pos > n:
            raise GadgetFormatError(
                f"reading BTF type [{len(out)}]: record runs past the end of the type section"
            )
        out.append(layout[2](kind, names(name_off), st, vlen, info >> 31, w[start:pos], names))
    return out


def _split_sections(raw: bytes) -> tuple[str, bytes, bytes]:
    """Check the header; return (endian, type section, string section)."""
    if len(raw) < _HEADER.size:
        raise GadgetFormatError(f"reading BTF header: {len(raw)} bytes, need {_HEADER.size}")
    endian = "<" if struct.unpack_from("<H", raw)[0] == BTF_MAGIC else ">"
    magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
        endian + _HEADER.format[1:], raw
    )
    if magic != BTF_MAGIC:
        raise GadgetFormatError(f"reading BTF header: bad magic {magic:#06x}")
    if version != 1:
        raise GadgetFormatError(f"reading BTF header: unsupported version {version}")
    if hdr_len < _HEADER.size or hdr_len > len(raw):
        raise GadgetFormatError(f"reading BTF header: bad header length {hdr_len}")
    body = raw[hdr_len:]
    for what, off, size in (("type", type_off, type_len), ("string", str_off, str_len)):
        if off + size > len(body):
            raise GadgetFormatError(
                f"reading BTF {what} section: {size} bytes at offset {off} run past the "
                f"end of the blob ({len(body)} bytes after the header)"
            )
    if type_len % 4:
        raise GadgetFormatError(f"reading BTF type section: length {type_len} is not 4-aligned")
    return endian, body[type_off : type_off + type_len], body[str_off : str_off + str_len]


def read_types(raw: bytes) -> tuple[BtfType, ...]:
    """Every type record of a BTF blob, in id order ([0] is void)."""
    endian, type_data, str_data = _split_sections(bytes(raw))
    words = array("I")
    words.frombytes(type_data)
    if (endian == "<") != (sys.byteorder == "little"):
        words.byteswap()
    return tuple(_read_types(words.tolist(), _Strings(str_data).get))

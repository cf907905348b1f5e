"""Pure-Python BTF parser: a raw ``.BTF`` blob into frozen dataclasses, type id = index.

One job: turn BTF (from a gadget object or ``/sys/kernel/btf/vmlinux``) into typed records
and answer the questions the gadget spec asks (find by name, follow typedef chains, sizes),
with no libbpf and no root. ``load_object_btf`` also does what libbpf does at open time for
a clang-produced ``.o``: fill in DATASEC sizes and VAR offsets, which clang leaves at zero.

Traps avoided:
- BTF reuses bits by kind: a member's ``offset`` is a bit offset, or bitfield size (high 8
  bits) + bit offset when the struct's ``kind_flag`` is set; an ENUM/ENUM64 value is signed
  only when ``kind_flag`` is set. Records hold the decoded meaning; nobody re-reads kind_flag.
- Every count and offset comes from the input: all reads are bounds-checked and failures are
  ``GadgetFormatError`` saying what was read, never ``IndexError``/``struct.error``.
- vmlinux has 100k+ types: the type section is read once as an array of u32 words (every BTF
  record is a multiple of 4 bytes) and strings are decoded once, so parsing stays well < 2 s.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import ClassVar

from node_runner.gadget.elf import UNDEF_SECTION, ElfFile
from node_runner.gadget.errors import GadgetFormatError

BTF_MAGIC = 0xEB9F
# magic, version, flags, hdr_len, type_off, type_len, str_off, str_len
_HEADER = struct.Struct("<HBBIIIII")
_MAX_CHAIN = 128  # longest modifier/typedef/array chain followed before calling it a cycle


class Kind(IntEnum):
    VOID = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4
LINKAGE_STATIC, LINKAGE_GLOBAL, LINKAGE_EXTERN = 0, 1, 2
MODIFIER_KINDS = frozenset({Kind.CONST, Kind.VOLATILE, Kind.RESTRICT, Kind.TYPE_TAG})


@dataclass(frozen=True, slots=True)
class Void:
    kind: ClassVar[Kind] = Kind.VOID
    name: str = ""


@dataclass(frozen=True, slots=True)
class Int:
    """An integer. ``bits``/``bit_offset`` differ from ``size*8``/0 only in legacy bitfields."""

    kind: ClassVar[Kind] = Kind.INT
    name: str
    size: int
    bits: int
    bit_offset: int
    encoding: int  # INT_SIGNED | INT_CHAR | INT_BOOL

    @property
    def signed(self) -> bool:
        return bool(self.encoding & INT_SIGNED)

    @property
    def is_bool(self) -> bool:
        return bool(self.encoding & INT_BOOL)


@dataclass(frozen=True, slots=True)
class Ptr:
    kind: ClassVar[Kind] = Kind.PTR
    name: str
    type: int


@dataclass(frozen=True, slots=True)
class Array:
    kind: ClassVar[Kind] = Kind.ARRAY
    name: str
    type: int
    index_type: int
    nelems: int


@dataclass(frozen=True, slots=True)
class Member:
    """A struct/union member; ``bitfield_size`` is 0 unless the struct's kind_flag said so."""

    name: str
    type: int
    bit_offset: int
    bitfield_size: int


@dataclass(frozen=True, slots=True)
class Composite:
    """STRUCT or UNION (see ``kind``)."""

    kind: Kind
    name: str
    size: int
    members: tuple[Member, ...]


@dataclass(frozen=True, slots=True)
class EnumValue:
    name: str
    value: int


@dataclass(frozen=True, slots=True)
class EnumType:
    """ENUM or ENUM64 (see ``kind``); values are already sign-decoded per ``signed``."""

    kind: Kind
    name: str
    size: int
    signed: bool
    values: tuple[EnumValue, ...]


@dataclass(frozen=True, slots=True)
class Fwd:
    kind: ClassVar[Kind] = Kind.FWD
    name: str
    is_union: bool


@dataclass(frozen=True, slots=True)
class Typedef:
    kind: ClassVar[Kind] = Kind.TYPEDEF
    name: str
    type: int


@dataclass(frozen=True, slots=True)
class Modifier:
    """CONST, VOLATILE, RESTRICT or TYPE_TAG (see ``kind``; only TYPE_TAG has a name)."""

    kind: Kind
    name: str
    type: int


@dataclass(frozen=True, slots=True)
class Func:
    kind: ClassVar[Kind] = Kind.FUNC
    name: str
    type: int  # the FUNC_PROTO
    linkage: int


@dataclass(frozen=True, slots=True)
class FuncParam:
    name: str
    type: int


@dataclass(frozen=True, slots=True)
class FuncProto:
    kind: ClassVar[Kind] = Kind.FUNC_PROTO
    name: str
    return_type: int
    params: tuple[FuncParam, ...]


@dataclass(frozen=True, slots=True)
class Var:
    kind: ClassVar[Kind] = Kind.VAR
    name: str
    type: int
    linkage: int


@dataclass(frozen=True, slots=True)
class VarSecinfo:
    type: int  # the VAR
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class Datasec:
    kind: ClassVar[Kind] = Kind.DATASEC
    name: str
    size: int
    vars: tuple[VarSecinfo, ...]


@dataclass(frozen=True, slots=True)
class Float:
    kind: ClassVar[Kind] = Kind.FLOAT
    name: str
    size: int


@dataclass(frozen=True, slots=True)
class DeclTag:
    kind: ClassVar[Kind] = Kind.DECL_TAG
    name: str
    type: int
    component_idx: int  # -1: the type itself; else a member/param index


BtfType = (
    Void | Int | Ptr | Array | Composite | EnumType | Fwd | Typedef | Modifier | Func | FuncProto
    | Var | Datasec | Float | DeclTag
)
VOID = Void()


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


class Btf:
    """Parsed BTF. ``types[id]`` is the record for type id ``id`` (0 is void)."""

    __slots__ = ("types", "_by_name")

    def __init__(self, types: tuple[BtfType, ...]) -> None:
        self.types = types
        self._by_name: dict[str, list[int]] | None = None

    @classmethod
    def parse(cls, raw: bytes) -> Btf:
        endian, type_data, str_data = _split_sections(bytes(raw))
        words = array("I")
        words.frombytes(type_data)
        if (endian == "<") != (sys.byteorder == "little"):
            words.byteswap()
        return cls(tuple(_read_types(words.tolist(), _Strings(str_data).get)))

    def get(self, type_id: int) -> BtfType:
        """The record for ``type_id``; ``GadgetFormatError`` for an id BTF does not have."""
        if 0 <= type_id < len(self.types):
            return self.types[type_id]
        raise GadgetFormatError(f"BTF type id {type_id} is out of range ({len(self.types)} types)")

    def find(self, name: str, kind: Kind | None = None) -> list[int]:
        """Ids of the types called ``name`` (of ``kind`` when given), in id order."""
        if self._by_name is None:
            index: dict[str, list[int]] = {}
            for tid, t in enumerate(self.types):
                if t.name:
                    index.setdefault(t.name, []).append(tid)
            self._by_name = index
        ids = self._by_name.get(name, [])
        return [i for i in ids if kind is None or self.types[i].kind == kind]

    def vars(self) -> Iterator[tuple[str, int]]:
        """(name, type id) of every VAR, in id order."""
        for tid, t in enumerate(self.types):
            if isinstance(t, Var):
                yield t.name, tid

    def resolve(self, type_id: int) -> tuple[int, tuple[str, ...]]:
        """Skip modifiers and typedefs: (final id, typedef names crossed, outermost first)."""
        chain: list[str] = []
        for _ in range(_MAX_CHAIN):
            t = self.get(type_id)
            if isinstance(t, Typedef):
                chain.append(t.name)
            elif not (isinstance(t, Modifier) and t.kind in MODIFIER_KINDS):
                return type_id, tuple(chain)
            type_id = t.type
        raise GadgetFormatError(f"BTF type chain from id {type_id} is too long (a cycle?)")

    def size_of(self, type_id: int) -> int:
        """Size in bytes of ``type_id`` (8 for pointers); error for void, functions, fwds."""
        multiplier = 1
        for _ in range(_MAX_CHAIN):
            type_id, _chain = self.resolve(type_id)
            t = self.get(type_id)
            if isinstance(t, (Int, Composite, EnumType, Float, Datasec)):
                return multiplier * t.size
            if isinstance(t, Ptr):
                return multiplier * 8
            if isinstance(t, Var):
                type_id = t.type
            elif isinstance(t, Array):
                multiplier *= t.nelems
                type_id = t.type
            else:
                raise GadgetFormatError(f"BTF type [{type_id}] ({t.kind.name}) has no size")
        raise GadgetFormatError(f"BTF array chain from id {type_id} is too long (a cycle?)")

    def validate(self) -> None:
        """Check what libbpf trusts without checking: every type id a type refers to exists.

        libbpf dereferences member, variable and section entries while it reads ``.maps``
        (before its own sanity checks), so an id out of range there crashes the process.
        """
        n = len(self.types)
        for tid, t in enumerate(self.types):
            for ref in _references(t):
                if not 0 <= ref < n:
                    raise GadgetFormatError(
                        f"reading BTF type [{tid}] {t.kind.name} {t.name!r}: it refers to type "
                        f"id {ref}, but BTF has {n} types")

    def with_types(self, updates: Mapping[int, BtfType]) -> Btf:
        """A copy with some records replaced (ids unchanged)."""
        if not updates:
            return self
        types = list(self.types)
        for tid, t in updates.items():
            types[tid] = t
        return Btf(tuple(types))


def _references(t: BtfType) -> Iterator[int]:
    """The type ids record ``t`` refers to."""
    if isinstance(t, (Ptr, Typedef, Modifier, Func, Var, DeclTag)):
        yield t.type
    elif isinstance(t, Array):
        yield t.type
        yield t.index_type
    elif isinstance(t, Composite):
        yield from (m.type for m in t.members)
    elif isinstance(t, FuncProto):
        yield t.return_type
        yield from (p.type for p in t.params)
    elif isinstance(t, Datasec):
        yield from (v.type for v in t.vars)


def _fixed_datasec(btf: Btf, sec: Datasec, elf: ElfFile) -> Datasec:
    section = elf.get_section(sec.name)
    if section is None:  # extern-only sections (.kconfig, .ksyms) have no ELF section
        return sec
    symbols = {
        s.name: s for s in elf.iter_symbols(sec.name) if s.section != UNDEF_SECTION
    }
    infos = []
    for info in sec.vars:
        var = btf.get(info.type)
        if not isinstance(var, Var):
            raise GadgetFormatError(
                f"datasec {sec.name!r}: entry type [{info.type}] is {var.kind.name}, not VAR"
            )
        sym = symbols.get(var.name)
        if sym is None:
            raise GadgetFormatError(
                f"datasec {sec.name!r}: no ELF symbol for variable {var.name!r}"
            )
        infos.append(replace(info, offset=sym.value))
    return replace(sec, size=section.size, vars=tuple(infos))


def load_object_btf(elf: ElfFile) -> Btf:
    """Parse an object's ``.BTF`` and fill DATASEC sizes / VAR offsets from the ELF."""
    section = elf.get_section(".BTF")
    if section is None:
        raise GadgetFormatError("object has no BTF; compile with -g")
    btf = Btf.parse(bytes(section.data))
    btf.validate()
    updates: dict[int, BtfType] = {}
    for tid, t in enumerate(btf.types):
        if isinstance(t, Datasec):
            fixed = _fixed_datasec(btf, t, elf)
            if fixed != t:
                updates[tid] = fixed
    return btf.with_types(updates)

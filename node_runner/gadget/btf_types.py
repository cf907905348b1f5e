"""The BTF type model: one frozen record per BTF kind, type id = index in ``Btf.types``.

Trap avoided: BTF reuses bits by kind (a member's offset may pack a bitfield size; an enum's
values are signed only with kind_flag). These records hold the decoded meaning, so nobody
re-reads kind_flag; the reader (``btf_reader``) does the decoding once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar


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

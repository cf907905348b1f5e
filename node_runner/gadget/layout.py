"""Record layouts from BTF: a struct flattened into named, typed byte ranges.

One job: turn the BTF struct a gadget declares for its records (or map keys/values) into a
flat list of :class:`FlatField` (dotted name, offset, size, kind, signedness, typedef tags),
once, before any event arrives; the decoder then only slices bytes. Also finds ``.rodata``
variables (params, ``<map>_max_entries``) with their offsets.

Field kinds (``FlatField.kind``):
- ``int``: integers and pointers (pointers as unsigned 8-byte ints); ``bool``: ``_Bool``;
  ``enum``: enums, with ``enum_values`` to print the enumerator; ``float``: float/double.
- ``string``: a one-dimension array of ``char``/``signed char``/``unsigned char`` (cut at the
  first NUL). Arrays declared through a sized-integer alias (``__u8 addr[16]``, ``u8``,
  ``uint8_t``, ...) are *not* strings but ``array``: they hold addresses and hashes.
- ``array``: other arrays of scalars, with ``elem_kind``/``elem_size``/``elem_signed`` and
  ``count`` (multi-dimension arrays are flattened, ``count`` is the product).
- ``bytes``: arrays of structs/unions: an opaque byte range (``char[4][16]`` is an
  ``array`` of 64 one-byte ints, not text).
Nested structs and unions (named or not) are never a field themselves: their members are,
with a dotted prefix for a named member and none for an anonymous one. Union members share
an offset. Members named ``__*`` are skipped with their whole subtree. One union is a leaf:
``union gadget_ip_addr_t`` (an IPv4/IPv6 address, 16 bytes) is one ``bytes`` field tagged
``gadget_ip_addr_t``. Every named nested struct/union is also listed as a :class:`Group`
(dotted name, type name), so the schema can recognise IG's endpoint structs.

Sizes: integers are 1, 2, 4, 8 or 16 bytes (``__int128``), floats 4 or 8; anything else is
refused here with ``GadgetFormatError`` naming the member, so the decoder never meets it.

Bitfields (``bit_size > 0``): ``offset``/``size`` cover the bytes that hold the bits and the
value is ``(int.from_bytes(rec[offset:offset+size], "little") >> bit_offset) & mask``,
sign-extended when ``signed`` (little-endian targets only: x86_64, arm64).

Trap avoided: typedefs are not "just" their base type. ``tags`` keeps the typedef chain the
member was declared with (outermost first, e.g. ``("gadget_mntns_id", "__u64")``), since
enrichment and formatting pick fields by those names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from node_runner.gadget.btf import Btf
from node_runner.gadget.btf_types import (
    Array,
    Composite,
    Datasec,
    EnumType,
    Float,
    Int,
    Kind,
    Ptr,
    Var,
)
from node_runner.gadget.errors import GadgetFormatError

FieldKind = Literal["int", "bool", "string", "enum", "float", "array", "bytes"]
CHAR_NAMES = frozenset({"char", "signed char", "unsigned char"})
# A byte array declared through one of these typedefs holds numbers, not text.
SIZED_BYTE_ALIASES = frozenset({"__u8", "__s8", "u8", "s8", "uint8_t", "int8_t"})
_MAX_DEPTH = 32
INT_SIZES = frozenset({1, 2, 4, 8, 16})
FLOAT_SIZES = frozenset({4, 8})
IP_ADDR_UNION = "gadget_ip_addr_t"


@dataclass(frozen=True, slots=True)
class FlatField:
    """One leaf field of a record; see the module docstring for the meaning of ``kind``."""

    name: str
    offset: int
    size: int
    kind: FieldKind
    signed: bool = False
    tags: tuple[str, ...] = ()
    enum_values: tuple[tuple[int, str], ...] = ()
    bit_offset: int = 0
    bit_size: int = 0
    elem_kind: FieldKind | None = None
    elem_size: int = 0
    elem_signed: bool = False
    count: int = 0
    type_name: str = ""  # the enum's name, for enums and arrays of them


@dataclass(frozen=True, slots=True)
class Group:
    """A named nested struct/union member: its dotted name, offset and BTF type name."""

    name: str
    offset: int
    size: int
    type_name: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Record:
    """A flattened record: its leaf fields and its named nested structs/unions."""

    fields: tuple[FlatField, ...]
    groups: tuple[Group, ...]


class RodataVar(NamedTuple):
    offset: int
    size: int
    type_id: int  # the variable's declared type (e.g. CONST -> VOLATILE -> INT)


@dataclass(frozen=True, slots=True)
class _Scalar:
    kind: FieldKind
    size: int
    signed: bool
    enum_values: tuple[tuple[int, str], ...] = ()
    type_name: str = ""


def _scalar(btf: Btf, type_id: int, where: str = "") -> _Scalar | None:
    """Describe a resolved scalar type, or None when it is not a scalar."""
    t = btf.get(type_id)
    if isinstance(t, Int):
        _check_size(where, "integer", t.size, INT_SIZES)
        if t.bits > t.size * 8 or t.bit_offset + t.bits > t.size * 8:
            raise GadgetFormatError(f"field {where!r}: integer of {t.size} bytes declares "
                                    f"{t.bits} bits at bit {t.bit_offset}")
        if t.is_bool:
            _check_size(where, "bool", t.size, frozenset({1, 2, 4, 8}))
        return _Scalar("bool" if t.is_bool else "int", t.size, t.signed)
    if isinstance(t, EnumType):
        _check_size(where, "enum", t.size, frozenset({1, 2, 4, 8}))
        return _Scalar("enum", t.size, t.signed, tuple((v.value, v.name) for v in t.values),
                       t.name)
    if isinstance(t, Float):
        _check_size(where, "float", t.size, FLOAT_SIZES)
        return _Scalar("float", t.size, True)
    if isinstance(t, Ptr):
        return _Scalar("int", 8, False)
    return None


def _check_size(where: str, what: str, size: int, allowed: frozenset[int]) -> None:
    if size not in allowed:
        sizes = ", ".join(str(n) for n in sorted(allowed))
        raise GadgetFormatError(f"field {where!r}: {what} of {size} bytes is not supported "
                                f"(sizes: {sizes})")


def struct_by_name(btf: Btf, name: str) -> int:
    """The type id of ``struct name``; ``GadgetFormatError`` when BTF has none."""
    ids = btf.find(name, Kind.STRUCT)
    if not ids:
        raise GadgetFormatError(f"BTF has no struct {name!r}")
    return ids[0]


def flatten_struct(btf: Btf, struct_type_id: int) -> list[FlatField]:
    """Leaf fields of a struct/union (typedefs to one are followed), in member order."""
    return list(flatten_record(btf, struct_type_id).fields)


def flatten_record(btf: Btf, struct_type_id: int) -> Record:
    """Leaf fields and named nested groups of a struct/union, in member order."""
    tid, _chain = btf.resolve(struct_type_id)
    t = btf.get(tid)
    if not isinstance(t, Composite):
        raise GadgetFormatError(
            f"BTF type [{struct_type_id}] is {t.kind.name}, not a struct or union"
        )
    out: list[FlatField] = []
    groups: list[Group] = []
    _walk(btf, t, 0, "", out, groups, 0)
    return Record(tuple(out), tuple(groups))


def flatten_type(btf: Btf, type_id: int, name: str) -> FlatField:
    """A scalar or array type as one field called `name` (a map key that is a plain `__u32`)."""
    tid, chain = btf.resolve(type_id)
    return _leaf(btf, name, 0, 0, tid, chain)


def _walk(btf: Btf, comp: Composite, base_bits: int, prefix: str, out: list[FlatField],
          groups: list[Group], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise GadgetFormatError(f"struct {comp.name!r} nests deeper than {_MAX_DEPTH} levels")
    for m in comp.members:
        if m.name.startswith("__"):
            continue
        tid, chain = btf.resolve(m.type)
        t = btf.get(tid)
        bits = base_bits + m.bit_offset
        if isinstance(t, Composite) and t.name == IP_ADDR_UNION and m.name \
                and not m.bitfield_size and not bits % 8:
            out.append(FlatField(prefix + m.name, bits // 8, t.size, "bytes",
                                 tags=chain + (IP_ADDR_UNION,)))
        elif isinstance(t, Composite) and not m.bitfield_size:
            if m.name:
                if bits % 8:
                    raise GadgetFormatError(f"member {prefix + m.name!r} is not byte-aligned")
                groups.append(Group(prefix + m.name, bits // 8, t.size, t.name, chain))
            sub = f"{prefix}{m.name}." if m.name else prefix
            _walk(btf, t, bits, sub, out, groups, depth + 1)
        elif m.name:  # an unnamed non-struct member is padding
            out.append(_leaf(btf, prefix + m.name, bits, m.bitfield_size, tid, chain))


def _leaf(btf: Btf, name: str, bits: int, bitfield_size: int, tid: int,
          chain: tuple[str, ...]) -> FlatField:
    t = btf.get(tid)
    if isinstance(t, Int) and (t.bits != t.size * 8 or t.bit_offset):
        # legacy bitfield: the INT itself carries the width and the extra offset
        return _bitfield(btf, name, bits + t.bit_offset, t.bits, tid, chain)
    if bitfield_size:
        return _bitfield(btf, name, bits, bitfield_size, tid, chain)
    if bits % 8:
        raise GadgetFormatError(f"field {name!r} is not byte-aligned (bit offset {bits})")
    if isinstance(t, Array):
        return _array(btf, name, bits // 8, t, chain)
    scalar = _scalar(btf, tid, name)
    if scalar is None:
        raise GadgetFormatError(f"field {name!r} has unsupported type {t.kind.name}")
    return FlatField(name, bits // 8, scalar.size, scalar.kind, scalar.signed, chain,
                     scalar.enum_values, type_name=scalar.type_name)


def _bitfield(btf: Btf, name: str, bits: int, width: int, tid: int,
              chain: tuple[str, ...]) -> FlatField:
    scalar = _scalar(btf, tid, name)
    if scalar is None or scalar.kind == "float" or width > 64:
        raise GadgetFormatError(f"bitfield {name!r} has unsupported type or width {width}")
    shift = bits % 8
    return FlatField(name, bits // 8, (shift + width + 7) // 8, scalar.kind, scalar.signed,
                     chain, scalar.enum_values, bit_offset=shift, bit_size=width,
                     type_name=scalar.type_name)


def _array(btf: Btf, name: str, offset: int, arr: Array, chain: tuple[str, ...]) -> FlatField:
    count, dims = arr.nelems, 1
    elem_tid, elem_chain = btf.resolve(arr.type)
    elem = btf.get(elem_tid)
    while isinstance(elem, Array):
        if dims > _MAX_DEPTH:
            raise GadgetFormatError(f"array field {name!r} has too many dimensions")
        count *= elem.nelems
        dims += 1
        elem_tid, more = btf.resolve(elem.type)
        elem_chain += more
        elem = btf.get(elem_tid)
    tags = chain + elem_chain
    scalar = _scalar(btf, elem_tid, name)
    if scalar is None:
        return FlatField(name, offset, btf.size_of(arr.type) * arr.nelems, "bytes", tags=tags)
    if _is_text(elem, dims, elem_chain):
        return FlatField(name, offset, count, "string", tags=tags)
    return FlatField(name, offset, count * scalar.size, "array", False, tags,
                     scalar.enum_values, elem_kind=scalar.kind, elem_size=scalar.size,
                     elem_signed=scalar.signed, count=count, type_name=scalar.type_name)


def _is_text(elem: object, dims: int, elem_chain: tuple[str, ...]) -> bool:
    return (
        dims == 1
        and isinstance(elem, Int)
        and elem.size == 1
        and elem.name in CHAR_NAMES
        and not (elem_chain and elem_chain[0] in SIZED_BYTE_ALIASES)
    )


def rodata_vars(btf: Btf, section: str = ".rodata") -> dict[str, RodataVar]:
    """Variables of DATASEC ``section`` by name (needs a fixed-up BTF: load_object_btf)."""
    out: dict[str, RodataVar] = {}
    for sec_id in btf.find(section, Kind.DATASEC):
        sec = btf.get(sec_id)
        assert isinstance(sec, Datasec)
        for info in sec.vars:
            var = btf.get(info.type)
            if not isinstance(var, Var):
                raise GadgetFormatError(
                    f"datasec {section!r}: entry [{info.type}] is {var.kind.name}, not VAR"
                )
            out[var.name] = RodataVar(info.offset, info.size, var.type)
    return out

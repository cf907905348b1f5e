"""Parsed BTF and the questions the gadget spec asks of it, with no libbpf and no root.

One job: hold the type records of a BTF blob (from a gadget object or
``/sys/kernel/btf/vmlinux``) and answer queries on them (find by name, follow typedef chains,
sizes, reference checks). The record types live in ``btf_types``, the blob reader in
``btf_reader``. ``load_object_btf`` also does what libbpf does at open time for a
clang-produced ``.o``: fill in DATASEC sizes and VAR offsets, which clang leaves at zero.

Trap avoided: chains of modifiers, typedefs and arrays come from the input, so every walk is
bounded and a cycle is a ``GadgetFormatError``, never a hang or a RecursionError.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace

from node_runner.gadget.btf_reader import read_types
from node_runner.gadget.btf_types import (
    MODIFIER_KINDS,
    Array,
    BtfType,
    Composite,
    Datasec,
    DeclTag,
    EnumType,
    Float,
    Func,
    FuncProto,
    Int,
    Kind,
    Modifier,
    Ptr,
    Typedef,
    Var,
)
from node_runner.gadget.elf import UNDEF_SECTION, ElfFile
from node_runner.gadget.errors import GadgetFormatError

_MAX_CHAIN = 128  # longest modifier/typedef/array chain followed before calling it a cycle


class Btf:
    """Parsed BTF. ``types[id]`` is the record for type id ``id`` (0 is void)."""

    __slots__ = ("types", "_by_name")

    def __init__(self, types: tuple[BtfType, ...]) -> None:
        self.types = types
        self._by_name: dict[str, list[int]] | None = None

    @classmethod
    def parse(cls, raw: bytes) -> Btf:
        return cls(read_types(raw))

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

"""Array datasources in a gadget's BTF: map iterators and iterator programs, as row layouts.

One job: turn ``GADGET_MAPITER`` and ``GADGET_ITER`` markers into a row layout the decoder
already knows (a list of ``FlatField``) plus what the runner needs to fill it: the map or
programs to read, and where user stacks sit in a row. A map iterator's row is the map's key
followed by its value (key fields first, value offsets shifted by the key size), so one decode
plan reads both from ``key || value`` bytes. Key and value types come from the map definition
in the ``.maps`` section (``__type(key, ...)``), the only place BTF ties them to the map.

Trap avoided: a map declared with ``__uint(key_size, ...)`` has no key type in BTF; such a map
cannot be an array datasource and is refused here, naming the map, instead of producing rows
of opaque bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from node_runner import constants as C
from node_runner.gadget.btf import Btf
from node_runner.gadget.btf_types import Composite, Datasec, Kind, Ptr, Var
from node_runner.gadget.errors import GadgetFormatError
from node_runner.gadget.layout import Record, flatten_record, flatten_type
from node_runner.gadget.markers import Iter, IterTargetMap, MapIter
from node_runner.gadget.schema import SchemaField

if TYPE_CHECKING:
    from node_runner.gadget.spec import DatasourceSpec

NODE_FIELD = "k8s.node"


@dataclass(frozen=True)
class ArraySource:
    """Where the rows of an array datasource come from."""

    kind: str  # "mapiter" or "iter"
    map_name: str = ""  # mapiter: the map read every interval
    key_size: int = 0
    value_size: int = 0
    progs: tuple[str, ...] = ()  # iter: the iter/* programs, in marker order
    target_maps: Mapping[str, str] = field(default_factory=dict)  # iter prog -> walked map
    user_stacks: tuple[str, ...] = ()  # dotted prefixes of struct gadget_user_stack members


def _map_member_types(btf: Btf, map_name: str) -> dict[str, int]:
    """Members of the map definition `map_name` in .maps: name -> pointed-to type id."""
    for sec_id in btf.find(".maps", Kind.DATASEC):
        sec = btf.get(sec_id)
        assert isinstance(sec, Datasec)
        for info in sec.vars:
            var = btf.get(info.type)
            if not isinstance(var, Var) or var.name != map_name:
                continue
            tid, _ = btf.resolve(var.type)
            body = btf.get(tid)
            if not isinstance(body, Composite):
                break
            out = {}
            for m in body.members:
                ptr = btf.get(btf.resolve(m.type)[0])
                if isinstance(ptr, Ptr):
                    out[m.name] = ptr.type
            return out
    raise GadgetFormatError(f"map '{map_name}' is not defined in the object's .maps section")


def _fields_of(btf: Btf, type_id: int, name: str) -> Record:
    tid, _ = btf.resolve(type_id)
    if isinstance(btf.get(tid), Composite):
        return flatten_record(btf, type_id)
    return Record((flatten_type(btf, type_id, name),), ())


def user_stack_prefixes(btf: Btf, type_id: int, prefix: str = "", depth: int = 0) -> list[str]:
    """Dotted prefixes (``ustack.``) of members typed ``struct gadget_user_stack``."""
    tid, _ = btf.resolve(type_id)
    t = btf.get(tid)
    if not isinstance(t, Composite) or depth > 8:
        return []
    if t.name == C.USER_STACK_STRUCT and prefix:
        return [prefix]
    out: list[str] = []
    for m in t.members:
        if m.name.startswith("__"):
            continue
        sub = f"{prefix}{m.name}." if m.name else prefix
        out += user_stack_prefixes(btf, m.type, sub, depth + 1)
    return out


def mapiter_layout(btf: Btf, mi: MapIter) -> tuple[ArraySource, Record]:
    """The row layout (key fields, then value fields; nested groups too) of map iterator `mi`."""
    members = _map_member_types(btf, mi.map_name)
    if "key" not in members or "value" not in members:
        raise GadgetFormatError(
            f"datasource {mi.name}: map '{mi.map_name}' declares no key or value type "
            "(use __type(key, ...) and __type(value, ...), not key_size/value_size)")
    key_size, value_size = btf.size_of(members["key"]), btf.size_of(members["value"])
    key = _fields_of(btf, members["key"], "key")
    value = _fields_of(btf, members["value"], "value")
    fields = key.fields + tuple(replace(f, offset=f.offset + key_size) for f in value.fields)
    groups = key.groups + tuple(replace(g, offset=g.offset + key_size) for g in value.groups)
    stacks = tuple(user_stack_prefixes(btf, members["key"])
                   + user_stack_prefixes(btf, members["value"]))
    source = ArraySource("mapiter", mi.map_name, key_size, value_size, user_stacks=stacks)
    return source, Record(fields, groups)


def iter_layout(btf: Btf, it: Iter,
                targets: Sequence[IterTargetMap]) -> tuple[ArraySource, Record, int]:
    """The row layout of iterator datasource `it`: (source, fields and groups, row size)."""
    ids = btf.find(it.struct_name, Kind.STRUCT)
    if not ids:
        raise GadgetFormatError(f"datasource {it.name}: BTF has no struct '{it.struct_name}' "
                                "(declared by GADGET_ITER)")
    wanted = {t.prog: t.map_name for t in targets if t.prog in it.progs}
    source = ArraySource("iter", progs=it.progs, target_maps=wanted,
                         user_stacks=tuple(user_stack_prefixes(btf, ids[0])))
    return source, flatten_record(btf, ids[0]), btf.size_of(ids[0])


def kernel_stack_fields(ds: DatasourceSpec) -> list[str]:
    return [f.name for f in ds.fields if C.TAG_KERNEL_STACK in f.tags]


def user_stack_members(ds: DatasourceSpec) -> list[str]:
    return [p.rstrip(".") for p in (ds.source.user_stacks if ds.source else ())]


def array_fields(ds: DatasourceSpec, fields: Sequence[SchemaField],
                 cluster: bool) -> list[SchemaField]:
    """The announced fields of array datasource `ds`, from its record fields (`fields`).

    Stacks are strings (a kernel stack field's value; a user stack member gets a
    `<member>.symbols` field, its numbers hidden, annotated from gadget.yaml); on a cluster
    every row names its node.
    """
    kernel, users = set(kernel_stack_fields(ds)), user_stack_members(ds)
    out: list[SchemaField] = []
    for f in fields:
        if f.name in kernel:
            f = replace(f, type="string")
        owner = next((u for u in users if f.name.startswith(u + ".")), None)
        if owner is not None and f.name != f"{owner}.symbols":
            f = replace(f, annotations={**f.annotations, "columns.hidden": "true"})
        out.append(f)
        if owner is not None and f.name == f"{owner}.pidns_level1" \
                and all(g.name != f"{owner}.symbols" for g in fields):
            notes = {"description": "user stack, innermost frame first",
                     **ds.field_annotations.get(f"{owner}.symbols", {})}
            out.append(SchemaField(f"{owner}.symbols", "string", (C.USER_STACK_STRUCT,), notes))
    if cluster and ds.kind == "array" and all(f.name != NODE_FIELD for f in out):
        out.append(SchemaField(NODE_FIELD, "string", (), {"description": "node of the row"}))
    return out

"""A gadget as parsed from its files, before anything is loaded: the spec.

From a built gadget directory (`program.bpf.o` + optional `gadget.yaml`) this reads the ELF and
its BTF, finds the markers (datasources, params), flattens every datasource's record struct and
locates each param in `.rodata`. Nothing here needs root or libbpf, so the client can validate
params and filters, and build its columns, before a runner starts; and a gadget whose BTF lacks
the struct it declares is refused here with a clear message rather than at load time.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from node_runner import constants as C
from node_runner.gadget.arrays import ArraySource, iter_layout, mapiter_layout
from node_runner.gadget.btf import Btf, load_object_btf
from node_runner.gadget.btf_types import Int, Kind
from node_runner.gadget.elf import ElfFile
from node_runner.gadget.errors import GadgetFormatError
from node_runner.gadget.layout import FlatField, Record, RodataVar, flatten_record, rodata_vars
from node_runner.gadget.markers import Markers, Tracer, find_markers
from node_runner.gadget.metadata import MAX_METADATA_BYTES, GadgetMetadata, parse_metadata
from node_runner.gadget.schema import DatasourceSchema, build_schema

OBJECT_FILE = "program.bpf.o"
METADATA_FILE = "gadget.yaml"
MAX_RECORD_SIZE = 1 << 20  # a ring buffer record larger than this is not a record layout


@dataclass(frozen=True)
class ParamSpec:
    """A gadget parameter: a `const volatile` in .rodata the user may set with --<key>."""

    var: str
    key: str
    kind: str  # "bool", "int" or "string"
    offset: int
    size: int
    signed: bool = False
    default: str | None = None
    description: str = ""


@dataclass(frozen=True)
class DatasourceSpec:
    name: str
    kind: str  # "stream" (GADGET_TRACER) or "array" (GADGET_MAPITER, GADGET_ITER)
    map_name: str
    struct_name: str
    record_size: int
    fields: tuple[FlatField, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)
    field_annotations: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    source: ArraySource | None = None  # array datasources: the map or programs to read
    schema: DatasourceSchema | None = None

    @property
    def has_mntns(self) -> bool:
        return any(C.TAG_MNTNS_ID in f.tags for f in self.fields)


@dataclass(frozen=True)
class GadgetSpec:
    name: str
    object_path: str
    metadata: GadgetMetadata
    datasources: tuple[DatasourceSpec, ...]
    params: Mapping[str, ParamSpec]  # by CLI key
    max_entries: Mapping[str, RodataVar]  # map name -> its <map>_max_entries variable
    rodata: Mapping[str, RodataVar]

    def param(self, key: str) -> ParamSpec | None:
        return self.params.get(key)


def _param_kind(btf: Btf, var: RodataVar, name: str) -> tuple[str, bool]:
    final, _chain = btf.resolve(var.type_id)
    t = btf.get(final)
    if isinstance(t, Int):
        if t.is_bool:
            return "bool", False
        return "int", t.signed
    if btf.get(final).kind == Kind.ARRAY:
        return "string", False
    if btf.get(final).kind in (Kind.ENUM, Kind.ENUM64):
        return "int", False
    raise GadgetFormatError(f"param {name}: unsupported type (want an integer, bool or char[])")


def _params(btf: Btf, meta: GadgetMetadata, rodata: Mapping[str, RodataVar],
            param_vars: list[str]) -> dict[str, ParamSpec]:
    params: dict[str, ParamSpec] = {}
    for var in param_vars:
        if var not in rodata:
            raise GadgetFormatError(
                f"param {var}: no 'const volatile' variable of that name in .rodata")
        pm = meta.params.get(var)
        key = pm.key if pm else C.WELL_KNOWN_PARAMS.get(var, var)
        kind, signed = _param_kind(btf, rodata[var], var)
        # An empty (or no) default keeps the value compiled into .rodata.
        default = pm.default if pm and pm.default != "" else None
        p = ParamSpec(var, key, kind, rodata[var].offset, rodata[var].size, signed, default,
                      pm.description if pm else "")
        if default is not None:
            try:
                encode_param(p, default)
            except ValueError as exc:
                raise GadgetFormatError(f"gadget.yaml: default of param {var}: "
                                        f"{str(exc).split(': ', 1)[-1]}") from None
        params[key] = p
    return params


def _datasources(btf: Btf, meta: GadgetMetadata,
                 tracers: Sequence[Tracer]) -> tuple[DatasourceSpec, ...]:
    out = []
    for tr in tracers:
        candidates = btf.find(tr.struct_name, Kind.STRUCT)
        if not candidates:
            raise GadgetFormatError(
                f"datasource {tr.name}: BTF has no struct '{tr.struct_name}' "
                "(declared by GADGET_TRACER)")
        type_id = candidates[0]
        dmeta = meta.datasources.get(tr.name)
        size = btf.size_of(type_id)
        where = f"datasource {tr.name} (struct {tr.struct_name})"
        _check_size(where, size)
        try:
            record = flatten_record(btf, type_id)
        except GadgetFormatError as exc:
            raise GadgetFormatError(f"{where}: {exc}") from None
        _check_inside(where, record.fields, size)
        annotations = dict(dmeta.annotations) if dmeta else {}
        field_notes = dict(dmeta.fields) if dmeta else {}
        schema = build_schema(tr.name, "stream", record.fields, record.groups, annotations,
                              field_notes)
        out.append(DatasourceSpec(tr.name, "stream", tr.map_name, tr.struct_name, size,
                                  record.fields, annotations, field_notes, schema=schema))
    return tuple(out)


def _array_datasources(btf: Btf, meta: GadgetMetadata,
                       markers: Markers) -> tuple[DatasourceSpec, ...]:
    out = []
    for mi in markers.mapiters:
        source, record = mapiter_layout(btf, mi)
        out.append(_array_ds(meta, mi.name, mi.map_name, "", source, record,
                             source.key_size + source.value_size))
    for it in markers.iters:
        source, record, size = iter_layout(btf, it, markers.iter_targets)
        out.append(_array_ds(meta, it.name, "", it.struct_name, source, record, size))
    return tuple(out)


def _check_size(where: str, size: int) -> None:
    if not 0 < size <= MAX_RECORD_SIZE:
        raise GadgetFormatError(f"{where}: record size {size} is not in 1..{MAX_RECORD_SIZE}")


def _check_inside(where: str, fields: Sequence[FlatField], size: int) -> None:
    for f in fields:
        if f.offset + f.size > size:
            raise GadgetFormatError(
                f"{where}: field {f.name!r} ({f.size} bytes at offset {f.offset}) lies "
                f"outside the {size}-byte record")


def _array_ds(meta: GadgetMetadata, name: str, map_name: str, struct_name: str,
              source: ArraySource, record: Record, size: int) -> DatasourceSpec:
    """An array datasource; nested groups (endpoints) get their readable fields as in tracers."""
    fields = record.fields
    _check_size(f"datasource {name}", size)
    _check_inside(f"datasource {name}", fields, size)
    dmeta = meta.datasources.get(name)
    notes: dict[str, Mapping[str, str]] = {
        f.name: {"columns.hidden": "true"} for f in fields
        if f.name == "key" and source.kind == "mapiter"}
    notes.update(dict(dmeta.fields) if dmeta else {})
    annotations = dict(dmeta.annotations) if dmeta else {}
    schema = build_schema(name, "array", fields, record.groups, annotations, notes)
    return DatasourceSpec(name, "array", map_name, struct_name, size, tuple(fields),
                          annotations, notes, source, schema)


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_METADATA_BYTES + 1)
    except OSError as exc:
        raise GadgetFormatError(f"reading {path}: {exc.strerror}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GadgetFormatError(f"reading {path}: not UTF-8 text ({exc.reason} at byte "
                                f"{exc.start})") from None


def load_spec(path: str, name: str | None = None) -> GadgetSpec:
    """Parse a built gadget directory (or a path straight to its object file)."""
    obj = os.path.join(path, OBJECT_FILE) if os.path.isdir(path) else path
    meta_path = os.path.join(os.path.dirname(obj), METADATA_FILE)
    try:
        with open(obj, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise GadgetFormatError(f"reading gadget object {obj}: {exc.strerror}") from None
    meta = GadgetMetadata()
    if os.path.lexists(meta_path):
        meta = parse_metadata(_read_text(meta_path), meta_path)
    elf = ElfFile.parse(data)
    btf = load_object_btf(elf)
    markers = find_markers(btf)
    rodata = rodata_vars(btf)
    max_entries = {
        var[: -len(C.MAX_ENTRIES_SUFFIX)]: rv
        for var, rv in rodata.items() if var.endswith(C.MAX_ENTRIES_SUFFIX)
    }
    gadget_name = name or os.path.basename(os.path.dirname(os.path.abspath(obj)))
    return GadgetSpec(
        gadget_name, obj, meta,
        _datasources(btf, meta, markers.tracers) + _array_datasources(btf, meta, markers),
        _params(btf, meta, rodata, [p.var for p in markers.params]), max_entries, rodata)




def encode_param(p: ParamSpec, text: str) -> bytes:
    """The bytes to write at the param's .rodata offset; ValueError says what is wrong."""
    if p.kind == "bool":
        low = text.strip().lower()
        flag = C.parse_bool(low) if low else False
        if flag is None:
            raise ValueError(f"--{p.key}: '{text}' is not a boolean (true or false)")
        return (b"\1" if flag else b"\0").ljust(p.size, b"\0")
    if p.kind == "string":
        raw = text.encode()
        if len(raw) >= p.size:
            raise ValueError(f"--{p.key}: '{text}' is longer than {p.size - 1} bytes")
        return raw.ljust(p.size, b"\0")
    try:
        value = int(text, 0)
    except ValueError:
        raise ValueError(f"--{p.key}: '{text}' is not an integer") from None
    bits = p.size * 8
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if p.signed else (0, (1 << bits) - 1)
    if not lo <= value <= hi:
        raise ValueError(f"--{p.key}: {value} is out of range [{lo}, {hi}]")
    return value.to_bytes(p.size, "little", signed=p.signed)


def check_params(spec: GadgetSpec, params: Mapping[str, str]) -> None:
    """Every key names a param of the gadget and every value fits it; ValueError says which.

    An unknown key is named with the closest known param, so a typo is one line to fix rather
    than a run that silently ignores it.
    """
    for key, value in params.items():
        p = spec.params.get(key)
        if p is None:
            raise ValueError(unknown_param(spec, key))
        encode_param(p, value)


def unknown_param(spec: GadgetSpec, key: str) -> str:
    known = sorted(spec.params)
    if not known:
        return f"unknown param {key!r}: gadget {spec.name} has no params"
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"unknown param {key!r} of gadget {spec.name} (closest known param: {close[0]})"
    return f"unknown param {key!r} of gadget {spec.name} (known params: {', '.join(known)})"

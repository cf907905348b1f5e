"""What a datasource's fields are: built once from BTF + gadget.yaml, used everywhere.

One job: from a datasource's flattened record (layout) and its gadget.yaml annotations, list
the fields the runner will emit, in order: each record member, and after it the readable
companion a formatter adds (``error_raw`` -> ``error``), IG's endpoint fields
(``src.addr``, ``src.proto``, ``src`` = ``addr:port``) and enum names. The runner's encoder
generates its code from this list, the runner writes it as the ``schema`` record, and the
client computes the same list before a runner starts (columns, ``--fields``, ``--filter``).

Rules (docs/gadget-abi.md sections 2, 3 and 7):
- A member whose typedef chain holds a formatted type (``gadget_errno``, ``gadget_timestamp``,
  ``gadget_signal``, ``gadget_syscall``, ``gadget_uid``, ``gadget_gid``, ``gadget_file_flags``,
  ``gadget_file_mode``) or an enum type gets a companion named by its ``*.target`` annotation
  (IG's keys, e.g. ``formatters.errno.target``), else by its name without ``_raw``. A member
  with neither gets no companion (a plain ``fd_raw`` stays a number).
- Enums: ``X_raw`` holds the number, ``X`` the enumerator name; an enum type whose name ends in
  ``_set`` is a bit set and prints every enumerator whose bits are all set, joined with ``|``
  (or ``ebpf.formatter.bitfield.separator``). An enum member without ``_raw`` prints its name.
- Endpoints (``struct gadget_l3endpoint_t`` / ``gadget_l4endpoint_t`` member ``P``): ``P.addr``
  (text address), for L4 ``P.proto`` (``TCP``, ``UDP``, ...), and ``P`` itself: the address, or
  ``addr:port`` (``[v6]:port``), the one column shown by default.
- Names never collide: a companion whose name is already a member (``fd`` next to a typed
  ``fd_raw``), or two fields of one name, are refused here with ``GadgetFormatError`` (an
  invalid gadget) naming both and the annotation that picks another name.
- Container enrichment (``k8s.*``, ``runtime.*``, ``ENRICHMENT_FIELDS``) is appended by
  ``DatasourceSchema.with_enrichment`` when a record carries a ``gadget_mntns_id``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from node_runner import constants as C
from node_runner.gadget.errors import GadgetFormatError
from node_runner.gadget.layout import FlatField, Group

RAW_SUFFIX = "_raw"
ENUM_SET_SUFFIX = "_set"
L3_ENDPOINT = "gadget_l3endpoint_t"
L4_ENDPOINT = "gadget_l4endpoint_t"
IP_ADDR = "gadget_ip_addr_t"
SEPARATOR_ANNOTATION = "ebpf.formatter.bitfield.separator"
ENUM_TARGET_ANNOTATION = "ebpf.formatter.enum"

# typedef tag -> (formatter id, annotation naming the companion field)
FORMATTED_TYPES: Mapping[str, tuple[str, str]] = {
    "gadget_errno": ("errno", "formatters.errno.target"),
    "gadget_timestamp": ("timestamp", "formatters.timestamp.target"),
    "gadget_signal": ("signal", "formatters.signal.target"),
    "gadget_syscall": ("syscall", "formatters.syscall.target"),
    "gadget_uid": ("uid", "uidgidresolver.target"),
    "gadget_gid": ("gid", "uidgidresolver.target"),
    "gadget_file_flags": ("file_flags", "formatters.file_flags.target"),
    "gadget_file_mode": ("file_mode", "formatters.file_mode.target"),
}
FORMATTERS = frozenset({f for f, _a in FORMATTED_TYPES.values()}
                       | {"enum", "enum_set", "ip_addr", "l4_endpoint", "ip_proto"})
# The container fields an event with a mount namespace id is enriched with, in wire order.
ENRICHMENT_FIELDS = (
    "k8s.node", "k8s.namespace", "k8s.podName", "k8s.containerName", "k8s.podLabels",
    "k8s.owner.kind", "k8s.owner.name", "runtime.containerId", "runtime.containerName",
    "runtime.runtimeName", "runtime.containerImageName", "runtime.containerPid",
)
# Columns shown by default: a cluster run names the pod, a local run the container.
_VISIBLE_CLUSTER = ("k8s.node", "k8s.namespace", "k8s.podName", "k8s.containerName")
_VISIBLE_LOCAL = ("runtime.containerName",)
_HIDDEN = {"columns.hidden": "true"}
_NO_JSON = {"json.skip": "true"}


@dataclass(frozen=True)
class SchemaField:
    """One field of a datasource as the ``schema`` record announces it.

    ``member`` is the record member the value is read from (None for computed and
    enrichment fields). A computed field has a ``formatter`` id (see ``FORMATTERS``) applied to
    the members named in ``sources``; ``options`` carries its settings (a bit-set separator).
    """

    name: str
    type: str
    tags: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    member: FlatField | None = None
    formatter: str = ""
    sources: tuple[str, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)

    def to_wire(self) -> dict[str, object]:
        """The field as a ``schema`` record lists it (docs/protocol.md)."""
        return {"name": self.name, "type": self.type, "tags": [f"type:{t}" for t in self.tags],
                "annotations": dict(self.annotations)}


@dataclass(frozen=True)
class DatasourceSchema:
    """The ordered fields of one datasource; ``members`` are the record members by name."""

    name: str
    kind: str
    annotations: Mapping[str, str]
    fields: tuple[SchemaField, ...]

    @property
    def members(self) -> dict[str, FlatField]:
        return {f.member.name: f.member for f in self.fields if f.member is not None}

    @property
    def has_mntns(self) -> bool:
        """Records carry a mount namespace id: events are enriched with container fields."""
        return any(C.TAG_MNTNS_ID in m.tags and m.kind == "int" for m in self.members.values())

    def with_enrichment(self, cluster: bool) -> DatasourceSchema:
        """The fields announced with container enrichment (only when `has_mntns`)."""
        return self.with_fields(enrichment_schema(cluster)) if self.has_mntns else self

    def with_fields(self, extra: Sequence[SchemaField]) -> DatasourceSchema:
        """A copy with ``extra`` fields (enrichment) appended; a name clash is refused."""
        out = replace(self, fields=self.fields + tuple(extra))
        _check_unique(self.name, out.fields)
        return out

    def wire_fields(self) -> list[dict[str, object]]:
        return [f.to_wire() for f in self.fields]

    def to_wire(self) -> dict[str, object]:
        """The ``schema`` record of this datasource."""
        return {"type": "schema", "ds": self.name, "kind": self.kind,
                "annotations": dict(self.annotations), "fields": self.wire_fields()}


OutputField = SchemaField  # the name other modules knew it by


def enrichment_schema(cluster: bool) -> list[SchemaField]:
    """The container fields appended to a datasource whose records carry a mount namespace."""
    visible = _VISIBLE_CLUSTER if cluster else _VISIBLE_LOCAL
    out = []
    for name in ENRICHMENT_FIELDS:
        notes = {"description": f"{name} of the container the event came from"}
        if name not in visible:
            notes["columns.hidden"] = "true"
        out.append(SchemaField(name, "string", (), notes))
    return out


def wire_type(f: FlatField) -> str:
    """The protocol type of a record member (docs/protocol.md)."""
    if f.kind == "int":
        # A bitfield's byte span (1..8 bytes) is not a protocol type: take the smallest that fits.
        bits = next(b for b in (8, 16, 32, 64) if b >= f.bit_size) if f.bit_size else f.size * 8
        return f"{'s' if f.signed else 'u'}{bits}"
    if f.kind == "float":
        return f"f{f.size * 8}"
    return f.kind


def _merge(defaults: Mapping[str, str], given: Mapping[str, str] | None) -> dict[str, str]:
    return {**defaults, **(given or {})}


def _companion_name(f: FlatField, notes: Mapping[str, str], target_key: str) -> str:
    target = notes.get(target_key, "")
    if target:
        return target
    base = f.name.rsplit(".", 1)[-1]
    if base.endswith(RAW_SUFFIX) and len(base) > len(RAW_SUFFIX):
        return f.name[: -len(RAW_SUFFIX)]
    return ""


def _typed_companion(f: FlatField, notes: Mapping[str, str],
                     all_notes: Mapping[str, Mapping[str, str]]) -> SchemaField | None:
    if f.kind not in ("int", "enum") or f.bit_size:
        return None
    if f.kind == "enum":
        name = _companion_name(f, notes, ENUM_TARGET_ANNOTATION)
        if not name:
            return None
        is_set = f.type_name.endswith(ENUM_SET_SUFFIX)
        opts = {"separator": notes.get(SEPARATOR_ANNOTATION, "|")} if is_set else {}
        return SchemaField(name, "enum", f.tags, dict(all_notes.get(name, {})),
                           formatter="enum_set" if is_set else "enum", sources=(f.name,),
                           options=opts)
    for tag in f.tags:
        if tag in FORMATTED_TYPES:
            formatter, target_key = FORMATTED_TYPES[tag]
            name = _companion_name(f, notes, target_key)
            if not name:
                return None
            return SchemaField(name, "string", f.tags, dict(all_notes.get(name, {})),
                               formatter=formatter, sources=(f.name,))
    return None


def _member_field(f: FlatField, notes: Mapping[str, str], defaults: Mapping[str, str],
                  has_companion: bool) -> SchemaField:
    ftype = wire_type(f)
    if f.kind == "enum" and has_companion:
        ftype = f"{'s' if f.signed else 'u'}{f.size * 8}"  # X_raw: the number
    opts = {}
    if f.kind == "enum" and f.type_name.endswith(ENUM_SET_SUFFIX):
        opts = {"separator": notes.get(SEPARATOR_ANNOTATION, "|")}
    return SchemaField(f.name, ftype, f.tags, _merge(defaults, notes), member=f, options=opts)


def _endpoint_fields(g: Group, members: Mapping[str, FlatField],
                     notes: Mapping[str, Mapping[str, str]]) -> list[SchemaField]:
    """The computed fields of an IG endpoint struct member ``g`` (empty if malformed)."""
    p = g.name + "."
    addr = next((m for n, m in members.items() if n.startswith(p) and IP_ADDR in m.tags
                 and "." not in n[len(p):]), None)
    version = members.get(p + "version")
    if addr is None or version is None or version.kind != "int":
        return []
    l4 = g.type_name == L4_ENDPOINT
    port = members.get(p + "port")
    if l4 and (port is None or port.kind != "int"):
        return []
    addr_name = _companion_name(addr, {}, "") or p + "addr"
    out = [SchemaField(addr_name, "string", (), _merge(_HIDDEN, notes.get(addr_name)),
                       formatter="ip_addr", sources=(addr.name, version.name))]
    proto = members.get(p + "proto_raw")
    if l4 and proto is not None and proto.kind == "int":
        out.append(SchemaField(p + "proto", "string", (), _merge(_HIDDEN, notes.get(p + "proto")),
                               formatter="ip_proto", sources=(proto.name,)))
    if l4:
        assert port is not None
        out.insert(0, SchemaField(g.name, "string", (g.type_name,),
                                  _merge(_NO_JSON, notes.get(g.name)), formatter="l4_endpoint",
                                  sources=(addr.name, version.name, port.name)))
    else:
        out.insert(0, SchemaField(g.name, "string", (g.type_name,),
                                  _merge(_NO_JSON, notes.get(g.name)), formatter="ip_addr",
                                  sources=(addr.name, version.name)))
    return out


def build_schema(ds: str, kind: str, fields: Iterable[FlatField], groups: Iterable[Group],
                 annotations: Mapping[str, str] | None = None,
                 field_annotations: Mapping[str, Mapping[str, str]] | None = None,
                 ) -> DatasourceSchema:
    """The schema of datasource ``ds`` from its record layout and gadget.yaml annotations."""
    notes = field_annotations or {}
    fields = list(fields)
    members = {f.name: f for f in fields}
    endpoints = [g for g in groups if g.type_name in (L3_ENDPOINT, L4_ENDPOINT)]
    in_endpoint = {f.name for g in endpoints for f in fields if f.name.startswith(g.name + ".")}
    last_of: dict[str, list[SchemaField]] = {}
    for g in endpoints:
        extra = _endpoint_fields(g, members, notes)
        inside = [f.name for f in fields if f.name.startswith(g.name + ".")]
        if extra and inside:
            last_of.setdefault(inside[-1], []).extend(extra)
    out: list[SchemaField] = []
    for f in fields:
        own = notes.get(f.name, {})
        companion = None if f.name in in_endpoint else _typed_companion(f, own, notes)
        defaults: Mapping[str, str] = {}
        if f.name in in_endpoint:
            defaults = _merge(_HIDDEN, _NO_JSON if IP_ADDR in f.tags else {})
        out.append(_member_field(f, own, defaults, companion is not None))
        if companion is not None:
            out.append(companion)
        out.extend(last_of.get(f.name, []))
    _check_unique(ds, out)
    return DatasourceSchema(ds, kind, dict(annotations or {}), tuple(out))


def _check_unique(ds: str, fields: Sequence[SchemaField]) -> None:
    seen: dict[str, SchemaField] = {}
    for f in fields:
        first = seen.get(f.name)
        if first is None:
            seen[f.name] = f
            continue
        made = f if f.member is None else first
        other = first if made is f else f
        if made.sources:
            raise GadgetFormatError(
                f"datasource {ds}: field {made.sources[0]!r} would add a readable field "
                f"{f.name!r}, but the record already has a member {other.name!r}; rename one "
                "of them (or name the readable field with a '<formatter>.target' annotation)")
        raise GadgetFormatError(f"datasource {ds}: two fields are named {f.name!r}")

"""What a datasource's fields are on the wire: name, protocol type, typedef tags, annotations.

One module says it for both halves: the runner's encoder announces `datasource_fields` (plus
`enrichment_schema` when the records carry a mount namespace) in its `schema` record, and the
client computes the same list from a gadget's spec before any runner starts, so `--fields`,
`--filter` and `--sort` are checked up front. The trap avoided: the list rebuilt in several
places (decoder, enrichment, client) and drifting apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from node_runner import constants as C
from node_runner.formatters import formatter_for
from node_runner.gadget.layout import FlatField

# The container fields an event with a mount namespace id is enriched with, in wire order.
ENRICHMENT_FIELDS = (
    "k8s.node",
    "k8s.namespace",
    "k8s.podName",
    "k8s.containerName",
    "k8s.podLabels",
    "k8s.owner.kind",
    "k8s.owner.name",
    "runtime.containerId",
    "runtime.containerName",
    "runtime.runtimeName",
    "runtime.containerImageName",
    "runtime.containerPid",
)
# Columns shown by default: a cluster run names the pod, a local run the container.
_VISIBLE_CLUSTER = ("k8s.node", "k8s.namespace", "k8s.podName", "k8s.containerName")
_VISIBLE_LOCAL = ("runtime.containerName",)


@dataclass(frozen=True)
class OutputField:
    """One field of a datasource as announced in its `schema` record."""

    name: str
    type: str
    tags: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_wire(self) -> dict[str, object]:
        return {"name": self.name, "type": self.type, "tags": [f"type:{t}" for t in self.tags],
                "annotations": dict(self.annotations)}


def wire_type(f: FlatField) -> str:
    """The protocol type of a record field (u8..u64, s8..s64, f32/f64, string, bool, ...)."""
    if f.kind == "int":
        # A bitfield's byte span (1..8 bytes) is not a protocol type: take the smallest that fits.
        bits = next(b for b in (8, 16, 32, 64) if b >= f.bit_size) if f.bit_size else f.size * 8
        return f"{'s' if f.signed else 'u'}{bits}"
    if f.kind == "float":
        return f"f{f.size * 8}"
    return f.kind


def companion(f: FlatField) -> tuple[str, bool] | None:
    """(name, formatted) of the field shown for a `X_raw` field, or None for other fields.

    A formatted companion (errno name, timestamp, flags, ...) is a string; otherwise it
    carries the raw number under the short name.
    """
    if not f.name.endswith(C.RAW_SUFFIX) or f.kind not in ("int", "enum"):
        return None
    return f.name[: -len(C.RAW_SUFFIX)], formatter_for(f.tags, 0) is not None


def datasource_fields(fields: Sequence[FlatField],
                      annotations: Mapping[str, Mapping[str, str]]) -> list[OutputField]:
    """The announced fields of a record layout, each followed by its companion, if any."""
    out: list[OutputField] = []
    for f in fields:
        out.append(OutputField(f.name, wire_type(f), f.tags, annotations.get(f.name, {})))
        comp = companion(f)
        if comp is not None:
            name, formatted = comp
            out.append(OutputField(name, "string" if formatted else wire_type(f), f.tags,
                                   annotations.get(name, {})))
    return out


def enrichment_schema(cluster: bool) -> list[OutputField]:
    """The container fields appended to a datasource whose records carry a mount namespace."""
    visible = _VISIBLE_CLUSTER if cluster else _VISIBLE_LOCAL
    out = []
    for name in ENRICHMENT_FIELDS:
        notes = {"description": f"{name} of the container the event came from"}
        if name not in visible:
            notes["columns.hidden"] = "true"
        out.append(OutputField(name, "string", (), notes))
    return out

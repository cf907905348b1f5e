"""Endpoint owners: which pod or service an event's IP address belongs to (cluster runs).

Network gadgets emit IG's L3/L4 endpoints (``dst`` with ``dst.addr``, ``dst.port``, ...). On a
cluster each endpoint ``P`` gets IG's kubeipresolver fields: ``P.k8s.kind`` (``pod``, ``svc``
or ``raw`` when the address is no pod's or service's), ``P.k8s.namespace``, ``P.k8s.name`` and
``P.k8s.labels`` (``k=v,...``). They are schema fields like any other, so ``--fields``,
``--filter`` and ``--sort`` take them, and ``-o json`` nests them under the endpoint.

This stage only reads a lookup table it is handed (`OwnerLookup`); who fills it, and how, is the
cluster wing's business (one list and watch of pods and of services per session, no API call
per event). The trap avoided: an API round trip per event, or a stage that knows Kubernetes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from kubectl_gadget.operators import FieldSchema
from node_runner.gadget.schema import L3_ENDPOINT, L4_ENDPOINT

ENDPOINT_TAGS = frozenset({f"type:{L3_ENDPOINT}", f"type:{L4_ENDPOINT}"})
RAW = "raw"
SUFFIXES = ("k8s.kind", "k8s.namespace", "k8s.name", "k8s.labels")
_NOTES: Mapping[str, dict[str, str]] = {
    "k8s.kind": {"description": "what owns the address: pod, svc (a service's ClusterIP) or raw "
                 "(neither)", "columns.width": "12"},
    "k8s.namespace": {"description": "namespace of the pod or service owning the address",
                      "columns.width": "17"},
    "k8s.name": {"description": "name of the pod or service owning the address",
                 "columns.width": "20"},
    "k8s.labels": {"description": "labels of the pod or service owning the address "
                   "(k=v,...)", "columns.hidden": "true"},
}


class Owner(NamedTuple):
    """The Kubernetes object an address belongs to."""

    kind: str  # "pod" or "svc"
    namespace: str
    name: str
    labels: str  # "k=v,k=v", sorted


class OwnerLookup(Protocol):
    """Addresses to owners; `start` is called once a datasource needs it (may be again)."""

    def start(self) -> None: ...
    def lookup(self, ip: str) -> Owner | None: ...


def endpoints(fields: Sequence[FieldSchema]) -> list[str]:
    """Names of the endpoint fields whose address is a field (``P`` with ``P.addr``)."""
    names = {f["name"] for f in fields}
    return [f["name"] for f in fields
            if ENDPOINT_TAGS.intersection(f.get("tags", ())) and f"{f['name']}.addr" in names]


def with_owner_fields(fields: Sequence[FieldSchema]) -> list[FieldSchema]:
    """``fields`` with each endpoint's owner fields after its last field (idempotent)."""
    out = list(fields)
    have = {f["name"] for f in out}
    for ep in endpoints(fields):
        if f"{ep}.k8s.kind" in have:
            continue
        last = max(i for i, f in enumerate(out) if f["name"] == ep or
                   f["name"].startswith(ep + "."))
        added: list[FieldSchema] = [
            {"name": f"{ep}.{s}", "type": "string", "tags": [],
             "annotations": dict(_NOTES[s])} for s in SUFFIXES]
        out[last + 1:last + 1] = added
    return out


def compile_owners(fields: Sequence[FieldSchema], lookup: OwnerLookup
                   ) -> Callable[[dict[str, Any]], None] | None:
    """A per-row step that fills the owner fields of every endpoint, or None when the
    datasource has no endpoint."""
    eps = [(f"{ep}.addr", f"{ep}.k8s.kind", f"{ep}.k8s.namespace", f"{ep}.k8s.name",
            f"{ep}.k8s.labels") for ep in endpoints(fields)]
    if not eps:
        return None
    find = lookup.lookup

    def fill(row: dict[str, Any]) -> None:
        for addr, kind, namespace, name, labels in eps:
            ip = row.get(addr)
            owner = find(ip) if isinstance(ip, str) and ip else None
            if owner is None:
                row[kind], row[namespace], row[name], row[labels] = RAW, "", "", ""
            else:
                row[kind], row[namespace], row[name], row[labels] = owner

    return fill

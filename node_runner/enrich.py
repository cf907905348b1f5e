"""Per-event container enrichment as ready-made JSON fragments, cached per mount namespace.

An event carries only its task's mount namespace id; the `k8s.*` and `runtime.*` fields come
from the container table. Looking them up and JSON-encoding them per event would cost more than
the decode itself, so the encoded fragment (`,"k8s.node":"n1",...`) is cached per mntns id. The
trap avoided: caching "no container" forever for a namespace whose container the table has not
seen yet; `unknown_seen` tells the run loop to rescan and `invalidate` drops the cache.
With `nested` (the runner's --nested-data), the fragment nests the dotted names the way the
client's `-o json` prints them (`,"k8s":{"node":"n1",...},"runtime":{...}`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from node_runner.container_info import enrichment_fields
from node_runner.containers import ContainerTable
from node_runner.gadget.schema import enrichment_schema as enrichment_schema  # re-exported

_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii

class Enricher:
    """Callable: mntns id -> the JSON fragment of its enrichment fields."""

    def __init__(self, table: ContainerTable, node: str, nested: bool = False) -> None:
        self.table = table
        self.node = node
        self.nested = nested
        self._render = _nested_fragment if nested else _flat_fragment
        self._cache: dict[int, str] = {}
        self.unknown_seen = False

    def __call__(self, mntns_id: int) -> str:
        fragment = self._cache.get(mntns_id)
        if fragment is None:
            container = self.table.lookup_mntns(mntns_id)
            if container is None and mntns_id != self.table.host_mntns:
                self.unknown_seen = True
            values = enrichment_fields(container, self.node)
            fragment = self._render(values)
            self._cache[mntns_id] = fragment
        return fragment

    def invalidate(self) -> None:
        self._cache.clear()
        self.unknown_seen = False


def _flat_fragment(values: dict[str, str]) -> str:
    return "".join(f",{_quote(k)}:{_quote(v)}" for k, v in values.items())


def _nested_fragment(values: dict[str, str]) -> str:
    tree: dict[str, Any] = {}
    for name, value in values.items():
        *parents, leaf = name.split(".")
        node = tree
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return "," + _object(tree)[1:-1]


def _object(node: dict[str, Any]) -> str:
    return "{" + ",".join(f"{_quote(k)}:{_object(v) if isinstance(v, dict) else _quote(v)}"
                          for k, v in node.items()) + "}"

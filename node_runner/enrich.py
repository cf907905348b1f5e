"""Per-event container enrichment as ready-made JSON fragments, cached per mount namespace.

An event carries only its task's mount namespace id; the `k8s.*` and `runtime.*` fields come
from the container table. Looking them up and JSON-encoding them per event would cost more than
the decode itself, so the encoded fragment (`,"k8s.node":"n1",...`) is cached per mntns id. The
trap avoided: caching "no container" forever for a namespace whose container the table has not
seen yet; `unknown_seen` tells the run loop to rescan and `invalidate` drops the cache.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from node_runner.containers import ContainerTable, enrichment_fields
from node_runner.gadget.schema import enrichment_schema as enrichment_schema  # re-exported

_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii

class Enricher:
    """Callable: mntns id -> the JSON fragment of its enrichment fields."""

    def __init__(self, table: ContainerTable, node: str) -> None:
        self.table = table
        self.node = node
        self._cache: dict[int, str] = {}
        self.unknown_seen = False

    def __call__(self, mntns_id: int) -> str:
        fragment = self._cache.get(mntns_id)
        if fragment is None:
            container = self.table.lookup_mntns(mntns_id)
            if container is None and mntns_id != self.table.host_mntns:
                self.unknown_seen = True
            values = enrichment_fields(container, self.node)
            fragment = "".join(f",{_quote(k)}:{_quote(v)}" for k, v in values.items())
            self._cache[mntns_id] = fragment
        return fragment

    def invalidate(self) -> None:
        self._cache.clear()
        self.unknown_seen = False

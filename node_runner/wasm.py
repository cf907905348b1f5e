"""Gadgets that carry a WASM module: they run without it, and the user is told so once.

IG gadgets may ship a WASM module (an image layer) that adds datasources or fields, or
changes events, in userspace. This runner does not run WASM; the eBPF part runs unchanged.
What the module would have added is read from gadget.yaml: datasources it declares that no
eBPF tracer produces, and fields it declares that the eBPF records (with their formatted and
enrichment fields) do not have. The trap avoided: a gadget that silently lacks columns its
documentation promises.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from node_runner.gadget.metadata import GadgetMetadata

WASM_FILE = "program.wasm"  # written beside program.bpf.o by the OCI extraction


def has_module(object_path: str) -> bool:
    return os.path.isfile(os.path.join(os.path.dirname(object_path), WASM_FILE))


def notice(gadget: str, meta: GadgetMetadata, produced: Mapping[str, set[str]]) -> str:
    """One line: the module is not run, and what it would have produced.

    `produced` maps each datasource the eBPF part has to the fields it emits.
    """
    parts = []
    for ds, dmeta in meta.datasources.items():
        if ds not in produced:
            fields = f" (fields {', '.join(sorted(dmeta.fields))})" if dmeta.fields else ""
            parts.append(f"datasource {ds}{fields}")
            continue
        missing = sorted(set(dmeta.fields) - produced[ds])
        if missing:
            parts.append(f"fields {', '.join(missing)} of datasource {ds}")
    head = (f"gadget {gadget} carries a WASM module, which this runner does not run; "
            "it runs without it")
    if not parts:
        return head + " (gadget.yaml declares nothing only the module would produce)"
    return head + ", so these are missing: " + "; ".join(parts)

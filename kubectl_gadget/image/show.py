"""How `image inspect` shows an image: as text for people, as JSON for scripts.

One job: turn an `Inspection` (documents from the store plus the parsed gadget spec) into
output; no store or registry access here. The trap avoided: printing raw manifests only, which
hides what a user needs (which params the gadget takes, which fields each datasource has).
"""

from __future__ import annotations

from typing import Any

from kubectl_gadget.image.ops import Inspection
from node_runner.gadget.spec import GadgetSpec


def _kind(value: object) -> str:
    return str(getattr(value, "value", value))


def spec_json(spec: GadgetSpec | None) -> dict[str, Any]:
    if spec is None:
        return {"params": [], "datasources": []}
    return {
        "params": [{"key": p.key, "variable": p.var, "type": p.kind, "default": p.default,
                    "description": p.description} for p in spec.params.values()],
        "datasources": [{"name": d.name, "kind": d.kind, "struct": d.struct_name,
                         "fields": [{"name": f.name, "kind": _kind(f.kind), "tags": list(f.tags)}
                                    for f in d.fields]} for d in spec.datasources],
    }


def inspection_json(info: Inspection) -> dict[str, Any]:
    return {"reference": info.ref, "digest": info.entry["digest"],
            "mediaType": info.entry.get("mediaType"), "signed": info.signed,
            "document": info.document,
            "manifests": [{"platform": p, "digest": d, "manifest": m}
                          for p, d, m in info.platforms],
            **spec_json(info.spec)}


def _size(n: object) -> str:
    return f"{n} B" if isinstance(n, int) else "?"


def inspection_text(info: Inspection) -> str:
    doc = info.document
    lines = [f"Reference:   {info.ref}", f"Digest:      {info.entry['digest']}",
             f"Media type:  {info.entry.get('mediaType', '')}",
             f"Artifact:    {doc.get('artifactType', '')}",
             f"Signed:      {'yes (signature in the local store)' if info.signed else 'no'}"]
    annotations = doc.get("annotations") or {}
    if annotations:
        lines.append("Annotations:")
        lines += [f"  {k}: {v}" for k, v in sorted(annotations.items())]
    lines.append("Manifests:")
    for platform, digest, manifest in info.platforms:
        lines.append(f"  {platform}  {digest}")
        cfg = manifest.get("config") or {}
        lines.append(f"    config  {cfg.get('mediaType', '')}  {cfg.get('digest', '')}  "
                     f"{_size(cfg.get('size'))}")
        for layer in manifest.get("layers") or []:
            lines.append(f"    layer   {layer.get('mediaType', '')}  {layer.get('digest', '')}"
                         f"  {_size(layer.get('size'))}")
    lines += _spec_text(info.spec)
    return "\n".join(lines)


def _spec_text(spec: GadgetSpec | None) -> list[str]:
    if spec is None:
        return ["(no manifest for a known architecture: params and datasources unknown)"]
    lines = ["Params:" if spec.params else "Params:      none"]
    for p in spec.params.values():
        default = f", default {p.default}" if p.default is not None else ""
        lines.append(f"  --{p.key} ({p.kind}{default})  {p.description}".rstrip())
    lines.append("Datasources:")
    for d in spec.datasources:
        lines.append(f"  {d.name} ({d.kind}, struct {d.struct_name}):")
        lines.append("    " + ", ".join(f"{f.name} {_kind(f.kind)}" for f in d.fields))
    return lines

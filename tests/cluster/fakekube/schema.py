"""Unknown-field handling (``fieldValidation``), using the official client's models as schema.

A real API server decodes into Go types: unknown fields are dropped, and reported as a
``Warning`` header (default ``Warn``), an error (``Strict``, what kubectl asks for) or nothing
(``Ignore``). Storing them instead would let a misspelled field "work" against the fake. The
models' ``attribute_map``/``openapi_types`` carry exactly the API's field names and types.
Also serves the small OpenAPI v3 document kubectl reads to learn that ``fieldValidation`` is
supported (without it kubectl insists on downloading the full schema).
"""

from __future__ import annotations

from typing import Any

from kubernetes.client import models

from .errors import bad_request
from .resources import CORE

MODELS = {"Pod": "V1Pod", "Service": "V1Service", "Namespace": "V1Namespace", "Node": "V1Node",
          "ConfigMap": "V1ConfigMap",
          "Event": "CoreV1Event", "SelfSubjectAccessReview": "V1SelfSubjectAccessReview"}
MODES = ("Ignore", "Warn", "Strict")


def _split_generic(type_name: str) -> tuple[str, str]:
    head, _, inner = type_name.partition("[")
    return head, inner[:-1]


def prune_unknown(type_name: str, value: Any, path: str = "") -> list[str]:
    """Remove fields the API types do not have; return their paths (e.g. ``spec.foo``)."""
    head, inner = _split_generic(type_name)
    found: list[str] = []
    if head == "List" and isinstance(value, list):
        for i, item in enumerate(value):
            found += prune_unknown(inner, item, f"{path}[{i}]")
        return found
    if head == "Dict" and isinstance(value, dict):
        value_type = inner.split(",", 1)[1].strip()
        for key, item in value.items():
            found += prune_unknown(value_type, item, f"{path}[{key}]")
        return found
    model = getattr(models, type_name, None)
    if model is None or not isinstance(value, dict):
        return found
    by_json = {json_name: py for py, json_name in model.attribute_map.items()}
    for key in list(value):
        where = f"{path}.{key}" if path else key
        if key not in by_json:
            found.append(where)
            del value[key]
        elif value[key] is not None:
            found += prune_unknown(model.openapi_types[by_json[key]], value[key], where)
    return found


def apply_field_validation(kind: str, obj: dict[str, Any], mode: str | None) -> list[str]:
    """Prune unknown fields per ``fieldValidation``; return Warning header values."""
    mode = mode or "Warn"
    if mode not in MODES:
        raise bad_request(f'fieldValidation: Unsupported value: "{mode}": supported values: '
                          '"Ignore", "Strict", "Warn"')
    unknown = prune_unknown(MODELS[kind], obj) if kind in MODELS else []
    if not unknown or mode == "Ignore":
        return []
    texts = [f'unknown field "{field}"' for field in unknown]
    if mode == "Strict":
        raise bad_request(f'{kind} in version "v1" cannot be handled as a {kind}: strict '
                          f"decoding error: {', '.join(texts)}")
    return ['299 - "' + text.replace('"', '\\"') + '"' for text in texts]


def openapi_v3_root() -> dict[str, Any]:
    return {"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=fakekube"}}}


def openapi_v3_core() -> dict[str, Any]:
    """Just enough OpenAPI for kubectl's fieldValidation support check."""
    params = [{"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
              for name in ("dryRun", "fieldManager", "fieldValidation")]
    paths: dict[str, Any] = {}
    for res in CORE.values():
        item = ("/api/v1/namespaces/{namespace}/" if res.namespaced else "/api/v1/") + \
            f"{res.plural}/{{name}}"
        gvk = {"group": "", "version": "v1", "kind": res.kind}
        paths[item] = {"patch": {"operationId": f"patchCoreV1{res.kind}",
                                 "parameters": params,
                                 "x-kubernetes-action": "patch",
                                 "x-kubernetes-group-version-kind": gvk,
                                 "responses": {"200": {"description": "OK"}}}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"},
            "paths": paths, "components": {}}

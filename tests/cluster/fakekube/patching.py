"""PATCH bodies: JSON merge patch (RFC 7386) and JSON patch (RFC 6902).

Strategic merge patch is applied as a merge patch (lists are replaced, not merged by key);
that covers label/annotation edits, which is what the product patches. Server-side apply is
refused with 415 rather than half-implemented.
"""

from __future__ import annotations

from typing import Any

from .errors import ApiError, bad_request, unsupported_media_type
from .storage import clone

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
PATCH_TYPES = (MERGE, STRATEGIC, JSON_PATCH)


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return clone(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, list):
            doc = doc[int(part)]
        elif isinstance(doc, dict) and part in doc:
            doc = doc[part]
        else:
            raise KeyError(part)
    return doc


def _add(doc: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return clone(value)
    parent, last = _walk(doc, parts[:-1]), parts[-1]
    if isinstance(parent, list):
        parent.insert(len(parent) if last == "-" else int(last), clone(value))
    elif isinstance(parent, dict):
        parent[last] = clone(value)
    else:
        raise KeyError(last)
    return doc


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        raise bad_request("cannot remove the document root")
    parent, last = _walk(doc, parts[:-1]), parts[-1]
    _walk(parent, [last])
    if isinstance(parent, list):
        del parent[int(last)]
    else:
        del parent[last]
    return doc


def _apply_op(doc: Any, op: dict[str, Any]) -> Any:
    kind, path = op.get("op"), op.get("path", "")
    if kind == "add":
        return _add(doc, path, op.get("value"))
    if kind == "remove":
        return _remove(doc, path)
    if kind == "replace":
        return _add(_remove(doc, path), path, op.get("value")) if path else clone(op["value"])
    if kind == "move":
        value = _walk(doc, _pointer(op["from"]))
        return _add(_remove(doc, op["from"]), path, value)
    if kind == "copy":
        return _add(doc, path, _walk(doc, _pointer(op["from"])))
    if kind == "test":
        if _walk(doc, _pointer(path)) != op.get("value"):
            raise ApiError(422, "Invalid", f"testing value {path} failed")
        return doc
    raise bad_request(f"Unexpected kind: {kind}")


def json_patch(target: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = clone(target)
    for op in ops:
        try:
            doc = _apply_op(doc, op)
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ApiError(
                422, "Invalid", f"the server rejected our request due to an error in our "
                f"request: doc is missing path: {op.get('path')!r} ({exc})"
            ) from exc
    return doc


def apply_patch(content_type: str, target: Any, patch: Any) -> Any:
    base = content_type.split(";")[0].strip()
    if base == JSON_PATCH:
        return json_patch(target, patch)
    if base in (MERGE, STRATEGIC):
        if not isinstance(patch, dict):
            raise bad_request(
                "json: cannot unmarshal array into Go value of type map[string]interface {}"
            )
        return merge_patch(target, patch)
    raise unsupported_media_type(content_type)

"""Just enough Kubernetes protobuf to read the bodies kubectl's typed clients send.

kubectl's typed clientsets (``kubectl auth can-i``) POST ``application/vnd.kubernetes.protobuf``
and do not fall back to JSON (``kubectl create configmap`` too). The envelope is ``k8s\\0`` +
``runtime.Unknown``; only the kinds listed in :data:`FIELDS` and ConfigMap are decoded (others
stay 415, as an honest "not supported here").
"""

from __future__ import annotations

import base64
from typing import Any

from .errors import bad_request

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
_ATTRS = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource",
          6: "subresource", 7: "name"}
_META_STRINGS = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
# kind -> field number -> (json name, nested field table or None for a string)
FIELDS: dict[str, dict[int, tuple[str, Any]]] = {
    "SelfSubjectAccessReview": {
        2: ("spec", {1: ("resourceAttributes", {n: (k, None) for n, k in _ATTRS.items()})}),
    },
}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise bad_request("protobuf: truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """Decode one message level into (field number, varint or bytes) pairs."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            out.append((number, data[pos:pos + length]))
            pos += length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            out.append((number, data[pos:pos + size]))
            pos += size
        else:
            raise bad_request(f"protobuf: unsupported wire type {wire}")
    return out


def _to_dict(data: bytes, table: dict[int, tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for number, value in fields(data):
        if number not in table or not isinstance(value, bytes):
            continue
        name, nested = table[number]
        result[name] = _to_dict(value, nested) if nested else value.decode()
    return result


def _entries(values: list[int | bytes], text: bool) -> dict[str, Any]:
    """A protobuf map (repeated key=1/value=2 entries); bytes values as base64, as JSON has
    them."""
    out: dict[str, Any] = {}
    for entry in values:
        if not isinstance(entry, bytes):
            continue
        parts = {n: v for n, v in fields(entry) if isinstance(v, bytes)}
        value = parts.get(2, b"")
        out[parts.get(1, b"").decode()] = value.decode() if text else \
            base64.b64encode(value).decode()
    return out


def _object_meta(data: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    grouped: dict[int, list[int | bytes]] = {}
    for number, value in fields(data):
        grouped.setdefault(number, []).append(value)
    for number, name in _META_STRINGS.items():
        value = grouped.get(number, [b""])[-1]
        if isinstance(value, bytes) and value:
            meta[name] = value.decode()
    for number, name in ((11, "labels"), (12, "annotations")):
        if number in grouped:
            meta[name] = _entries(grouped[number], True)
    if 14 in grouped:
        meta["finalizers"] = [v.decode() for v in grouped[14] if isinstance(v, bytes)]
    return meta


def _configmap(data: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {}}
    grouped: dict[int, list[int | bytes]] = {}
    for number, value in fields(data):
        grouped.setdefault(number, []).append(value)
    if grouped.get(1) and isinstance(grouped[1][-1], bytes):
        obj["metadata"] = _object_meta(grouped[1][-1])
    if 2 in grouped:
        obj["data"] = _entries(grouped[2], True)
    if 3 in grouped:
        obj["binaryData"] = _entries(grouped[3], False)
    if 4 in grouped:
        obj["immutable"] = bool(grouped[4][-1])
    return obj


def decode(body: bytes) -> dict[str, Any] | None:
    """The JSON-equivalent object, or None when this kind is not decodable here."""
    if not body.startswith(b"k8s\x00"):
        raise bad_request("protobuf: missing k8s envelope")
    type_meta, raw = {}, b""
    for number, value in fields(body[4:]):
        if number == 1 and isinstance(value, bytes):
            type_meta = {n: v.decode() for n, v in fields(value) if isinstance(v, bytes)}
        elif number == 2 and isinstance(value, bytes):
            raw = value
    kind = type_meta.get(2, "")
    if kind == "ConfigMap":
        obj = _configmap(raw)
        obj.update(apiVersion=type_meta.get(1, ""), kind=kind)
        return obj
    if kind not in FIELDS:
        return None
    obj = _to_dict(raw, FIELDS[kind])
    obj.update(apiVersion=type_meta.get(1, ""), kind=kind, metadata={})
    return obj

"""ConfigMaps: the API server's decode and validation rules, and the kubelet's volume files.

What a real server enforces: `data` holds strings and `binaryData` base64 (a body that is
not decodes to 400, as Go's JSON decoder fails), keys match `[-._a-zA-Z0-9]+` and are not
`.`/`..`-prefixed, no key is in both maps, and the values together stay within 1 MiB (422
`Too long` on the whole object, field `[]`). An `immutable` ConfigMap keeps its data. The
kubelet side turns a `configMap` volume into files (all keys, or `items` with their paths
and modes, `defaultMode` 0644 otherwise); a missing ConfigMap or key is a mount failure,
unless the volume is `optional`.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import shutil
from pathlib import Path
from typing import Any

from .errors import bad_request, invalid
from .validation import Cause, decode_error, meta_causes

Obj = dict[str, Any]
MAX_SIZE = 1024 * 1024  # core.MaxSecretSize, also the ConfigMap limit
DEFAULT_MODE = 0o644
_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_B64 = re.compile(r"[A-Za-z0-9+/]")


def _bad_base64(value: str) -> int | None:
    """The input byte Go's StdEncoding stops at, or None when `value` decodes."""
    try:
        base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
        return None
    except (binascii.Error, ValueError):
        pass
    for i, ch in enumerate(value):
        if ch in "\r\n" or _B64.match(ch):
            continue
        if ch == "=" and i >= len(value.rstrip("\r\n").rstrip("=")):
            continue
        return i
    return len(value)


def check_configmap_types(obj: Obj) -> None:
    """400 for what Go could not unmarshal into a v1.ConfigMap."""
    for name, want in (("data", "string"), ("binaryData", "[]uint8")):
        mapping = obj.get(name)
        if mapping is None:
            continue
        if not isinstance(mapping, dict):
            raise decode_error("ConfigMap", f"ConfigMap.{name}", f"map[string]{want}", mapping)
        for value in mapping.values():
            if not isinstance(value, str):
                raise decode_error("ConfigMap", f"ConfigMap.{name}", want, value)
            if name == "binaryData" and (at := _bad_base64(value)) is not None:
                raise bad_request('ConfigMap in version "v1" cannot be handled as a ConfigMap: '
                                  f"illegal base64 data at input byte {at}")
    immutable = obj.get("immutable")
    if immutable is not None and not isinstance(immutable, bool):
        raise decode_error("ConfigMap", "ConfigMap.immutable", "bool", immutable)


def key_problems(key: str) -> list[str]:
    """validation.IsConfigMapKey."""
    problems = []
    if len(key) > 253:
        problems.append("must be no more than 253 characters")
    if not _KEY.match(key):
        problems.append("a valid config key must consist of alphanumeric characters, '-', '_' "
                        "or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used "
                        "for validation is '[-._a-zA-Z0-9]+')")
    if key == ".":
        problems.append("must not be '.'")
    elif key == "..":
        problems.append("must not be '..'")
    elif key.startswith(".."):
        problems.append("must not start with '..'")
    return problems


def decoded(cm: Obj) -> dict[str, bytes]:
    """Every key's bytes (data as UTF-8, binaryData decoded)."""
    out = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
    for key, value in (cm.get("binaryData") or {}).items():
        out[key] = base64.b64decode(value.replace("\r", "").replace("\n", ""))
    return out


def _causes(cm: Obj) -> list[Cause]:
    causes = meta_causes(cm["metadata"], True)
    data, binary = cm.get("data") or {}, cm.get("binaryData") or {}
    total = 0
    for key, value in data.items():
        for problem in key_problems(key):
            causes.append((f"data[{key}]", "FieldValueInvalid", f'Invalid value: "{key}": '
                           f"{problem}"))
        if key in binary:
            causes.append((f"data[{key}]", "FieldValueInvalid", f'Invalid value: "{key}": '
                           "duplicate of key present in binaryData"))
        total += len(value.encode())
    for key in binary:
        for problem in key_problems(key):
            causes.append((f"binaryData[{key}]", "FieldValueInvalid", f'Invalid value: "{key}": '
                           f"{problem}"))
    total += sum(len(v) for k, v in decoded({"binaryData": binary}).items())
    if total > MAX_SIZE:
        causes.append(("[]", "FieldValueTooLong",
                       f"Too long: may not be more than {MAX_SIZE} bytes"))
    return causes


def validate_configmap(cm: Obj) -> None:
    causes = _causes(cm)
    if causes:
        raise invalid("ConfigMap", cm["metadata"].get("name", ""), causes)


def validate_configmap_update(old: Obj, new: Obj) -> None:
    causes = _causes(new)
    if old.get("immutable"):
        locked = "Forbidden: field is immutable when `immutable` is set"
        if not new.get("immutable"):
            causes.append(("immutable", "FieldValueForbidden", locked))
        if (old.get("data") or {}) != (new.get("data") or {}):
            causes.append(("data", "FieldValueForbidden", locked))
        if (old.get("binaryData") or {}) != (new.get("binaryData") or {}):
            causes.append(("binaryData", "FieldValueForbidden", locked))
    if causes:
        raise invalid("ConfigMap", new["metadata"].get("name", ""), causes)


class MountError(Exception):
    """A configMap volume cannot be set up (the kubelet's FailedMount message)."""


def materialize(volume: Obj, cm: Obj | None, target: Path) -> None:
    """Write the files of `configMap` volume `volume` into the (new) directory `target`."""
    source = volume.get("configMap") or {}
    name, optional = source.get("name", ""), bool(source.get("optional"))
    if cm is None and not optional:
        raise MountError(f'configmap "{name}" not found')
    values = decoded(cm) if cm is not None else {}
    default_mode = source.get("defaultMode", DEFAULT_MODE)
    items = source.get("items")
    files: list[tuple[str, bytes, int]] = []
    if items:
        for item in items:
            key = item.get("key", "")
            if key not in values:
                if optional:
                    continue
                raise MountError(f"configmap references non-existent config key: {key}")
            files.append((item.get("path") or key, values[key], item.get("mode", default_mode)))
    else:
        files = [(key, value, default_mode) for key, value in values.items()]
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for rel, data, mode in files:
        path = target / rel
        if path.resolve().parent != target.resolve() and target.resolve() not in \
                path.resolve().parents:
            raise MountError(f"invalid path {rel!r} for key of configmap {name}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.chmod(path, mode)

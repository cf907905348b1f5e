"""Client-side operators: what happens to merged runner records before they are printed.

The stages are ``filter`` (drop events), ``sort`` (order and cap array batches) and ``fields``
(pick and describe the columns that ``kubectl_gadget.output`` prints). Each stage parses the
user's input into plain objects up front and compiles it against a datasource's schema once,
so the per-event work is a prebuilt closure. The trap avoided: re-parsing user input per event,
or discovering a typo in ``--filter`` only after runner pods were launched.

This module holds what the stages share and nothing else: the wire shape of a schema field,
the groups of field types, field lookup by name or alias, and the "unknown field, did you
mean ..." error.

Aliases: a field's ``cli.alias`` annotation (comma-separated) gives other names that
``--fields``, ``--filter`` and ``--sort`` accept for it, so a gadget can rename a field
(trace_open's ``pid`` became ``proc.pid``) without breaking the flags users already type.
Output always uses the field's own name. A real field name wins over another field's alias.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import TypedDict

from kubectl_gadget.errors import UsageError


class _FieldSchemaRequired(TypedDict):
    name: str
    type: str


class FieldSchema(_FieldSchemaRequired, total=False):
    """One entry of a ``schema`` record's ``fields`` list (see docs/protocol.md)."""

    tags: list[str]
    annotations: dict[str, str]


SIGNED_TYPES = frozenset({"s8", "s16", "s32", "s64", "s128"})
UNSIGNED_TYPES = frozenset({"u8", "u16", "u32", "u64", "u128"})
INTEGER_TYPES = SIGNED_TYPES | UNSIGNED_TYPES
FLOAT_TYPES = frozenset({"f32", "f64"})
NUMERIC_TYPES = INTEGER_TYPES | FLOAT_TYPES
STRING_TYPES = frozenset({"string", "enum"})
"""Types whose event values are strings (an enum arrives as its name)."""
OPAQUE_TYPES = frozenset({"array", "bytes"})
"""Types that can be printed but not compared, filtered or sorted on."""


def annotation(field: FieldSchema, key: str, default: str = "") -> str:
    """The annotation ``key`` of ``field`` (annotations are strings), or ``default``."""
    return field.get("annotations", {}).get(key, default)


ALIAS_ANNOTATION = "cli.alias"


def index_fields(fields: Iterable[FieldSchema]) -> dict[str, FieldSchema]:
    """Fields by name, in schema order, then by alias (see the module docstring)."""
    by_name = {f["name"]: f for f in fields}
    for field in list(by_name.values()):
        for alias in annotation(field, ALIAS_ANNOTATION).split(","):
            if alias.strip():
                by_name.setdefault(alias.strip(), field)
    return by_name


def unknown_field(context: str, name: str, known: Iterable[str]) -> UsageError:
    """A UsageError for an unknown field name, listing close matches (or all names)."""
    names = list(known)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if close:
        hint = "did you mean: " + ", ".join(close) + "?"
    else:
        hint = "available: " + ", ".join(names) if names else "the schema has no fields"
    return UsageError(f"{context}: unknown field {name!r} ({hint})")


def split_list(spec: str, context: str) -> list[str]:
    """Split a comma-separated flag value into stripped, non-empty items.

    An empty spec or an empty item (``a,,b``) is a UsageError naming ``context``.
    """
    items = [item.strip() for item in spec.split(",")]
    if not spec.strip():
        raise UsageError(f"{context}: empty value")
    if any(not item for item in items):
        raise UsageError(f"{context}: empty item in {spec!r}")
    return items


def require_fields(context: str, names: Sequence[str], by_name: Mapping[str, FieldSchema]) -> None:
    """Raise the unknown-field UsageError for the first of ``names`` not in ``by_name``."""
    for name in names:
        if name not in by_name:
            raise unknown_field(context, name, by_name)

"""The ``--fields`` operator: which fields are printed, in which order, and how wide.

Selection syntax:

- ``--fields a,b``: exactly these fields, in this order (hidden ones included).
- ``--fields +c,-d``: the mode's default fields, plus ``c`` (appended) minus ``d``. Mixing the
  two forms (``a,+c``) is a UsageError, as is an unknown field (with close matches).
- no ``--fields``: the defaults. For columns, every field whose ``columns.hidden`` annotation
  is not ``"true"``; for JSON/YAML, every field whose ``json.skip`` annotation is not
  ``"true"`` (machine output keeps hidden columns such as ``timestamp_raw``).

Column specs come from the field annotations, read once per schema into a frozen ``Column``:

- header: the field name upper-cased, dots kept (``k8s.node`` -> ``K8S.NODE``).
- width: ``columns.width`` if set, else a default by type (bool 5, 8-bit 4, 16-bit 6,
  32-bit 7, 64-bit 12, float 10, enum 10, other 16) widened to fit the header; then clamped to
  ``columns.minwidth`` / ``columns.maxwidth``, and never below 1.
- alignment: ``columns.alignment`` (``left`` | ``right``); numbers default right, others left.
- ellipsis: ``columns.ellipsis`` (``end`` | ``start`` | ``middle`` | ``none``), default ``end``.
- hex: ``columns.hex: "true"`` prints integers as ``0x..``.

A malformed annotation is a GadgetError (the gadget is wrong, not the user). The trap avoided:
computing widths from the values seen so far, which makes streamed columns drift.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from kubectl_gadget.errors import GadgetError, UsageError
from kubectl_gadget.operators import (
    INTEGER_TYPES,
    NUMERIC_TYPES,
    FieldSchema,
    annotation,
    index_fields,
    require_fields,
    split_list,
)

Mode = Literal["columns", "json"]
Alignment = Literal["left", "right"]
EllipsisMode = Literal["end", "start", "middle", "none"]
_T = TypeVar("_T", bound=str)

_CONTEXT = "invalid --fields"
_DEFAULT_WIDTHS = {
    "bool": 5,
    "u8": 4,
    "s8": 4,
    "u16": 6,
    "s16": 6,
    "u32": 7,
    "s32": 7,
    "u64": 12,
    "s64": 12,
    "u128": 20,
    "s128": 20,
    "f32": 10,
    "f64": 10,
    "enum": 10,
}
_OTHER_WIDTH = 16
_ALIGNMENTS: dict[str, Alignment] = {"left": "left", "right": "right"}
_ELLIPSES: dict[str, EllipsisMode] = {
    "end": "end",
    "start": "start",
    "middle": "middle",
    "none": "none",
}


@dataclass(frozen=True)
class FieldSelection:
    """A parsed ``--fields`` value.

    ``explicit`` is the exact list (or None when modifiers are used); ``add`` and ``remove``
    modify the mode's defaults. ``FieldSelection()`` means "the defaults".
    """

    explicit: tuple[str, ...] | None = None
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()

    @property
    def is_default(self) -> bool:
        """True when no ``--fields`` was given."""
        return self.explicit is None and not self.add and not self.remove


@dataclass(frozen=True)
class Column:
    """How one field is printed in columns mode (all decided before the first event)."""

    name: str
    header: str
    type: str
    width: int
    alignment: Alignment
    ellipsis: EllipsisMode
    hex: bool


def parse_fields(spec: str | None) -> FieldSelection:
    """Parse a ``--fields`` value (syntax only). None means no flag: the defaults."""
    if spec is None:
        return FieldSelection()
    items = split_list(spec, _CONTEXT)
    modifiers = [item for item in items if item[0] in "+-"]
    if modifiers and len(modifiers) != len(items):
        raise UsageError(
            f"{_CONTEXT} {spec!r}: either list the fields (a,b) or modify the defaults "
            "(+a,-b), not both"
        )
    if not modifiers:
        return FieldSelection(explicit=tuple(items))
    for item in items:
        if not item[1:].strip():
            raise UsageError(f"{_CONTEXT} {spec!r}: {item!r} names no field")
    add = tuple(item[1:].strip() for item in items if item[0] == "+")
    remove = tuple(item[1:].strip() for item in items if item[0] == "-")
    return FieldSelection(add=add, remove=remove)


def _is_true(field: FieldSchema, key: str) -> bool:
    return annotation(field, key).strip().lower() == "true"


def _default_filter(mode: Mode) -> Callable[[FieldSchema], bool]:
    key = "columns.hidden" if mode == "columns" else "json.skip"
    return lambda field: not _is_true(field, key)


def select_fields(
    selection: FieldSelection, fields: Sequence[FieldSchema], mode: Mode = "columns"
) -> list[FieldSchema]:
    """The schema fields to print, in order, for ``mode`` (see the module docstring).

    Raises UsageError for a field the schema does not have, with close matches.
    """
    by_name = index_fields(fields)
    if selection.explicit is not None:
        require_fields(_CONTEXT, selection.explicit, by_name)
        chosen = {by_name[name]["name"]: by_name[name] for name in selection.explicit}
        return list(chosen.values())
    require_fields(_CONTEXT, selection.add + selection.remove, by_name)
    keep = _default_filter(mode)
    names = [f["name"] for f in fields if keep(f)]
    names += [by_name[name]["name"] for name in selection.add]
    removed = {by_name[name]["name"] for name in selection.remove}
    return [by_name[name] for name in dict.fromkeys(names) if name not in removed]


def _int_annotation(field: FieldSchema, key: str) -> int | None:
    raw = annotation(field, key).strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise GadgetError(
            f"reading column spec of field {field['name']}: {key}={raw!r} is not a "
            "non-negative integer"
        )
    return value


def _choice(field: FieldSchema, key: str, choices: Mapping[str, _T], default: _T) -> _T:
    raw = annotation(field, key).strip().lower()
    if not raw:
        return default
    if raw not in choices:
        raise GadgetError(
            f"reading column spec of field {field['name']}: {key}={raw!r} is not one of "
            + ", ".join(choices)
        )
    return choices[raw]


MAX_COLUMN_WIDTH = 1024


def _width(field: FieldSchema, header: str) -> int:
    explicit = _int_annotation(field, "columns.width")
    minimum = _int_annotation(field, "columns.minwidth")
    maximum = _int_annotation(field, "columns.maxwidth")
    if minimum is not None and maximum is not None and minimum > maximum:
        raise GadgetError(
            f"reading column spec of field {field['name']}: columns.minwidth={minimum} "
            f"is larger than columns.maxwidth={maximum}"
        )
    if explicit is not None:
        width = explicit
    else:
        width = max(_DEFAULT_WIDTHS.get(field["type"], _OTHER_WIDTH), len(header))
    if minimum is not None:
        width = max(width, minimum)
    if maximum is not None:
        width = min(width, maximum)
    return min(max(width, 1), MAX_COLUMN_WIDTH)  # a runner's schema is bounded here too


def column_spec(field: FieldSchema) -> Column:
    """The column spec of one field, from its annotations (GadgetError if malformed)."""
    header = field["name"].upper()
    numeric = field["type"] in NUMERIC_TYPES
    default_alignment: Alignment = "right" if numeric else "left"
    alignment = _choice(field, "columns.alignment", _ALIGNMENTS, default_alignment)
    ellipsis = _choice(field, "columns.ellipsis", _ELLIPSES, "end")
    return Column(
        name=field["name"],
        header=header,
        type=field["type"],
        width=_width(field, header),
        alignment=alignment,
        ellipsis=ellipsis,
        hex=_is_true(field, "columns.hex") and field["type"] in INTEGER_TYPES,
    )


def resolve_columns(selection: FieldSelection, fields: Sequence[FieldSchema]) -> list[Column]:
    """The columns to print for a datasource: ``select_fields`` then ``column_spec`` each."""
    return [column_spec(field) for field in select_fields(selection, fields, "columns")]

"""The ``--sort`` and ``--max-entries`` operator for array records (snapshots, tops).

``--sort f1,-f2`` orders the rows of each batch by ``f1`` ascending, then by ``f2``
descending (a leading ``+`` is allowed and means ascending). ``--max-entries N`` keeps the
first ``N`` rows after sorting; None or 0 means no limit, a negative N is a UsageError.

Rows missing a key, or holding a value of the wrong type for the field (say a string in a
``u32`` field), sort after all others whatever the direction, instead of failing the batch.
Sorting is stable: rows with equal keys keep their order from the runner.

``parse_sort`` checks the syntax up front; ``compile_sort`` checks the fields against the
schema and returns a function applied per batch. The trap avoided: comparing numbers as
strings (``"10" < "9"``), or a ``TypeError`` from a ``None`` aborting a whole batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubectl_gadget.errors import UsageError
from kubectl_gadget.operators import (
    NUMERIC_TYPES,
    OPAQUE_TYPES,
    FieldSchema,
    index_fields,
    split_list,
    unknown_field,
)

Row = Mapping[str, Any]
ArrayOp = Callable[[Sequence[Row]], list[Row]]

_CONTEXT = "invalid --sort"


@dataclass(frozen=True)
class SortKey:
    """One parsed sort key."""

    field: str
    descending: bool = False


def parse_sort(spec: str) -> list[SortKey]:
    """Parse a ``--sort`` value (syntax only): ``f1,-f2`` -> ascending f1, descending f2."""
    keys = []
    for item in split_list(spec, _CONTEXT):
        descending = item.startswith("-")
        name = item[1:].strip() if item[0] in "+-" else item
        if not name:
            raise UsageError(f"{_CONTEXT} {spec!r}: {item!r} names no field")
        keys.append(SortKey(field=name, descending=descending))
    return keys


def check_max_entries(max_entries: int | None) -> int | None:
    """Validate ``--max-entries``: None or 0 is no limit (returns None); negative: UsageError."""
    if max_entries is None or max_entries == 0:
        return None
    if max_entries < 0:
        raise UsageError(f"invalid --max-entries {max_entries}: must be 0 (no limit) or more")
    return max_entries


def _accepted_types(ftype: str) -> tuple[type, ...]:
    if ftype in NUMERIC_TYPES or ftype == "bool":
        return (int, float)
    return (str,)


def _sort_pass(rows: list[Row], name: str, accepted: tuple[type, ...], reverse: bool) -> list[Row]:
    """One stable pass on one key; unsortable rows go last, keeping their order."""
    present = [row for row in rows if isinstance(row.get(name), accepted)]
    if len(present) == len(rows):
        rows.sort(key=lambda row: row[name], reverse=reverse)
        return rows
    missing = [row for row in rows if not isinstance(row.get(name), accepted)]
    present.sort(key=lambda row: row[name], reverse=reverse)
    return present + missing


def compile_sort(
    keys: Sequence[SortKey], fields: Sequence[FieldSchema], max_entries: int | None = None
) -> ArrayOp:
    """Check ``keys`` against the schema and build the per-batch sort-and-limit function.

    Raises UsageError for an unknown field (with close matches), a field that cannot be sorted
    (array, bytes), or a negative ``max_entries``. The returned function never mutates its
    argument and returns a new list.
    """
    limit = check_max_entries(max_entries)
    by_name = index_fields(fields)
    passes: list[tuple[str, tuple[type, ...], bool]] = []
    for key in keys:
        field = by_name.get(key.field)
        if field is None:
            raise unknown_field(_CONTEXT, key.field, by_name)
        if field["type"] in OPAQUE_TYPES:
            raise UsageError(f"{_CONTEXT}: {key.field} is {field['type']}, which cannot be sorted")
        passes.append((field["name"], _accepted_types(field["type"]), key.descending))
    # Stable sorts compose: sort by the least significant key first.
    passes.reverse()

    def apply(rows: Sequence[Row]) -> list[Row]:
        result = list(rows)
        for name, accepted, reverse in passes:
            result = _sort_pass(result, name, accepted, reverse)
        if limit is not None:
            del result[limit:]
        return result

    return apply

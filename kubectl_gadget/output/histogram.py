"""Histogram fields (arrays of `gadget_histogram_slot__*` log2 slots): buckets and bar charts.

Slot `i` counts values `v` with `2^i <= v < 2^(i+1)`, slot 0 also counts 0 (docs/protocol.md).
- JSON: the slots become buckets, `[{"le": 1, "count": 0}, {"le": 3, "count": 5}, ...]`: `le` is
  the largest value of the bucket, `count` the values in it (not cumulative); buckets after the
  last non-empty one are left out.
- columns: the chart a bcc user knows, one line per bucket up to the last non-empty one,
  `usecs : count | distribution` with a bar of 40 stars for the fullest bucket.
The trap avoided: drawing bars from bucket counts of one row scaled by another row's maximum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubectl_gadget.operators import FieldSchema, annotation

SLOT_TAG_PREFIX = "type:gadget_histogram_slot__"
BAR_WIDTH = 40


def histogram_fields(fields: Sequence[FieldSchema]) -> list[str]:
    """Names of the fields that are log2 histograms."""
    return [f["name"] for f in fields
            if any(t.startswith(SLOT_TAG_PREFIX) for t in f.get("tags", []))]


def chart_labels(fields: Sequence[FieldSchema]) -> dict[str, str]:
    """The label of each histogram's chart: its unit (`metrics.unit`) when it has one, as bcc
    heads its charts (`usecs`), after the field's name."""
    return {f["name"]: f"{f['name']} ({unit})"
            if (unit := annotation(f, "metrics.unit")) not in ("", f["name"]) else f["name"]
            for f in fields}


def bounds(slot: int) -> tuple[int, int]:
    """(lowest, highest) value counted in `slot`."""
    return (0 if slot == 0 else 1 << slot), (1 << (slot + 1)) - 1


def _used(slots: Sequence[int]) -> int:
    """Slots up to and including the last non-empty one."""
    return max((i + 1 for i, c in enumerate(slots) if c), default=0)


def buckets(slots: Any) -> Any:
    """The JSON shape of one histogram value (anything that is not a list is left alone)."""
    if not isinstance(slots, list):
        return slots
    return [{"le": bounds(i)[1], "count": c} for i, c in enumerate(slots[:_used(slots)])]


def with_buckets(row: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    out = dict(row)
    for name in names:
        if name in out:
            out[name] = buckets(out[name])
    return out


def chart(label: str, slots: Sequence[int]) -> str:
    """The bar chart of one histogram, each line ending in a newline."""
    used = list(slots[:_used(slots)])
    if not used:
        return f"{label}: (no values)\n"
    top = max(used)
    width = max(len(str(bounds(len(used) - 1)[1])), 5)
    ranges = max(2 * width + 4, len(label))  # the label never pushes the colons out of line
    lines = [f"{label:>{width}}".ljust(ranges) + " : count    distribution"]
    for i, count in enumerate(used):
        lo, hi = bounds(i)
        stars = "*" * (count * BAR_WIDTH // top) if top else ""
        span = f"{lo:>{width}} -> {hi:<{width}}".ljust(ranges)
        lines.append(f"{span} : {count:<8} |{stars:<{BAR_WIDTH}}|")
    return "\n".join(lines) + "\n"

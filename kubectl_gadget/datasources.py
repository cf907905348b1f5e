"""One datasource's operators, compiled once when its schema is known: the owner step and
filter (one predicate per row), the sort, the formatter, and whether its events can be
forwarded as the runner nested them (`-o json` of every field, nothing to compute)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from kubectl_gadget.errors import UsageError
from kubectl_gadget.operators import FieldSchema, annotation
from kubectl_gadget.operators.fields import FieldSelection
from kubectl_gadget.operators.filter import Condition, compile_filters
from kubectl_gadget.operators.kubeip import OwnerLookup, compile_owners, with_owner_fields
from kubectl_gadget.operators.sort import SortKey, compile_sort, parse_sort
from kubectl_gadget.output import Formatter, make_formatter
from kubectl_gadget.output.histogram import histogram_fields
from node_runner.gadget.nesting import nests_cleanly
from node_runner.gadget.schema import ENRICHMENT_FIELDS

Diag = Callable[[str], None]
FormatterFactory = Callable[[str, list[FieldSchema], FieldSelection], Formatter]


@dataclass(frozen=True)
class Operators:
    """User choices parsed before anything starts."""

    filters: Sequence[Condition] = ()
    selection: FieldSelection = field(default_factory=FieldSelection)
    mode: str = "columns"
    sort: Sequence[SortKey] = ()
    max_entries: int | None = None
    map_fetch_interval: float | None = None  # seconds; None: the runner's default (1 s)
    # A gadget with several array datasources: --sort keys were checked against all of them
    # (each must name a field of one), and each datasource sorts by the keys it has.
    sort_fields: frozenset[str] = frozenset()
    headers: bool = True  # --no-headers: columns without their header line
    width: int | None = None  # columns fitted to this many characters (the terminal's)


@dataclass
class Datasource:
    fields: list[FieldSchema]
    # Per row, before it is shown: the owner step (cluster endpoints) then the filter;
    # False drops the row.
    predicate: Callable[[Mapping[str, Any]], bool] | None
    sort: Callable[[Sequence[Any]], list[Any]]
    formatter: Formatter
    kind: str = "stream"
    forward: bool = False  # output is the event data as nested by the runner, untouched
    resolves_owners: bool = False  # endpoint owner fields are filled (cluster runs)


def compile_datasource(ops: Operators, ds: str, fields: list[FieldSchema], kind: str,
                       annotations: Mapping[str, str], *, owners: OwnerLookup | None,
                       out: TextIO, diag: Diag,
                       formatters: FormatterFactory | None = None) -> Datasource:
    """The operators of datasource `ds`; UsageError on bad filters/fields/sort, GadgetError on
    fields that cannot be shown."""
    fill = compile_owners(fields, owners) if owners is not None else None
    if fill is not None:
        fields = with_owner_fields(fields)
    predicate = compile_filters(ops.filters, fields) if ops.filters else None
    keys = ops.sort or _default_sort(annotations, fields)
    if kind == "array" and ops.sort_fields:  # several datasources: keys of this one
        keys = [k for k in keys if k.field in {f["name"] for f in fields}]
    sort = compile_sort(keys, fields, ops.max_entries)
    shown = fields
    if kind == "array" and ops.mode == "columns":  # histograms are drawn as charts
        hists = set(histogram_fields(fields))
        shown = [{**f, "annotations": {**f.get("annotations", {}), "columns.hidden": "true"}}
                 if f["name"] in hists else f for f in fields]
    formatter = make_formatter(ops.mode, shown, ops.selection, out=out, diag=diag,
                               headers=ops.headers, width=ops.width) if formatters is None \
        else formatters(ds, shown, ops.selection)
    forward = (kind == "stream" and ops.mode == "json" and predicate is None
               and ops.selection.is_default
               and not any(annotation(f, "json.skip") == "true" for f in fields)
               and _runner_nests(fields) and fill is None)
    return Datasource(fields, _after(fill, predicate), sort, formatter, kind, forward,
                      fill is not None)


def _default_sort(annotations: Mapping[str, str], fields: list[FieldSchema]) -> list[SortKey]:
    """The datasource's `cli.default-sort` (a gadget's own annotation) if it names its fields."""
    spec = annotations.get("cli.default-sort", "")
    try:
        keys = parse_sort(spec) if spec else []
        compile_sort(keys, fields)
    except UsageError:
        return []
    return keys


def _runner_nests(fields: list[FieldSchema]) -> bool:
    """Whether the runner's nesting of these fields is exactly what `-o json` prints: the
    gadget's own names group cleanly, and the enrichment names, if any, come last in the
    runner's order."""
    names = [f["name"] for f in fields]
    own = [n for n in names if n not in ENRICHMENT_FIELDS]
    tail = names[len(own):]
    return nests_cleanly(own) and tail == [n for n in ENRICHMENT_FIELDS if n in tail]


def _after(step: Callable[[dict[str, Any]], None] | None,
           predicate: Callable[[Mapping[str, Any]], bool] | None
           ) -> Callable[[Mapping[str, Any]], bool] | None:
    """`predicate` run after `step` (which fills fields of the row in place)."""
    if step is None:
        return predicate
    test = predicate or (lambda row: True)

    def filled(row: Any) -> bool:
        step(row)
        return test(row)
    return filled

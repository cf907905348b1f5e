"""The client's record path: runner output in, formatted output out.

For every datasource, the filter, sort and formatter are compiled once, when its schema is
known (before the runners start when the gadget's spec is at hand, otherwise on the first
`schema` record), and then applied per batch: each node's output arrives as a blob of
complete lines, is decoded and checked in one call at the protocol boundary (`records`), and
runs of events of one datasource go through the gate, the filter and the formatter as lists.
Non-event records (`lost`, `warning`, `error`) go to the diagnostic stream so stdout stays
machine-readable, and each node's `hello`, `error` and `end` are kept for the end-of-run
summary and exit code. The trap avoided: a record from one misbehaving node (garbage, a wrong
type in a known key, an unknown datasource) stopping the view of all the others; such records
are counted and reported for their node, never raised.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

import msgspec

from kubectl_gadget import records as R
from kubectl_gadget.errors import GadgetError, UsageError
from kubectl_gadget.operators import FieldSchema
from kubectl_gadget.operators.fields import FieldSelection
from kubectl_gadget.operators.filter import Condition, compile_filters
from kubectl_gadget.operators.sort import SortKey, compile_sort
from kubectl_gadget.output import ColumnsFormatter, Formatter, describe_record, make_formatter

SUPPORTED_PROTOCOL = 1
REPORTED_PER_NODE = 3  # bad records described per node; the rest are counted
Diag = Callable[[str], None]


class Gate(Protocol):
    """Admits events of target containers (cluster runs); may hold some for later."""

    def admit(self, ds: str, data: dict[str, Any]) -> bool: ...
    def release(self) -> list[tuple[str, dict[str, Any]]]: ...


@dataclass(frozen=True)
class Operators:
    """User choices parsed before anything starts."""

    filters: Sequence[Condition] = ()
    selection: FieldSelection = field(default_factory=FieldSelection)
    mode: str = "columns"
    sort: Sequence[SortKey] = ()
    max_entries: int | None = None


@dataclass
class NodeState:
    hello: Mapping[str, Any] | None = None
    end: Mapping[str, Any] | None = None
    error: Mapping[str, Any] | None = None
    events: int = 0  # well-formed events received (shown or not)
    lost: int = 0
    bad_lines: int = 0  # lines that are not valid protocol records
    unannounced: dict[str, int] = field(default_factory=dict)  # ds -> events without a schema

    def problems(self) -> list[str]:
        """What went wrong with this node's stream, one phrase each (empty when nothing)."""
        out = []
        if self.bad_lines:
            out.append(f"{self.bad_lines} malformed record(s) skipped")
        for ds, count in self.unannounced.items():
            out.append(f"{count} event(s) of datasource {ds!r} skipped: no schema announced")
        sent = self.end.get("events") if self.end else None
        received = self.events + sum(self.unannounced.values())
        if isinstance(sent, int) and sent != received:
            out.append(f"the runner reported {sent} event(s), {received} arrived")
        return out


@dataclass
class _Datasource:
    fields: list[FieldSchema]
    predicate: Callable[[Mapping[str, Any]], bool] | None
    sort: Callable[[Sequence[Any]], list[Any]]
    formatter: Formatter


class Pipeline:
    def __init__(self, ops: Operators, out: TextIO, diag: Diag, gate: Gate | None = None) -> None:
        self.ops = ops
        self.gate = gate
        self.out = out
        self.diag = diag
        self.nodes: dict[str, NodeState] = {}
        self._ds: dict[str, _Datasource] = {}

    def prepare(self, ds: str, fields: list[FieldSchema]) -> None:
        """Compile the operators for a datasource; UsageError on bad filters/fields/sort,
        GadgetError on fields that cannot be shown."""
        if ds in self._ds:
            return
        predicate = compile_filters(self.ops.filters, fields) if self.ops.filters else None
        sort = compile_sort(self.ops.sort, fields, self.ops.max_entries)
        formatter = make_formatter(self.ops.mode, fields, self.ops.selection, out=self.out,
                                   diag=self.diag)
        self._ds[ds] = _Datasource(fields, predicate, sort, formatter)

    def node(self, name: str) -> NodeState:
        return self.nodes.setdefault(name, NodeState())

    def feed(self, node: str, blob: bytes) -> None:
        """Process a blob of complete lines from `node` (output is written, not flushed)."""
        state = self.node(node)
        recs = R.decode(blob)
        i, n = 0, len(recs)
        while i < n:
            rec = recs[i]
            if type(rec) is R.Event:
                j = i + 1
                while j < n and type(recs[j]) is R.Event and recs[j].ds == rec.ds:  # type: ignore[union-attr]
                    j += 1
                self._events(node, state, rec.ds, recs[i:j])  # type: ignore[arg-type]
                i = j
                continue
            self._record(node, state, rec)
            i += 1

    def flush(self) -> None:
        """Show events the gate released, and flush the output (once per wake-up)."""
        if self.gate is not None:
            for ds_name, data in self.gate.release():
                ds = self._ds.get(ds_name)
                if ds is not None and (ds.predicate is None or ds.predicate(data)):
                    ds.formatter.events([data])
        for ds in self._ds.values():
            ds.formatter.flush()

    def _events(self, node: str, state: NodeState, name: str, events: Sequence[R.Event]) -> None:
        ds = self._ds.get(name)
        if ds is None:
            count = state.unannounced.get(name, 0)
            if not count:
                self.diag(f"node {node}: events of datasource {name!r} arrive without a schema;"
                          " skipping them")
            state.unannounced[name] = count + len(events)
            return
        state.events += len(events)
        rows = [e.data for e in events]
        if self.gate is not None:
            admit = self.gate.admit
            rows = [d for d in rows if admit(name, d)]
        if ds.predicate is not None:
            rows = list(filter(ds.predicate, rows))
        if rows:
            ds.formatter.events(rows)

    def _record(self, node: str, state: NodeState, rec: R.Record | R.Bad) -> None:
        if type(rec) is R.Bad:
            self._bad(node, state, rec.reason, rec.line)
        elif type(rec) is R.Lost:
            state.lost += rec.count
            self._notice(msgspec.to_builtins(rec), node)
        elif type(rec) in (R.Warn, R.Error):
            as_dict = msgspec.to_builtins(rec)
            if type(rec) is R.Error:
                state.error = as_dict
            self._notice(as_dict, node)
        elif type(rec) is R.Array:
            ds = self._ds.get(rec.ds)
            if ds is None:
                state.unannounced[rec.ds] = state.unannounced.get(rec.ds, 0) + 1
                return
            rows = rec.data if ds.predicate is None else list(filter(ds.predicate, rec.data))
            ds.formatter.array(ds.sort(rows))
        elif type(rec) is R.Schema:
            self._schema(node, state, rec)
        elif type(rec) is R.Hello:
            state.hello = msgspec.to_builtins(rec)
            if rec.protocol > SUPPORTED_PROTOCOL:
                self.diag(f"node {node}: runner speaks protocol {rec.protocol}, this "
                          f"client {SUPPORTED_PROTOCOL}; upgrade kubectl-gadget")
        elif type(rec) is R.End:
            state.end = msgspec.to_builtins(rec)

    def _schema(self, node: str, state: NodeState, rec: R.Schema) -> None:
        fields: list[FieldSchema] = [msgspec.structs.asdict(f) for f in rec.fields]  # type: ignore[misc]
        try:
            self.prepare(rec.ds, fields)
        except UsageError:
            raise  # the user's filter/fields do not fit this gadget: a usage error, as before
        except GadgetError as exc:
            self._bad(node, state, f"schema of datasource {rec.ds!r} rejected: {exc}", b"")
            return
        fmt = self._ds[rec.ds].formatter
        # A runner is tracing: show the column header now, so a quiet gadget shows it runs.
        if rec.kind == "stream" and isinstance(fmt, ColumnsFormatter) and not fmt.header_written:
            fmt.header()

    def _bad(self, node: str, state: NodeState, reason: str, line: bytes) -> None:
        state.bad_lines += 1
        if state.bad_lines <= REPORTED_PER_NODE:
            shown = f": {line[:80]!r}" if line else ""
            self.diag(f"node {node}: skipping a malformed record ({reason}){shown}")

    def _notice(self, rec: Mapping[str, Any], node: str) -> None:
        ds = next(iter(self._ds.values()), None)
        if ds is not None:
            ds.formatter.notice(rec, node)
        else:
            text = describe_record(rec, node)
            if text:
                self.diag(text)

"""The client's record path: protocol records in, formatted output out.

For every datasource, the filter, sort and formatter are compiled once, when its schema is
known (before the runners start when the gadget's spec is at hand, otherwise on the first
`schema` record), and then applied per record. Non-event records (`lost`, `warning`, `error`)
go to the diagnostic stream so stdout stays machine-readable, and each node's `hello`, `error`
and `end` are kept for the end-of-run summary and exit code. The trap avoided: a record from
one misbehaving node (garbage line, unknown datasource) stopping the view of all the others;
such records are counted and reported, never raised.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from kubectl_gadget.operators import FieldSchema
from kubectl_gadget.operators.fields import FieldSelection
from kubectl_gadget.operators.filter import Condition, compile_filters
from kubectl_gadget.operators.sort import SortKey, compile_sort
from kubectl_gadget.output import ColumnsFormatter, Formatter, describe_record, make_formatter

SUPPORTED_PROTOCOL = 1
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
    events: int = 0
    lost: int = 0
    bad_lines: int = 0


@dataclass
class _Datasource:
    fields: list[FieldSchema]
    predicate: Callable[[Mapping[str, Any]], bool]
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
        """Compile the operators for a datasource; UsageError on bad filters/fields/sort."""
        if ds in self._ds:
            return
        predicate = compile_filters(self.ops.filters, fields) if self.ops.filters else _always
        sort = compile_sort(self.ops.sort, fields, self.ops.max_entries)
        formatter = make_formatter(self.ops.mode, fields, self.ops.selection, out=self.out,
                                   diag=self.diag)
        self._ds[ds] = _Datasource(fields, predicate, sort, formatter)

    def node(self, name: str) -> NodeState:
        return self.nodes.setdefault(name, NodeState())

    def lines(self, node: str, lines: list[bytes]) -> None:
        state = self.node(node)
        for line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                state.bad_lines += 1
                if state.bad_lines <= 3:
                    self.diag(f"node {node}: not a protocol record: {line[:120]!r}")
                continue
            if isinstance(record, dict):
                self.record(node, state, record)
        self.idle()

    def idle(self) -> None:
        """Show events the gate released, and flush the formatters."""
        if self.gate is not None:
            for ds_name, data in self.gate.release():
                ds = self._ds.get(ds_name)
                if ds is not None and ds.predicate(data):
                    ds.formatter.event(data)
        for ds in self._ds.values():
            ds.formatter.flush()

    def record(self, node: str, state: NodeState, rec: dict[str, Any]) -> None:
        kind = rec.get("type")
        if kind == "event":
            ds = self._ds.get(rec.get("ds", ""))
            data = rec.get("data")
            if ds is not None and isinstance(data, dict):
                state.events += 1
                if self.gate is not None and not self.gate.admit(rec["ds"], data):
                    return
                if ds.predicate(data):
                    ds.formatter.event(data)
        elif kind == "array":
            ds = self._ds.get(rec.get("ds", ""))
            rows = rec.get("data")
            if ds is not None and isinstance(rows, list):
                ds.formatter.array(ds.sort([r for r in rows if ds.predicate(r)]))
        elif kind == "schema":
            name = str(rec.get("ds", ""))
            self.prepare(name, list(rec.get("fields", [])))
            self._announce(name, rec)
        elif kind == "hello":
            state.hello = rec
            if rec.get("protocol", 0) > SUPPORTED_PROTOCOL:
                self.diag(f"node {node}: runner speaks protocol {rec.get('protocol')}, this "
                          f"client {SUPPORTED_PROTOCOL}; upgrade kubectl-gadget")
        elif kind == "end":
            state.end = rec
        elif kind in ("lost", "warning", "error"):
            if kind == "lost":
                state.lost += int(rec.get("count", 0))
            if kind == "error":
                state.error = rec
            self._notice(rec, node)

    def _announce(self, name: str, rec: Mapping[str, Any]) -> None:
        """A runner is tracing: show the column header now, so a quiet gadget shows it runs."""
        fmt = self._ds[name].formatter
        if rec.get("kind") == "stream" and isinstance(fmt, ColumnsFormatter) \
                and not fmt.header_written:
            fmt.header()

    def _notice(self, rec: Mapping[str, Any], node: str) -> None:
        ds = next(iter(self._ds.values()), None)
        if ds is not None:
            ds.formatter.notice(rec, node)
        else:
            text = describe_record(rec, node)
            if text:
                self.diag(text)


def _always(_data: Mapping[str, Any]) -> bool:
    return True

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

Never decode what nobody reads: when the output is `-o json` of every field with no filter,
the runners are asked for event data already nested as `-o json` prints it (`--nested-data`,
confirmed in each `hello`), and such events are checked as records but their data is written
out as the runner sent it, without being turned into objects. On a cluster the target gate
still reads each event's container id and pod name (two keys, decoded from the text); an
event the gate must hold or complete takes the decoding path. Output is written once per
wake-up of the session (`flush`), not per batch of lines.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO, cast

import msgspec

from kubectl_gadget import records as R
from kubectl_gadget.datasources import (
    Datasource,
    Diag,
    FormatterFactory,
    Operators,
    compile_datasource,
)
from kubectl_gadget.errors import GadgetError, UsageError
from kubectl_gadget.operators import FieldSchema
from kubectl_gadget.operators.combine import Combiner, Table
from kubectl_gadget.operators.kubeip import OwnerLookup
from kubectl_gadget.output import ColumnsFormatter, describe_record
from kubectl_gadget.output.arrays import ArrayView
from kubectl_gadget.output.batched import Batched, isatty

__all__ = ["Gate", "NodeState", "Operators", "Pipeline", "printable"]

SUPPORTED_PROTOCOL = 1
REPORTED_PER_NODE = 3  # bad records described per node; the rest are counted
LOG_LINES_PER_NODE = 20  # runner log lines (pod logs mix stderr in) shown per node


class Gate(Protocol):
    """Admits events and array rows of target containers (cluster runs); may hold events."""

    def admit(self, ds: str, data: dict[str, Any]) -> bool: ...
    def admit_row(self, row: dict[str, Any]) -> bool: ...
    def release(self) -> list[tuple[str, dict[str, Any]]]: ...
    def shows(self, container_id: str) -> bool: ...


class _Runtime(msgspec.Struct, frozen=True):
    containerId: str = ""  # noqa: N815 - the field's name


class _K8s(msgspec.Struct, frozen=True):
    podName: str = ""  # noqa: N815 - the field's name


class _GateKeys(msgspec.Struct, frozen=True, gc=False):
    """What the gate reads of a nested event (every other key is skipped unread)."""

    runtime: _Runtime = _Runtime()
    k8s: _K8s = _K8s()


_gate_keys = msgspec.json.Decoder(_GateKeys)


@dataclass
class NodeState:
    hello: Mapping[str, Any] | None = None
    end: Mapping[str, Any] | None = None
    error: Mapping[str, Any] | None = None
    events: int = 0  # well-formed events received (shown or not)
    lost: int = 0
    bad_lines: int = 0  # lines that are not valid protocol records
    log_lines: int = 0  # lines that are not JSON objects: the runner's own log (pod logs)
    unannounced: dict[str, int] = field(default_factory=dict)  # ds -> events without a schema
    phase: str = ""  # what the runner said it was doing last (names a crash during it)
    running_since: float | None = None  # monotonic time of its first schema: the gadget runs

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


class Pipeline:
    def __init__(self, ops: Operators, out: TextIO, diag: Diag, gate: Gate | None = None) -> None:
        self.ops = ops
        self.gate = gate
        self.out = cast(TextIO, Batched(out))
        self.diag = diag
        self.nodes: dict[str, NodeState] = {}
        self._ds: dict[str, Datasource] = {}
        self.combiner = Combiner(ops.map_fetch_interval or 1.0)
        self.view = ArrayView(self.out, tty=isatty(out),
                              interval=ops.map_fetch_interval or 1.0)
        self._refused: set[str] = set()  # nodes whose runner speaks another protocol
        self.forward = False  # runners were asked for nested data (see `can_forward`)
        self.cancelled = False  # set from another thread: the session stops its runners
        self.owners: OwnerLookup | None = None  # cluster runs: endpoint addresses -> pod/svc
        # Formatter of a datasource (the Python API hands events over instead of printing).
        self.formatters: FormatterFactory | None = None

    def prepare(self, ds: str, fields: list[FieldSchema], kind: str = "stream",
                annotations: Mapping[str, str] | None = None) -> None:
        """Compile the operators for a datasource; UsageError on bad filters/fields/sort,
        GadgetError on fields that cannot be shown."""
        if ds in self._ds:
            return
        compiled = compile_datasource(
            self.ops, ds, fields, kind, annotations or {}, owners=self.owners, out=self.out,
            diag=self.diag, formatters=self.formatters)
        if compiled.resolves_owners and self.owners is not None:
            self.owners.start()
        self._ds[ds] = compiled

    def can_forward(self) -> bool:
        """True when every prepared datasource prints its events' data as it is, nested."""
        return bool(self._ds) and all(d.forward for d in self._ds.values())

    def node(self, name: str) -> NodeState:
        return self.nodes.setdefault(name, NodeState())

    def feed(self, node: str, blob: bytes) -> None:
        """Process a blob of complete lines from `node` (output is written, not flushed)."""
        state = self.node(node)
        recs: Sequence[Any] = R.decode(blob, raw_events=self.forward)
        i, n = 0, len(recs)
        event_types = (R.Event, R.RawEvent)
        while i < n:
            rec = recs[i]
            if type(rec) in event_types:
                j = i + 1
                while j < n and type(recs[j]) in event_types and recs[j].ds == rec.ds:
                    j += 1
                self._events(node, state, rec.ds, recs[i:j])
                i = j
                continue
            self._record(node, state, rec)
            i += 1

    def flush(self) -> None:
        """Show events the gate released and tables that waited long enough for late nodes,
        and flush the output (once per wake-up)."""
        self._show(self.combiner.due())
        if self.gate is not None:
            for ds_name, data in self.gate.release():
                ds = self._ds.get(ds_name)
                if ds is not None and (ds.predicate is None or ds.predicate(data)):
                    ds.formatter.events([data])
        for ds in self._ds.values():
            ds.formatter.flush()

    def _events(self, node: str, state: NodeState, name: str,
                events: Sequence[R.Event | R.RawEvent]) -> None:
        ds = self._ds.get(name)
        if ds is None:
            count = state.unannounced.get(name, 0)
            if not count:
                self.diag(f"node {node}: events of datasource {name!r} arrive without a schema;"
                          " skipping them")
            state.unannounced[name] = count + len(events)
            return
        state.events += len(events)
        nested = self.forward and state.hello is not None and state.hello.get("data") == "nested"
        if nested and ds.forward:
            if self.gate is None:
                self._forward(node, state, ds, events)
            else:
                self._forward_gated(node, state, ds, name, events, self.gate)
            return
        rows = [R.event_row(e, nested) for e in events]
        if self.gate is not None:
            admit = self.gate.admit
            rows = [d for d in rows if admit(name, d)]
        if ds.predicate is not None:
            rows = list(filter(ds.predicate, rows))
        if rows:
            ds.formatter.events(rows)

    def _forward(self, node: str, state: NodeState, ds: Datasource,
                 events: Sequence[R.Event | R.RawEvent]) -> None:
        texts: list[Any] = []
        for e in events:
            if not isinstance(e, R.RawEvent):  # read leniently (non-finite numbers): re-encoded
                texts.append(msgspec.json.encode(e.data))
            elif memoryview(e.data)[:1] == b"{":
                texts.append(e.data)
            else:
                state.events -= 1
                self._bad(node, state, "event data is not an object", bytes(e.data)[:80])
        if texts:
            ds.formatter.texts(texts)

    def _forward_gated(self, node: str, state: NodeState, ds: Datasource, name: str,
                       events: Sequence[R.Event | R.RawEvent], gate: Gate) -> None:
        """`_forward` behind the gate: an event of a target container whose pod the runner
        named is forwarded as it is; any other goes through `gate.admit` as a row."""
        texts: list[Any] = []
        shows, keys = gate.shows, _gate_keys.decode
        for e in events:
            if type(e) is R.RawEvent:
                try:
                    k = keys(e.data)
                except (msgspec.ValidationError, msgspec.DecodeError):
                    if memoryview(e.data)[:1] != b"{":
                        state.events -= 1
                        self._bad(node, state, "event data is not an object",
                                  bytes(e.data)[:80])
                        continue
                else:
                    if k.k8s.podName and shows(k.runtime.containerId):
                        texts.append(e.data)
                        continue
            row = R.event_row(e, True)
            if gate.admit(name, row):
                if texts:
                    ds.formatter.texts(texts)
                    texts = []
                ds.formatter.events([row])
        if texts:
            ds.formatter.texts(texts)

    def _record(self, node: str, state: NodeState, rec: R.Record | R.Bad) -> None:
        if state.error is not None and state.error.get("code") == "protocol":
            return  # a runner this client cannot read (see _check_protocol)
        if type(rec) is R.Bad:
            if rec.line.lstrip()[:1] == b"{":
                self._bad(node, state, rec.reason, rec.line)
            else:
                self._log_line(node, state, rec.line)
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
            state.events += len(rec.data)
            rows = rec.data
            if self.gate is not None:
                rows = [r for r in rows if self.gate.admit_row(r)]
            if ds.predicate is not None:
                rows = list(filter(ds.predicate, rows))
            self._show(self.combiner.add(rec.ds, node, rows))
        elif type(rec) is R.Schema:
            state.phase = "running the gadget"  # a schema comes once every program is attached
            if state.running_since is None:
                state.running_since = time.monotonic()
            self._schema(node, state, rec)
        elif type(rec) is R.Hello:
            if state.hello is not None:  # the first hello decides; another is a broken record
                self._bad(node, state, "a second hello record", b"")
                return
            state.hello = msgspec.to_builtins(rec)
            self._check_protocol(node, state, rec.protocol)
        elif type(rec) is R.Phase:
            state.phase = rec.phase
        elif type(rec) is R.End:
            state.end = msgspec.to_builtins(rec)
            self._show(self.combiner.node_ended(node))

    def _schema(self, node: str, state: NodeState, rec: R.Schema) -> None:
        fields: list[FieldSchema] = [msgspec.structs.asdict(f) for f in rec.fields]  # type: ignore[misc]
        try:
            self.prepare(rec.ds, fields, rec.kind, rec.annotations)
        except UsageError:
            raise  # the user's filter/fields do not fit this gadget: a usage error, as before
        except GadgetError as exc:
            self._bad(node, state, f"schema of datasource {rec.ds!r} rejected: {exc}", b"")
            return
        fmt = self._ds[rec.ds].formatter
        # A runner is tracing: show the column header now, so a quiet gadget shows it runs.
        if rec.kind == "stream" and isinstance(fmt, ColumnsFormatter) and not fmt.header_written:
            fmt.header()

    def _check_protocol(self, node: str, state: NodeState, major: int) -> None:
        """A runner of another major protocol version is refused: one line, its records are
        ignored, and the run stops when no node is left (`fatal`)."""
        if major == SUPPORTED_PROTOCOL:
            self.combiner.node_started(node)
            return
        message = (f"node {node}: the runner speaks protocol {major}, this client reads "
                   f"protocol {SUPPORTED_PROTOCOL}; use a kubectl-gadget and runner of one "
                   "release")
        state.error = {"type": "error", "code": "protocol", "message": message}
        state.end = {"type": "end", "reason": "error", "exit_code": 1}
        self._refused.add(node)
        self.combiner.running.discard(node)  # its tables wait for it no more
        self.diag(message)

    @property
    def fatal(self) -> bool:
        """Every node is a runner this client cannot read: the run should stop."""
        expected = self.combiner.running | self._refused
        return bool(self._refused) and expected <= self._refused

    def node_expected(self, node: str) -> None:
        """A node is starting: tables wait for its arrays."""
        self.combiner.node_started(node)

    def node_gone(self, node: str) -> None:
        """A node's stream ended (with or without an `end` record)."""
        self._show(self.combiner.node_ended(node))

    def finish(self) -> None:
        """The run is over: show the tables still waiting for nodes."""
        self._show(self.combiner.flush())
        self.out.flush()

    def _show(self, tables: list[Table]) -> None:
        for table in tables:
            ds = self._ds.get(table.ds)
            if ds is not None:
                self.view.show(table.ds, ds.formatter, ds.fields, ds.sort(table.rows),
                               len(table.nodes))

    def _bad(self, node: str, state: NodeState, reason: str, line: bytes) -> None:
        state.bad_lines += 1
        if state.bad_lines <= REPORTED_PER_NODE:
            shown = f": {printable(line[:80])}" if line else ""
            self.diag(f"node {node}: skipping a malformed record ({reason}){shown}")

    def _log_line(self, node: str, state: NodeState, line: bytes) -> None:
        """A line that is no JSON object is the runner's log (a pod's log carries its stderr
        between the records): shown as it is, not counted as a malformed record."""
        state.log_lines += 1
        if state.log_lines <= LOG_LINES_PER_NODE:
            text = printable(line.strip()[:300]).removeprefix("node-runner: ")
            self.diag(f"node {node}: {text}")
        elif state.log_lines == LOG_LINES_PER_NODE + 1:
            self.diag(f"node {node}: more runner log lines not shown")

    def _notice(self, rec: Mapping[str, Any], node: str) -> None:
        ds = next(iter(self._ds.values()), None)
        if ds is not None:
            ds.formatter.notice(rec, node)
        else:
            text = describe_record(rec, node)
            if text:
                self.diag(text)


def printable(raw: bytes) -> str:
    """Bytes from a runner as text for a terminal: UTF-8 (invalid bytes as U+FFFD), control
    characters as `\\xNN` so a line cannot move the cursor or change colours."""
    text = raw.decode("utf-8", "replace")
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)



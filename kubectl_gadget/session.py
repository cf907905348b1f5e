"""The client's orchestrator: gadget -> nodes -> merged stream -> pipeline -> exit code.

It wires the stages and owns the run's lifecycle: nodes are started only after every user
input was parsed and checked; Ctrl-C/SIGTERM asks every runner to stop and flush (their final
records are still shown), a second one kills them; every node is waited for and cleaned up in
all cases. The exit code follows one documented rule (README, "Exit codes"):
0 all nodes ended normally; 2 usage error; the runners' code (3-7) when every node failed with
the same one; 1 otherwise (partial failure, a client error).
"""

from __future__ import annotations

import gc
import logging
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import FrameType
from typing import Protocol

from kubectl_gadget.errors import crash_signal
from kubectl_gadget.operators import FieldSchema
from kubectl_gadget.operators.kubeip import with_owner_fields
from kubectl_gadget.pipeline import NodeState, Pipeline
from kubectl_gadget.streams import Merger
from node_runner.gadget.arrays import array_fields
from node_runner.gadget.spec import GadgetSpec

GRACE_AFTER_TIMEOUT = 15.0
# A runner's --timeout counts from when its gadget runs; the client's backstop counts from
# there too, or from this long after the start for a runner that never got that far.
STARTUP_ALLOWANCE = 60.0
START_CONCURRENCY = 16


def _map_threads(fn: Callable[[Node], tuple[int, str]],
                 nodes: Sequence[Node]) -> list[tuple[int, str]]:
    """fn over nodes, concurrently (waiting for and deleting N pods is N round trips)."""
    if len(nodes) <= 1:
        return [fn(n) for n in nodes]
    with ThreadPoolExecutor(max_workers=START_CONCURRENCY, thread_name_prefix="wait") as pool:
        return list(pool.map(fn, nodes))


class _Status(Protocol):
    def clear(self) -> None: ...
    def redraw(self) -> None: ...


class Node(Protocol):
    name: str

    def start(self) -> None: ...
    def chunks(self) -> Iterable[bytes]: ...
    def stop(self, graceful: bool = True) -> None: ...
    def wait(self, timeout: float = 10.0) -> tuple[int, str]: ...


def expected_schema(spec: GadgetSpec, cluster: bool) -> dict[str, list[FieldSchema]]:
    """The fields each datasource will announce, computed from the spec without running."""
    out: dict[str, list[FieldSchema]] = {}
    for ds in spec.datasources:
        if ds.schema is None:
            continue
        schema = ds.schema.with_enrichment(cluster)
        if ds.kind == "array":
            fields = array_fields(ds, list(schema.fields), cluster)
            out[ds.name] = [f.to_wire() for f in fields]  # type: ignore[misc]
        else:
            out[ds.name] = schema.wire_fields()  # type: ignore[assignment]
        if cluster:  # endpoints name the pod or service owning their address
            out[ds.name] = with_owner_fields(out[ds.name])
    return out


@dataclass
class _Signals:
    count: int = 0

    def handler(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1


class Session:
    def __init__(self, nodes: Sequence[Node], pipeline: Pipeline, *, timeout: float | None,
                 diag: Callable[[str], None]) -> None:
        self.nodes = list(nodes)
        self.pipeline = pipeline
        self.timeout = timeout
        self.diag = diag
        self.results: dict[str, tuple[int, str]] = {}
        self._lock = threading.Lock()
        self._merger = Merger()
        self._started: list[Node] = []
        self._closing = False
        self.status: _Status | None = None  # a terminal status line to keep out of the output

    def add_node(self, node: Node) -> None:
        """Start one more node while the session runs (thread-safe)."""
        with self._lock:
            if self._closing:
                return
            self.nodes.append(node)
        self._start(node)

    def _start(self, node: Node) -> None:
        self.pipeline.node_expected(node.name)
        node.start()
        with self._lock:
            self._started.append(node)
            self._merger.add(node.name, node.chunks)

    def run(self) -> int:
        sig = _Signals()
        previous = {}
        # Run from another thread (the Python API), the caller stops it (`pipeline.cancelled`)
        # and its process keeps its own signal handlers and collector settings.
        if threading.current_thread() is threading.main_thread():
            _quiet_gc()
            previous = {s: signal.signal(s, sig.handler) for s in (signal.SIGINT, signal.SIGTERM)}
        # Nodes start concurrently (one API round trip each on a cluster) and their output is
        # shown as soon as the first one streams.
        pool = ThreadPoolExecutor(max_workers=START_CONCURRENCY, thread_name_prefix="start")
        try:
            starts = [pool.submit(self._start, node) for node in list(self.nodes)]
            self._consume(self._merger, sig, starts)
            self.pipeline.finish()
        finally:
            with self._lock:
                self._closing = True
            pool.shutdown(wait=True)
            for node in self._started:
                node.stop(graceful=sig.count < 2)
            ended = _map_threads(lambda n: n.wait(), self._started)
            self.results.update({n.name: r for n, r in zip(self._started, ended, strict=True)})
            self._merger.join()
            for s, h in previous.items():
                signal.signal(s, h)
        return self._exit_code()

    def _deadline(self, started: float) -> float:
        """When runners that have not stopped at their timeout are stopped: the timeout plus a
        grace after the last runner began running its gadget (loading can take long on a
        loaded node; counting from the start stopped slow runners before they ran)."""
        assert self.timeout
        with self._lock:
            names = [n.name for n in self._started]
        states = [self.pipeline.nodes.get(name, NodeState()) for name in names]
        bases = [s.running_since if s.running_since is not None else started + STARTUP_ALLOWANCE
                 for s in states if s.end is None]  # (a runner that ended needs no stopping)
        return max(bases, default=float("inf")) + self.timeout + GRACE_AFTER_TIMEOUT

    def _consume(self, merger: Merger, sig: _Signals, starts: list[Future[None]]) -> None:
        started = time.monotonic()
        backstop = bool(self.timeout)
        handled = 0
        while merger.open_nodes or any(not f.done() for f in starts):
            for f in [f for f in starts if f.done()]:
                starts.remove(f)
                f.result()  # a node that could not even start (not root, ...) ends the run
            if sig.count != handled:
                handled = sig.count
                graceful = handled < 2
                self.diag("stopping runners (Ctrl-C again to abort)..." if graceful
                          else "aborting")
                for node in self.nodes:
                    node.stop(graceful)
                if not graceful:
                    return
            if backstop and time.monotonic() > self._deadline(started):
                self.diag("runners did not stop at the timeout; stopping them")
                for node in self.nodes:
                    node.stop(True)
                backstop = False
            if self.pipeline.cancelled and sig.count == 0:  # like one Ctrl-C, without words
                sig.count = handled = 1
                for node in self.nodes:
                    node.stop(True)
            if self.pipeline.fatal:
                for node in self.nodes:
                    node.stop(True)
                return
            batches = merger.get(0.2)
            if self.status is not None and batches:
                self.status.clear()
            for batch in batches:
                if batch.data:
                    self.pipeline.feed(batch.node, batch.data)
                if batch.error:
                    self.diag(f"node {batch.node}: output stream failed: {batch.error}")
                if batch.done:
                    self.pipeline.node_gone(batch.node)
            self.pipeline.flush()
            if self.status is not None and batches:
                self.status.redraw()

    def _exit_code(self) -> int:
        codes = []
        early = {n.name for n in self._started if getattr(n, "ended_before_start", False)}
        for name, (rc, tail) in self.results.items():
            state = self.pipeline.nodes.get(name, NodeState())
            if name in early and state.end is None:
                continue  # stopped before its runner was ready: nothing ran, nothing failed
            for problem in state.problems():
                self.diag(f"node {name}: {problem}")
            code = int(state.end.get("exit_code", rc)) if state.end else rc
            crash = crash_signal(code) if state.end is None else None
            if crash is not None:
                during = f" while {state.phase}" if state.phase else ""
                detail = f": {tail}" if tail else ""
                self.diag(f"node {name}: runner crashed: {crash}{during}{detail}")
                code = 1
            elif code != 0 and state.error is None:
                detail = f": {tail}" if tail else ""
                self.diag(f"node {name}: runner exited with code {code}{detail}")
            if state.end is None and code == 0:
                self.diag(f"node {name}: runner ended without an end record")
                code = 1
            codes.append(code)
        if not codes or all(c == 0 for c in codes):
            return 0
        if len(set(codes)) == 1 and 0 not in codes:
            return codes[0] if codes[0] in range(2, 8) else 1
        return 1


def _quiet_gc() -> None:
    """Records are acyclic and freed by reference counting; the cyclic collector, run every
    700 allocations by default, would rescan each batch's thousands of live objects many
    times over (a third of the client's CPU at 100k events/s). Collect rarely, and never
    rescan what was allocated before the run."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(200_000, 50, 1000)


_diag_lock = threading.Lock()
_diag_closed = False


def stderr_diag(message: str) -> None:
    """A message on stderr, from any thread; nothing once `close_diag` ran."""
    with _diag_lock:
        if not _diag_closed:
            print(message, file=sys.stderr, flush=True)


def close_diag() -> None:
    """At the process's exit: no thread writes to stderr any more (a message being written
    is finished first), and logging and Python warnings (urllib3's, from a watch thread) are
    off. A daemon thread still writing when the interpreter shuts down can hold stderr's
    buffer lock, and Python then aborts the process (SIGABRT) after the summary was printed."""
    global _diag_closed
    with _diag_lock:
        _diag_closed = True
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass

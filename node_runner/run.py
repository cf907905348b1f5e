"""The runner's orchestrator: one gadget, one node, from arguments to the `end` record.

It wires the stages (host preparation, spec, container table, loader, encoders, writer) and
runs the read loop; the stages do not know about each other. Reading is single-threaded: one
epoll over every datasource's ring buffer, batches decoded and written as they come, and a
one-second tick for lost-sample counts and container rescans. Stopping is cooperative: a signal,
the timeout or the deadline only set a reason; the loop then drains what the kernel already
holds, so the last records reach the client, and writes `end`. The trap avoided: exiting from
a signal handler (or on EPIPE) with records still in the ring buffer and no `end` record.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import BinaryIO

from node_runner import __version__, system, wasm
from node_runner import constants as C
from node_runner.array_fetch import ArrayFetcher
from node_runner.container_info import ContainerMetadata
from node_runner.containers import ContainerTable
from node_runner.decoder import DatasourceEncoder
from node_runner.enrich import Enricher
from node_runner.errors import GadgetInvalid, RunnerError, UsageError
from node_runner.formatters import FormatContext, boot_to_wall_ns
from node_runner.gadget.arrays import array_fields
from node_runner.gadget.errors import GadgetFormatError
from node_runner.gadget.nesting import nests_cleanly
from node_runner.gadget.schema import enrichment_schema
from node_runner.gadget.spec import GadgetSpec, check_params, load_spec
from node_runner.loader import LoadedGadget
from node_runner.protocol import (
    PROTOCOL_MINOR,
    PROTOCOL_VERSION,
    LineWriter,
    StdoutClosed,
    error_record,
    lost_record,
    phase_record,
    warning_record,
)
from node_runner.runtime_state import RuntimePaths
from node_runner.stacks import StackResolver
from node_runner.target_scope import target_mntns, unattributed_message

BATCH = 8192
# Seconds one wake-up may spend reading a buffer before the loop looks at its clocks and
# signals again; and the most the end of a run spends on what is left.
DRAIN_BUDGET = 0.1
FINAL_DRAIN_BUDGET = 1.0
TICK = 1.0
TABLE_REFRESH = 5.0


@dataclass(frozen=True)
class RunOptions:
    gadget: str  # a built gadget directory
    gadget_ref: str = ""
    gadget_digest: str = ""
    node: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    container_ids: tuple[str, ...] = ()
    container_names: tuple[str, ...] = ()
    mntns_ids: tuple[int, ...] = ()
    k8s_metadata: Mapping[str, ContainerMetadata] = field(default_factory=dict)
    cluster: bool = False
    # Also trace containers that appear after the start: those of these Kubernetes namespaces
    # (and those whose namespace the runtime state does not tell), or all with follow_all.
    follow_namespaces: tuple[str, ...] = ()
    follow_all: bool = False
    timeout: float | None = None
    deadline: float | None = None  # absolute Unix time
    proc_root: str = "/proc"
    runtime_paths: RuntimePaths = field(default_factory=RuntimePaths)
    host_root: str = ""  # where the host's / is mounted (runner pods): its /etc names uids
    prepare_host: bool = True
    verbose: bool = False
    # Array datasources: seconds between fetches (None: 1 s, and a snapshot-only gadget
    # fetches once), fetches before the run ends (0: until stopped).
    map_fetch_interval: float | None = None
    map_fetch_count: int = 0
    sampling_frequency: int | None = None  # Hz, perf_event programs (None: the gadget's)
    nested_data: bool = False  # event data nested as `-o json` prints it, when the gadget allows
    tc_attach: str = "auto"  # tc programs: tcx links where the kernel has them, else qdiscs


class _Stop:
    def __init__(self) -> None:
        self.reason = ""

    def handler(self, signum: int, frame: FrameType | None) -> None:
        if self.reason:  # second signal: give up draining
            raise KeyboardInterrupt
        self.reason = "signal"


@dataclass
class _Counters:
    events: int = 0
    lost: int = 0
    dropped: int = 0


def _host_etc(opts: RunOptions) -> str:
    """The node's own /etc (uid/gid names): through the host root, or in a runner pod (host
    pid namespace) through pid 1's root."""
    if opts.host_root:
        return os.path.join(opts.host_root, "etc")
    return os.path.join(opts.proc_root, "1", "root", "etc") if opts.cluster else "/etc"


def _encoders(spec: GadgetSpec, enricher: Enricher, opts: RunOptions,
              ) -> dict[str, DatasourceEncoder]:
    ctx = FormatContext(offset_ns=boot_to_wall_ns(), etc_dir=_host_etc(opts))
    extra = enrichment_schema(opts.cluster)
    out = {}
    for ds in spec.datasources:
        assert ds.schema is not None
        out[ds.name] = DatasourceEncoder(ds.schema, ds.record_size, context=ctx,
                                         enricher=enricher if ds.has_mntns else None,
                                         enrichment=extra, skip_pid=os.getpid(),
                                         row_only=ds.kind == "array", nested=enricher.nested)
    return out


def _schema(spec: GadgetSpec, enc: DatasourceEncoder, cluster: bool = False) -> dict[str, object]:
    ds = next(d for d in spec.datasources if d.name == enc.ds)
    record = enc.schema.to_wire()
    if ds.kind == "array":
        record["fields"] = [f.to_wire() for f in array_fields(ds, list(enc.fields), cluster)]
    return record


def _say(gadget: LoadedGadget) -> None:
    """The runtime's notices (which mechanism ran, leftovers removed) on stderr: the log."""
    for notice in gadget.take_notices():
        print(f"node-runner: {notice}", file=sys.stderr, flush=True)


class _Loop:
    def __init__(self, gadget: LoadedGadget, encoders: dict[str, DatasourceEncoder],
                 writer: LineWriter, stop: _Stop, opts: RunOptions, table: ContainerTable,
                 enricher: Enricher, targets: set[int] | None) -> None:
        self.g, self.encoders, self.writer, self.stop = gadget, encoders, writer, stop
        self.opts, self.table, self.enricher, self.targets = opts, table, enricher, targets
        self.counts = _Counters()
        self.dropped_reported = 0
        self.seen = {c.container_id for c in table.containers()}
        self.followed: set[int] = set()  # mount namespaces added by following
        self.arrays: ArrayFetcher | None = None
        start = time.monotonic()
        self.last_refresh = start
        self.end_at = start + opts.timeout if opts.timeout else None
        self.deadline_at = (start + max(0.0, opts.deadline - time.time())
                            if opts.deadline else None)

    def drain(self, ds: str, budget: float = DRAIN_BUDGET) -> bool:
        """Read what the buffer holds, for at most `budget` seconds; False when time ran out
        with records still coming: a storm faster than the runner must not keep it from its
        timeout, signals and ticks (lost counts, container refresh)."""
        reader, enc = self.g.readers[ds], self.encoders[ds]
        lines: list[str] = []

        def handle(buf: object, offsets: list[int], sizes: list[int]) -> None:
            self.counts.dropped += enc.encode_batch(buf, offsets, sizes, lines)

        until = time.monotonic() + budget
        while True:
            n = reader.read(handle, BATCH)
            self.writer.lines(lines)
            self.counts.events += len(lines)  # written: a second signal mid-write aborts it
            lines.clear()
            if n < BATCH:
                return True
            if time.monotonic() >= until:
                return False

    def fetch(self, final: bool = False) -> None:
        """One `array` record per array datasource (array_fetch.py)."""
        assert self.arrays is not None
        lines, rows, dropped = self.arrays.fetch(self.targets, final)
        self.counts.dropped += dropped
        self.writer.lines(lines)
        self.counts.events += rows

    def tick(self) -> None:
        self.g.maintain()
        _say(self.g)
        for ds, reader in self.g.readers.items():
            lost = reader.lost()
            if lost:
                self.counts.lost += lost
                self.writer.record(lost_record(ds, lost))
        if self.counts.dropped > self.dropped_reported:
            # Never silent: records read but not decodable are said when it happens, too.
            n = self.counts.dropped - self.dropped_reported
            self.dropped_reported = self.counts.dropped
            self.writer.record(warning_record(f"dropped {n} records that could not be decoded"))
        now = time.monotonic()
        if self.enricher.unknown_seen or now - self.last_refresh >= TABLE_REFRESH:
            # Mount namespace ids are reused once a container is gone: refresh regularly.
            self.table.refresh()
            self.enricher.invalidate()
            self.last_refresh = now
        if self.targets is not None and (self.opts.container_ids or self.opts.container_names
                                         or self._following):
            self.table.refresh()
            o = self.opts
            fresh = (target_mntns(self.table, o.container_ids, o.container_names, o.mntns_ids,
                                  o.cluster) or set()) | self._new_followed()
            # A followed container is gone and its namespace id, reused, is held by processes
            # of no container: they are not followed (their events would name no container).
            reused = (self.followed & self.table.non_container_mntns()) - fresh
            self.followed -= reused
            if reused or not fresh <= self.targets:
                self.targets -= reused
                self.targets |= fresh
                self.g.set_mntns_filter(self.targets)

    @property
    def _following(self) -> bool:
        return bool(self.opts.follow_all or self.opts.follow_namespaces)

    def _new_followed(self) -> set[int]:
        """Mount namespaces of containers that appeared since the start and are followed."""
        found: set[int] = set()
        if not self._following:
            return found
        for c in self.table.containers():
            if c.container_id in self.seen:
                continue
            self.seen.add(c.container_id)
            ns = c.k8s_namespace
            if self.opts.follow_all or not ns or ns in self.opts.follow_namespaces:
                found |= self.table.mntns_ids(c) or {c.mntns_id}
        self.followed |= found
        return found

    def run(self) -> str:
        outer = select.epoll()
        for reader in self.g.readers.values():
            outer.register(reader.fileno(), select.EPOLLIN)
        next_tick = time.monotonic() + TICK
        fetcher = self.arrays
        next_fetch = time.monotonic() + fetcher.first_delay if fetcher else float("inf")
        try:
            while True:
                now = time.monotonic()
                reason = self.stop.reason or (
                    "timeout" if self.end_at is not None and now >= self.end_at else
                    "deadline" if self.deadline_at is not None and now >= self.deadline_at
                    else "finished" if fetcher is not None and fetcher.done else "")
                if reason:
                    break
                outer.poll(max(0.0, min(0.2, next_tick - now, next_fetch - now)))
                for ds in self.g.readers:
                    self.drain(ds)
                if fetcher is not None and time.monotonic() >= next_fetch:
                    self.fetch()
                    next_fetch = max(next_fetch + fetcher.interval, time.monotonic())
                if time.monotonic() >= next_tick:
                    self.tick()
                    next_tick = time.monotonic() + TICK
            behind = [ds for ds in self.g.readers if not self.drain(ds, FINAL_DRAIN_BUDGET)]
            if behind:
                self.writer.record(warning_record(
                    f"stopped reading {', '.join(behind)} with records still arriving faster "
                    "than they could be read: the last of them are not shown"))
            self.tick()
            if reason != "finished" and fetcher is not None:
                self.fetch(final=True)
            return reason
        finally:
            outer.close()


def run(opts: RunOptions, out: BinaryIO | None = None) -> int:
    """Run one gadget until timeout/deadline/signal; return the process exit code."""
    writer = LineWriter(out or sys.stdout.buffer)
    stop = _Stop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop.handler)
    counts = _Counters()
    try:
        spec, spec_error = _read_spec(opts)
        nested = opts.nested_data and spec is not None and nestable(spec)
        writer.record({"type": "hello", "protocol": PROTOCOL_VERSION,
                       "protocol_minor": PROTOCOL_MINOR, "runner": __version__,
                       "node": opts.node, "boot_to_wall_ns": boot_to_wall_ns(),
                       "gadget": {"name": spec.name if spec else _gadget_name(opts.gadget),
                                  "ref": opts.gadget_ref or opts.gadget,
                                  "digest": opts.gadget_digest},
                       **({"data": "nested"} if nested else {})})
        if spec_error is not None:
            raise spec_error
        assert spec is not None
        reason, counts = _run(opts, spec, writer, stop, nested)
        writer.record(_end(reason, counts, 0))
        return 0
    except RunnerError as exc:
        return _fail(writer, exc, counts, opts)
    except GadgetFormatError as exc:
        return _fail(writer, GadgetInvalid(str(exc)), counts, opts)
    except StdoutClosed:
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: still an `error` and an `end`, never a bare traceback
        detail = "".join(traceback.format_exception(exc))
        return _fail(writer, RunnerError(f"internal error: {type(exc).__name__}: {exc}",
                                         detail=detail), counts, opts)


def nestable(spec: GadgetSpec) -> bool:
    """Whether --nested-data can be honored: only stream datasources, whose field names nest
    exactly as `-o json` prints them (gadget/nesting.py; the enrichment nests on its own)."""
    return all(ds.kind == "stream" and ds.schema is not None
               and nests_cleanly([f.name for f in ds.schema.fields])
               for ds in spec.datasources)


def _gadget_name(path: str) -> str:
    return os.path.basename(os.path.normpath(path))


def _read_spec(opts: RunOptions) -> tuple[GadgetSpec | None, RunnerError | None]:
    """The gadget's spec, or the error reading it (reported after `hello`)."""
    try:
        return load_spec(opts.gadget), None
    except GadgetFormatError as exc:
        return None, GadgetInvalid(f"reading gadget {_gadget_name(opts.gadget)}: {exc}")


def _run(opts: RunOptions, spec: GadgetSpec, writer: LineWriter,
         stop: _Stop, nested: bool = False) -> tuple[str, _Counters]:
    try:  # before anything is prepared or loaded: a typo costs nothing
        check_params(spec, opts.params)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if opts.prepare_host:
        system.prepare_host()
    table = ContainerTable(opts.proc_root, opts.runtime_paths, extra_metadata=opts.k8s_metadata)
    targets = target_mntns(table, opts.container_ids, opts.container_names, opts.mntns_ids,
                           opts.cluster)
    enricher = Enricher(table, opts.node, nested=nested)
    encoders = _encoders(spec, enricher, opts)
    with LoadedGadget(spec, opts.params, targets, opts.sampling_frequency,
                      opts.proc_root, on_phase=lambda p: writer.record(phase_record(p)),
                      tc_attach=opts.tc_attach) as gadget:
        _say(gadget)
        for enc in encoders.values():
            writer.record(_schema(spec, enc, opts.cluster))
        for warning in gadget.warnings:
            writer.record(warning_record(warning))
        if targets is None and table.unreadable():
            writer.record(warning_record(unattributed_message(sorted(table.unreadable()))))
        if wasm.has_module(spec.object_path):
            produced = {name: {f.name for f in enc.fields} for name, enc in encoders.items()}
            writer.record(warning_record(wasm.notice(spec.name, spec.metadata, produced)))
        loop = _Loop(gadget, encoders, writer, stop, opts, table, enricher, targets)
        if gadget.arrays:
            stacks = StackResolver(gadget.map_fd(C.KERNEL_STACK_MAP),
                                   gadget.map_fd(C.USER_STACK_MAP), opts.proc_root)
            loop.arrays = ArrayFetcher(spec, gadget.arrays, encoders, stacks, node=opts.node,
                                       cluster=opts.cluster, interval=opts.map_fetch_interval,
                                       count=opts.map_fetch_count)
        try:
            reason = loop.run()
        except KeyboardInterrupt:
            reason = "signal"
        return reason, loop.counts


def _end(reason: str, counts: _Counters, exit_code: int) -> dict[str, object]:
    return {"type": "end", "reason": reason, "events": counts.events, "lost": counts.lost,
            "dropped": counts.dropped, "exit_code": exit_code}


def _fail(writer: LineWriter, exc: RunnerError, counts: _Counters, opts: RunOptions) -> int:
    verbose = opts.verbose
    if not opts.cluster:  # in a pod, stderr joins the records in the log: the record says it
        print(f"node-runner: {exc.message}", file=sys.stderr)
        if verbose and exc.detail:
            print(exc.detail, file=sys.stderr)
    try:
        writer.record(error_record(exc.code, exc.message, exc.detail if verbose else ""))
        writer.record(_end("error", counts, exc.exit_code))
    except StdoutClosed:
        pass
    return exc.exit_code

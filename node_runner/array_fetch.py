"""When and how the run loop fetches array datasources, and the `array` lines a fetch gives.

One job: the fetch schedule of a run (first fetch at once for snapshots, after one interval
for tops; how many fetches before the run ends; a last one at the stop for datasources
annotated `ebpf.map.flush-on-stop`) and one fetch: read every reader, filter and encode the
rows (arrays.ArrayEncoder), name their stacks (stacks.StackResolver). The run loop owns the
clock and the writer; the decode plans are built by run.py and handed in.
"""

from __future__ import annotations

from collections.abc import Mapping

from node_runner.arrays import ArrayEncoder, IterReader, Reader, RowEncoder
from node_runner.gadget.spec import GadgetSpec
from node_runner.stacks import StackResolver

FLUSH_ON_STOP = "ebpf.map.flush-on-stop"  # datasource annotation: a last fetch at the stop


class ArrayFetcher:
    def __init__(self, spec: GadgetSpec, readers: Mapping[str, Reader],
                 encoders: Mapping[str, RowEncoder], stacks: StackResolver, *, node: str,
                 cluster: bool, interval: float | None, count: int) -> None:
        self.readers, self.stacks = readers, stacks
        self.encoders = {ds.name: ArrayEncoder(ds, encoders[ds.name], node, stacks.hook(ds),
                                               node_field=cluster and not ds.has_mntns)
                         for ds in spec.datasources if ds.kind == "array"}
        self.flush_on_stop = {ds.name for ds in spec.datasources
                              if ds.annotations.get(FLUSH_ON_STOP) == "true"}
        snapshots = (bool(readers) and all(isinstance(r, IterReader) for r in readers.values())
                     and all(ds.kind == "array" for ds in spec.datasources))
        # A snapshot-only gadget takes one snapshot unless an interval or a count is asked for.
        self.interval = interval or 1.0
        self.count = 1 if snapshots and interval is None and not count else count
        self.first_delay = 0.0 if snapshots else self.interval
        self.fetches = 0

    @property
    def done(self) -> bool:
        return bool(self.count) and self.fetches >= self.count

    def fetch(self, targets: set[int] | None, final: bool = False) -> tuple[list[str], int, int]:
        """One fetch: (`array` lines, rows written, rows dropped). `final`: the run stops;
        only the flush-on-stop datasources are read (no fetch at all when there are none)."""
        if final and not self.flush_on_stop:
            return [], 0, 0
        self.fetches += 1
        self.stacks.user.forget_processes()
        lines: list[str] = []
        rows = dropped = 0
        for ds, reader in self.readers.items():
            if final and ds not in self.flush_on_stop:
                continue
            line, lost = self.encoders[ds].encode(reader.fetch(), self.fetches, targets)
            lines.append(line)
            rows += self.encoders[ds].last_rows
            dropped += lost
        return lines, rows, dropped

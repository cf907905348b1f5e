"""Reader of a tracer whose map is a perf event array (kernels before 5.8, IG's fallback).

Same shape as the ring-buffer reader (`fileno`, `read`, `lost`, `close`), so the run loop
does not care which one a datasource has. libbpf's perf buffer does the per-CPU mapping; each
`read` consumes what is waiting and hands it over as one contiguous buffer with offsets.
Records lost by the kernel (a full per-CPU ring) are counted from its lost-sample reports,
plus the gadget's `<map>_lost_samples` counter when it has one. The trap avoided: a consume
that returns more samples than a batch takes; the rest wait for the next `read`, in order.
"""

from __future__ import annotations

import select

from node_runner.libbpf.perf import PerfBuffer
from node_runner.ringbuf import BatchHandler, LostSamples

PAGES_PER_CPU = 64


class PerfBufReader:
    def __init__(self, map_fd: int, lost_map_fd: int | None = None,
                 pages_per_cpu: int = PAGES_PER_CPU) -> None:
        self._pb = PerfBuffer(map_fd, pages_per_cpu)
        self._pending: list[bytes] = []
        self._lost_reported = 0
        self._counter = LostSamples(lost_map_fd) if lost_map_fd is not None else None
        self.records = 0

    def fileno(self) -> int:
        return self._pb.epoll_fd()

    def wait(self, timeout: float) -> bool:
        with select.epoll() as ep:
            ep.register(self.fileno(), select.EPOLLIN)
            return bool(ep.poll(timeout))

    def read(self, handler: BatchHandler, max_records: int = 8192) -> int:
        if not self._pending:
            self._pb.consume()
            self._pending, self._pb.samples = self._pb.samples, []
        batch, self._pending = self._pending[:max_records], self._pending[max_records:]
        if not batch:
            return 0
        offsets, sizes, pos = [], [], 0
        for sample in batch:
            offsets.append(pos)
            sizes.append(len(sample))
            pos += len(sample)
        handler(b"".join(batch), offsets, sizes)
        self.records += len(batch)
        return len(batch)

    def lost(self) -> int:
        delta, self._lost_reported = self._pb.lost - self._lost_reported, self._pb.lost
        return delta + (self._counter.delta() if self._counter is not None else 0)

    def close(self) -> None:
        self._pb.close()

"""Batch reader of a BPF ring buffer, mapped straight into this process.

libbpf's `ring_buffer__poll` calls back into Python once per record, which costs about 10 us
per event through ctypes and loses most of an open() storm. Here the ring buffer is mmap()ed
as the kernel lays it out (consumer page read-write; producer page plus the data area mapped
twice, read-only, so a record that wraps is still contiguous), and one `read` hands every
committed record of a batch to the caller as offsets into that mapping. The consumer position
is advanced only after the caller returns, so records are never overwritten while decoded.

The trap this avoids: advancing the consumer position before the data is copied, or tearing the
8-byte position with byte-wise writes; positions go through an 8-byte memoryview item.
"""

from __future__ import annotations

import mmap
import select
from collections.abc import Callable

from node_runner.libbpf.library import num_possible_cpus
from node_runner.libbpf.maps import map_lookup

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HEADER_SIZE = 8
PAGE_SIZE = mmap.PAGESIZE

# handler(buffer, record_offsets, record_sizes) -> None; offsets point past the 8-byte header.
BatchHandler = Callable[[mmap.mmap | bytes, list[int], list[int]], None]


class LostSamples:
    """A gadget's per-CPU `<map>_lost_samples` counter, read as a delta.

    The per-CPU counters are summed and compared with the previous sum instead of being
    zeroed, so an increment between the read and a write of zero cannot be lost.
    """

    def __init__(self, map_fd: int) -> None:
        self._fd = map_fd
        self._ncpus = num_possible_cpus()
        self._total = 0

    def delta(self) -> int:
        raw = map_lookup(self._fd, b"\0\0\0\0", 8 * self._ncpus)
        if raw is None:
            return 0
        total = sum(memoryview(raw).cast("Q"))
        delta, self._total = total - self._total, total
        return delta


class RingBufReader:
    """Reads one ring buffer map; `lost` reads (and zeroes) its `<map>_lost_samples` counter."""

    def __init__(self, map_fd: int, size: int, lost_map_fd: int | None = None) -> None:
        if size <= 0 or size & (size - 1):
            raise ValueError(f"ring buffer size {size} is not a power of two")
        self._size = size
        self._mask = size - 1
        self._lost = LostSamples(lost_map_fd) if lost_map_fd is not None else None
        self._consumer_map = mmap.mmap(map_fd, PAGE_SIZE, mmap.MAP_SHARED,
                                       mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._data = mmap.mmap(map_fd, PAGE_SIZE + 2 * size, mmap.MAP_SHARED,
                               mmap.PROT_READ, offset=PAGE_SIZE)
        self._consumer = memoryview(self._consumer_map).cast("Q")
        self._producer = memoryview(self._data).cast("Q")
        self._words = memoryview(self._data).cast("I")
        self._epoll = select.epoll()
        self._epoll.register(map_fd, select.EPOLLIN)
        self.records = 0

    def fileno(self) -> int:
        """An fd that polls readable when records are waiting (for an outer epoll)."""
        return self._epoll.fileno()

    def wait(self, timeout: float) -> bool:
        """Block until the kernel signals new data or `timeout` seconds pass."""
        return bool(self._epoll.poll(timeout))

    def available(self) -> bool:
        return self._consumer[0] < self._producer[0]

    def read(self, handler: BatchHandler, max_records: int = 8192) -> int:
        """Hand up to `max_records` committed records to `handler`; return how many."""
        cons = self._consumer[0]
        prod = self._producer[0]
        words, mask = self._words, self._mask
        offsets: list[int] = []
        sizes: list[int] = []
        pos = cons
        while pos < prod and len(offsets) < max_records:
            start = PAGE_SIZE + (pos & mask)
            length = words[start >> 2]
            if length & BUSY_BIT:
                break
            size = length & ~(BUSY_BIT | DISCARD_BIT)
            if not length & DISCARD_BIT:
                offsets.append(start + HEADER_SIZE)
                sizes.append(size)
            pos += (size + HEADER_SIZE + 7) & ~7
        if pos == cons:
            return 0
        try:
            if offsets:
                handler(self._data, offsets, sizes)
        finally:
            self._consumer[0] = pos
        self.records += len(offsets)
        return len(offsets)

    def lost(self) -> int:
        """Records lost since the previous call (0 when the gadget has no counter)."""
        return self._lost.delta() if self._lost is not None else 0

    def close(self) -> None:
        self._epoll.close()
        for view in (self._consumer, self._producer, self._words):
            view.release()
        self._consumer_map.close()
        self._data.close()

"""Perf events: libbpf's per-CPU perf buffers and CPU-clock sampling events.

The trap this avoids: the sample and lost callbacks are ctypes objects libbpf holds on to,
so the buffer keeps them alive for as long as libbpf may call them.
"""

from __future__ import annotations

import ctypes
import os

from node_runner.errors import NotSupported
from node_runner.libbpf.library import LibbpfCallError, check, check_ptr, lib

_c_void_p = ctypes.c_void_p
_c_int = ctypes.c_int
_c_uint32 = ctypes.c_uint32

# perf_buffer_sample_fn / perf_buffer_lost_fn
_SAMPLE_FN = ctypes.CFUNCTYPE(None, _c_void_p, _c_int, _c_void_p, _c_uint32)
_LOST_FN = ctypes.CFUNCTYPE(None, _c_void_p, _c_int, ctypes.c_uint64)


class PerfBuffer:
    """libbpf's perf buffer over a BPF_MAP_TYPE_PERF_EVENT_ARRAY (one ring per CPU).

    `consume` copies every waiting sample into `samples` and adds the kernel's lost-sample
    reports to `lost`; the caller takes both. One callback per sample: the price of kernels
    without ring buffers.
    """

    def __init__(self, map_fd: int, pages_per_cpu: int) -> None:
        self.samples: list[bytes] = []
        self.lost = 0
        self._on_sample = _SAMPLE_FN(self._sample)  # kept alive as long as libbpf holds them
        self._on_lost = _LOST_FN(self._lost)
        lib().take_log()
        self.ptr: int | None = check_ptr(
            lib().lib.perf_buffer__new(map_fd, pages_per_cpu, self._on_sample, self._on_lost,
                                       None, None), "opening the perf buffers")

    def _sample(self, ctx: int | None, cpu: int, data: int | None, size: int) -> None:
        self.samples.append(ctypes.string_at(data, size) if data else b"")

    def _lost(self, ctx: int | None, cpu: int, count: int) -> None:
        self.lost += count

    def epoll_fd(self) -> int:
        return check(lib().lib.perf_buffer__epoll_fd(self.ptr), "perf buffer epoll fd")

    def consume(self) -> None:
        check(lib().lib.perf_buffer__consume(self.ptr), "reading the perf buffers")

    def close(self) -> None:
        if self.ptr:
            lib().lib.perf_buffer__free(self.ptr)
            self.ptr = None


_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241}
PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_CPU_CLOCK = 0
_PERF_ATTR_SIZE = 128
_PERF_FLAG_FREQ = 1 << 10
_PERF_FLAG_FD_CLOEXEC = 8


def perf_event_open_sampling(cpu: int, frequency: int) -> int:
    """A CPU-clock sampling event on `cpu` at `frequency` Hz (all processes); its fd."""
    attr = ctypes.create_string_buffer(_PERF_ATTR_SIZE)
    ctypes.memmove(attr, (ctypes.c_uint32 * 2)(PERF_TYPE_SOFTWARE, _PERF_ATTR_SIZE), 8)
    # config (u64 @8), sample_freq (u64 @16), flags bitfield (u64 @40): freq
    ctypes.memmove(ctypes.addressof(attr) + 8,
                   (ctypes.c_uint64 * 2)(PERF_COUNT_SW_CPU_CLOCK, frequency), 16)
    ctypes.memmove(ctypes.addressof(attr) + 40, (ctypes.c_uint64 * 1)(_PERF_FLAG_FREQ), 8)
    nr = _PERF_EVENT_OPEN.get(os.uname().machine)
    if nr is None:
        raise NotSupported(f"perf events: unknown syscall number on {os.uname().machine}")
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(ctypes.c_long(nr), attr, _c_int(-1), _c_int(cpu), _c_int(-1),
                      ctypes.c_ulong(_PERF_FLAG_FD_CLOEXEC))
    if fd < 0:
        raise LibbpfCallError(f"opening a sampling perf event on CPU {cpu}", ctypes.get_errno())
    return int(fd)


def online_cpus(path: str = "/sys/devices/system/cpu/online") -> list[int]:
    """CPU numbers from a list like `0-3,6`."""
    with open(path, encoding="ascii") as fh:
        text = fh.read().strip()
    cpus: list[int] = []
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        cpus += range(int(lo), int(hi or lo) + 1)
    return cpus

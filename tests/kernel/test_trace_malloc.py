"""trace_malloc on this kernel: a process in a container calls libc's allocator through ctypes.

The workload, in its own mount namespace, takes one command per line on stdin (`malloc N`,
`free ADDR`, `calloc N S`, `realloc ADDR N`, `mmap N`, `munmap ADDR N`), makes that call into
the C library and prints the result with its pid and thread id. Sizes are random and odd, so
no other allocation of the process is taken for the test's. The gadget's records must show
the exact sizes, the address a call returned on the record of the call that gives it back,
and the right process; a neighbour container making the same calls must be filtered out.
"""

from __future__ import annotations

import json
import random
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.runner_proc import Record, RunnerProcess, python_argv
from tests.workloads import ContainerWorkload, run_in_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]

COMM = "kg_heap"
HEAP = """
import ctypes, json, os, sys, threading
open('/proc/self/comm', 'w').write(sys.argv[1])
libc = ctypes.CDLL(None)
vp, sz, i = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
for name, res, args in (('malloc', vp, [sz]), ('calloc', vp, [sz, sz]),
                        ('realloc', vp, [vp, sz]), ('free', None, [vp]),
                        ('mmap', vp, [vp, sz, i, i, i, ctypes.c_long]), ('munmap', i, [vp, sz])):
    getattr(libc, name).restype, getattr(libc, name).argtypes = res, args
calls = {
    'malloc': lambda n: libc.malloc(n),
    'calloc': lambda n, s: libc.calloc(n, s),
    'realloc': lambda p, n: libc.realloc(p or None, n),
    'free': lambda p: libc.free(p or None),
    'mmap': lambda n: libc.mmap(None, n, 3, 0x22, -1, 0),  # rw, private anonymous
    'munmap': lambda p, n: libc.munmap(p, n),
}
print(json.dumps({'pid': os.getpid()}), flush=True)
for line in sys.stdin:
    op, *args = line.split()
    ret = calls[op](*map(int, args))
    print(json.dumps({'ret': ret or 0, 'tid': threading.get_native_id()}), flush=True)
"""


class Heap:
    """The workload process: one libc call per `call`, its result read back."""

    def __init__(self, box: ContainerWorkload, comm: str) -> None:
        self.proc = box.popen([*python_argv(HEAP), comm], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
        self.pid = int(self._read()["pid"])
        self.tid = 0

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"the workload ended (exit {self.proc.poll()})"
        out: dict[str, Any] = json.loads(line)
        return out

    def call(self, op: str, *args: int) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{op} {' '.join(map(str, args))}\n".encode())
        self.proc.stdin.flush()
        out = self._read()
        self.tid = out["tid"]
        return int(out["ret"])

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(30) == 0


@contextmanager
def heaps(gadget: Path, *params: str
          ) -> Iterator[tuple[RunnerProcess, Heap, Heap, ContainerWorkload]]:
    """A runner filtered to one container, a workload in it and one in a neighbour container."""
    with ExitStack() as stack:
        box = stack.enter_context(run_in_container(["sleep", "1000"]))
        other = stack.enter_context(run_in_container(["sleep", "1000"]))
        args = [a for p in params for a in ("--param", p)]
        runner = stack.enter_context(RunnerProcess(gadget, "--mntns", str(box.mntns_id),
                                                   "--timeout", "300", *args))
        runner.wait_schema()
        heap, neighbour = Heap(box, COMM), Heap(other, COMM)
        yield runner, heap, neighbour, box
        heap.close()
        neighbour.close()
        assert runner.stop() == 0, runner.stderr()


@pytest.fixture(scope="module")
def gadget(built_gadgets: dict[str, Path]) -> Path:
    return built_gadgets["trace_malloc"]


def _sizes(count: int) -> list[int]:
    """Odd sizes between 200 KB and 900 KB, all different (glibc serves them with mmap)."""
    return [2 * n + 1 for n in random.sample(range(100_000, 450_000), count)]


def _one(runner: RunnerProcess, what: str, **want: Any) -> Record:
    def match(d: Record) -> bool:
        return all(d[k] == v for k, v in want.items())
    runner.wait_event(match, what=what)
    hits = runner.events(match)
    assert len(hits) == 1, (what, hits)
    return hits[0]


def test_allocations_and_frees_with_sizes_addresses_and_process(gadget: Path) -> None:
    m_size, c_size, r_size, n_size = _sizes(4)
    with heaps(gadget) as (runner, heap, neighbour, box):
        # The neighbour first: were it not filtered, its records would come before the target's.
        neighbour.call("free", neighbour.call("malloc", n_size))
        # Every block stays allocated until the frees at the end, so no address is reused.
        block = heap.call("malloc", m_size)
        zeroed = heap.call("calloc", 3, c_size)
        moved = heap.call("realloc", zeroed, r_size)
        heap.call("free", moved)
        heap.call("free", block)
        assert 0 not in (block, zeroed, moved)
        malloc = _one(runner, "the malloc", operation="malloc", size=m_size)
        free = _one(runner, "the free of the malloc'd block", operation="free", addr=block)
        calloc = _one(runner, "the calloc", operation="calloc", size=3 * c_size)
        realloc = _one(runner, "the realloc", operation="realloc", size=r_size)
        free2 = _one(runner, "the free of the realloc'd block", operation="free", addr=moved)
        events = runner.events()
    assert malloc["addr"] == block and free["size"] == 0
    assert calloc["addr"] == zeroed and calloc["prev_addr"] == 0
    assert (realloc["addr"], realloc["prev_addr"]) == (moved, zeroed)
    for ev in (malloc, free, calloc, realloc, free2):
        assert (ev["proc.pid"], ev["proc.tid"], ev["proc.comm"]) == (heap.pid, heap.tid, COMM)
        assert ev["proc.mntns_id"] == box.mntns_id
        assert ev["runtime.containerId"] == box.container_id
    assert malloc["timestamp_raw"] < calloc["timestamp_raw"] < realloc["timestamp_raw"] \
        < free2["timestamp_raw"] < free["timestamp_raw"]
    # Only the target container's calls: no record of the neighbour's process or its size.
    assert {e["proc.mntns_id"] for e in events} == {box.mntns_id}
    assert not [e for e in events if e["proc.pid"] == neighbour.pid or e["size"] == n_size]
    # The operation's number goes with its name.
    ops = ["malloc", "free", "calloc", "realloc", "mmap", "munmap"]
    assert all(ops[e["operation_raw"]] == e["operation"] for e in events)


def test_mmap_and_munmap(gadget: Path) -> None:
    (length,) = _sizes(1)
    with heaps(gadget) as (runner, heap, _neighbour, _box):
        addr = heap.call("mmap", length)
        assert heap.call("munmap", addr, length) == 0
        mmap = _one(runner, "the mmap", operation="mmap", size=length)
        munmap = _one(runner, "the munmap", operation="munmap", addr=addr)
    assert mmap["addr"] == addr and munmap["size"] == length
    assert mmap["proc.pid"] == munmap["proc.pid"] == heap.pid


def test_free_of_null_is_recorded_only_on_request(gadget: Path) -> None:
    (size,) = _sizes(1)
    with heaps(gadget) as (runner, heap, _neighbour, _box):
        heap.call("free", 0)
        heap.call("malloc", size)  # a marker: once it is seen, the free(NULL) would be too
        _one(runner, "the marker malloc", operation="malloc", size=size)
        assert not runner.events(lambda d: d["operation"] == "free" and d["addr"] == 0)
    with heaps(gadget, "null-frees=true") as (runner, heap, _neighbour, _box):
        heap.call("free", 0)
        runner.wait_event(lambda d: d["operation"] == "free" and d["addr"] == 0 and
                          d["proc.pid"] == heap.pid, what="the free(NULL)")

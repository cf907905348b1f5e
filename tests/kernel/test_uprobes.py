"""Uprobes on a library named the short way (`uprobe/libc:malloc`), resolved per target.

The workload runs in its own mount namespace and, on each line of stdin, allocates a block of
a size no other process is likely to ask for, through libc's malloc (ctypes would be simpler
but Python's own bytearray of that size goes to malloc too), then prints the size.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import TEST_GADGETS_SRC, needs_root_btf, needs_unshare
from tests.kernel.runner_proc import RunnerProcess
from tests.workloads import run_in_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]

ALLOCATOR = """
import sys
open('/proc/self/comm', 'w').write('kg_malloc')
keep = []
for line in sys.stdin:
    size = int(line)
    keep.append(bytearray(size))
    print(size, flush=True)
"""
SIZE = 7_654_321


def test_uprobe_on_libc_malloc_of_a_target_container(
        build_gadget: Callable[[Path], Path]) -> None:
    gadget = build_gadget(TEST_GADGETS_SRC / "uprobe_malloc")
    argv = [sys.executable, "-I", "-S", "-c", ALLOCATOR]
    with run_in_container(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as box, \
            RunnerProcess(gadget, "--mntns", str(box.mntns_id), "--param",
                          f"min-size={SIZE}", "--timeout", "60") as runner:
        proc = box.process
        assert proc.stdin is not None and proc.stdout is not None
        runner.wait_schema()
        proc.stdin.write(f"{SIZE}\n".encode())
        proc.stdin.flush()
        assert int(proc.stdout.readline()) == SIZE
        enter = runner.wait_event(lambda d: d["size"] >= SIZE and not d["is_return"],
                                  what="the malloc call")
        exit_ = runner.wait_event(lambda d: d["size"] >= SIZE and d["is_return"] == 1,
                                  what="the malloc return")
        runner.stop()
        events = runner.events()
    assert (enter["pid"], enter["comm"], enter["mntns_id"]) == (box.pid, "kg_malloc",
                                                                box.mntns_id)
    assert exit_["pid"] == box.pid and exit_["ret"] != 0
    # The container filter keeps every other process out, though the probe is on a shared file.
    assert {e["mntns_id"] for e in events} == {box.mntns_id}
    assert all(e["size"] >= SIZE for e in events)  # the param reached the program
    assert runner.end()["reason"] == "signal"

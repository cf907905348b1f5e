"""A tracer on a perf event array, written through a map-in-map (array of perf buffers).

The gadget's inner map template leaves max_entries unset (libbpf alone fails with "failed to
create inner map: -22"). Each getsid() writes `burst` records of 4 KiB: 100 of them overflow
the 256 KiB per-CPU buffer, so some must come back as `lost` (the kernel reports a loss with
the next record it can store: hence a second call), none silently.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import TEST_GADGETS_SRC, needs_root_btf
from tests.kernel.runner_proc import RunnerProcess, wait_exit

pytestmark = [pytest.mark.kernel, needs_root_btf]

# Pinned to one CPU: the kernel reports a loss with the next record of the same CPU's ring.
CALLER = """
import os, sys
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
for line in sys.stdin:
    os.getsid(0)
    print('done', flush=True)
"""


def test_perf_array_tracer_delivers_records_and_counts_losses(
        build_gadget: Callable[[Path], Path]) -> None:
    gadget = build_gadget(TEST_GADGETS_SRC / "perf_array")
    caller = subprocess.Popen([sys.executable, "-I", "-S", "-c", CALLER],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert caller.stdin is not None and caller.stdout is not None
    try:
        with RunnerProcess(gadget, "--param", "burst=100", "--timeout", "60") as runner:
            runner.wait_schema()
            for call in range(2):
                caller.stdin.write(b"go\n")
                caller.stdin.flush()
                assert caller.stdout.readline() == b"done\n"
                runner.wait_event(lambda d, n=call: d["pid"] == caller.pid and d["seq"] == 0
                                  and len([e for e in runner.events()
                                           if e["pid"] == caller.pid]) > 32 * (n + 1),
                                  what=f"records of call {call + 1}")
            runner.wait_for(lambda r: r.get("type") == "lost", what="a lost record")
            runner.stop()
            end = runner.end()
            events = [e for e in runner.events() if e["pid"] == caller.pid]
            lost = sum(r["count"] for r in runner.of_type("lost"))
    finally:
        caller.stdin.close()
        wait_exit(caller)
        caller.stdout.close()
    assert all(e["burst"] == 100 and len(e["comm"]) > 0 for e in events)
    assert {e["seq"] for e in events} >= {0, 1, 2}  # records in order from the first
    assert 64 <= len(events) < 200
    assert lost >= 100 - len(events) // 2 and len(events) + lost <= 200
    assert end["lost"] == lost and end["dropped"] == 0

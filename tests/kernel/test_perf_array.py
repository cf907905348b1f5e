"""A tracer on a perf event array, written through a map-in-map (array of perf buffers).

The gadget's inner map template leaves max_entries unset (libbpf alone fails with "failed to
create inner map: -22"). Each getsid() writes `burst` records of 4 KiB: 256 of them overflow
the 256 KiB per-CPU buffer, so some must come back as `lost` (the kernel reports a loss with
the next record it can store: hence more than one call), none silently.
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


BURST = 256


def test_perf_array_tracer_delivers_records_and_counts_losses(
        build_gadget: Callable[[Path], Path]) -> None:
    gadget = build_gadget(TEST_GADGETS_SRC / "perf_array")
    caller = subprocess.Popen([sys.executable, "-I", "-S", "-c", CALLER],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert caller.stdin is not None and caller.stdout is not None
    calls = 0
    try:
        with RunnerProcess(gadget, "--param", f"burst={BURST}", "--timeout", "60") as runner:
            runner.wait_schema()
            # 1 MiB per call into a 256 KiB ring: losses come (unless the reader keeps pace
            # for a whole burst), and each call reports the losses of the one before it.
            while calls < 6 and not runner.of_type("lost"):
                caller.stdin.write(b"go\n")
                caller.stdin.flush()
                assert caller.stdout.readline() == b"done\n"
                calls += 1
                runner.wait_event(lambda d, n=calls: d["pid"] == caller.pid
                                  and len([e for e in runner.events()
                                           if e["pid"] == caller.pid]) >= 64 * n,
                                  what=f"records of call {calls}")
                try:
                    runner.wait_for(lambda r: r.get("type") == "lost", timeout=2.5)
                except AssertionError:
                    pass
            runner.stop()
            end = runner.end()
            events = [e for e in runner.events() if e["pid"] == caller.pid]
            lost = sum(r["count"] for r in runner.of_type("lost"))
    finally:
        caller.stdin.close()
        wait_exit(caller)
        caller.stdout.close()
    assert lost > 0, f"no loss reported after {calls} bursts of {BURST}"
    assert all(e["burst"] == BURST and len(e["comm"]) > 0 for e in events)
    assert {e["seq"] for e in events} >= {0, 1, 2}  # records in order from the first
    # Nothing vanishes silently: every record is an event or counted lost, except the losses
    # of the last call, which the kernel reports with the next record it stores.
    assert (calls - 1) * BURST <= len(events) + lost <= calls * BURST
    assert end["lost"] == lost and end["dropped"] == 0

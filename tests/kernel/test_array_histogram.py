"""Histograms: a field of `gadget_histogram_slot__u32` slots counts values in log2 buckets.

tests/data/gadgets/hist_sleep builds a histogram of clock_nanosleep(2) durations in
microseconds per mount namespace. A workload in its own mount namespace sleeps 9 ms three
times and 70 ms twice: 9 ms (9000 us) falls in slot 13 (8192..16383 us) and 70 ms in slot 16
(65536..131071 us), and nothing else may be counted for it. The lengths sit low in their slots,
so a loaded machine's wake-up delay (up to 7 ms, 60 ms) keeps them there.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import TEST_GADGETS_SRC, needs_root_btf, needs_unshare
from tests.kernel.runner_proc import RunnerProcess, python_argv
from tests.workloads import run_in_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]

WORKLOAD = (
    "import sys, time\n"
    "print('ready', flush=True)\n"
    "sys.stdin.readline()\n"
    "took = []\n"
    "for s in SLEEPS:\n"
    "    t0 = time.monotonic(); time.sleep(s); took.append(time.monotonic() - t0)\n"
    "print(' '.join(str(int(t * 1e6)) for t in took), flush=True)\n"
)
SLEEPS = (0.009, 0.009, 0.009, 0.07, 0.07)


def test_sleep_latencies_land_in_their_log2_slots(build_gadget) -> None:  # type: ignore[no-untyped-def]
    gadget = build_gadget(TEST_GADGETS_SRC / "hist_sleep")
    with run_in_container(python_argv(f"SLEEPS = {SLEEPS!r}\n" + WORKLOAD), stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE) as w:
        assert w.process.stdin is not None and w.process.stdout is not None
        assert w.process.stdout.readline() == b"ready\n"
        with RunnerProcess(gadget, "--mntns", str(w.mntns_id),
                           "--map-fetch-interval", "0.5") as runner:
            schema = runner.wait_schema()
            w.process.stdin.write(b"go\n")
            w.process.stdin.flush()
            took = [int(us) for us in w.process.stdout.readline().split()]
            last = max([a["fetch"] for a in runner.of_type("array")], default=0)
            runner.wait_for(lambda r: r.get("type") == "array" and r["fetch"] > last + 1,
                            what="a fetch after the sleeps")
            assert runner.stop() == 0, runner.stderr()

    usecs = next(f for f in schema["fields"] if f["name"] == "usecs")
    assert (usecs["type"], usecs["tags"][0]) == ("array", "type:gadget_histogram_slot__u32")
    total = [0] * 27
    for rec in runner.of_type("array"):
        for row in rec["data"]:
            assert row["mntns_id"] == w.mntns_id
            total = [a + b for a, b in zip(total, row["usecs"], strict=True)]
    # The kernel sees each sleep last at least what was asked and at most what the workload
    # measured around it; on an idle machine both give the same slot (13: 8192..16383 us for
    # 9 ms, 16: 65536..131071 us for 70 ms), on a loaded one the wake-up delay may move it up.
    candidates = [{_slot(int(s * 1e6)), _slot(us)} for s, us in zip(SLEEPS, took, strict=True)]
    assert sum(total) == len(SLEEPS), total
    assert {i for i, c in enumerate(total) if c} <= set().union(*candidates), (total, took)
    for slot in range(27):
        sure = sum(1 for c in candidates if c == {slot})
        assert total[slot] >= sure, (total, took)
    if all(len(c) == 1 for c in candidates):
        assert total[13] == 3 and total[16] == 2, (total, took)


def _slot(us: int) -> int:
    return max(us, 1).bit_length() - 1

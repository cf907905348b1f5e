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
    "for s in (0.009, 0.009, 0.009, 0.07, 0.07):\n"
    "    time.sleep(s)\n"
    "print('done', flush=True)\n"
)


def test_sleep_latencies_land_in_their_log2_slots(build_gadget) -> None:  # type: ignore[no-untyped-def]
    gadget = build_gadget(TEST_GADGETS_SRC / "hist_sleep")
    with run_in_container(python_argv(WORKLOAD), stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE) as w:
        assert w.process.stdin is not None and w.process.stdout is not None
        assert w.process.stdout.readline() == b"ready\n"
        with RunnerProcess(gadget, "--mntns", str(w.mntns_id),
                           "--map-fetch-interval", "0.5") as runner:
            schema = runner.wait_schema()
            w.process.stdin.write(b"go\n")
            w.process.stdin.flush()
            assert w.process.stdout.readline() == b"done\n"
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
    expected = [0] * 27
    expected[13], expected[16] = 3, 2
    assert total == expected, total

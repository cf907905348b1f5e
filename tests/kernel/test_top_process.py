"""top_process on this kernel: a process in its own mount namespace burns CPU for a known
time; the intervals' cpu_time adds up to what the process measured itself, and a neighbour
container's busy process is not shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.runner_proc import RunnerProcess, python_argv, wait_exit
from tests.workloads import ContainerWorkload, sleeping_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]

# Spin until 0.6 s of CPU time are used, then print the CPU time used (user + system, ns).
BURN = ("import os\n"
        "t = os.times()\n"
        "while os.times().user + os.times().system - t.user - t.system < 0.6:\n"
        "    pass\n"
        "t = os.times()\n"
        "print(int((t.user + t.system) * 1e9), flush=True)\n")


def _burn(w: ContainerWorkload) -> tuple[int, int]:
    """(pid, CPU nanoseconds it reports) of a burner run to its end in `w`."""
    proc = w.popen(python_argv(BURN), stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=30)
    assert wait_exit(proc) == 0
    return proc.pid, int(out)


def test_cpu_time_adds_up_and_the_filter_holds(built_gadgets: dict[str, Path]) -> None:
    gadget = built_gadgets["top_process"]
    with sleeping_container() as w, sleeping_container() as neighbour:
        with RunnerProcess(gadget, "--mntns", str(w.mntns_id),
                           "--map-fetch-interval", "0.3") as runner:
            runner.wait_for(lambda r: r.get("type") == "array", 30, "a first interval")
            noisy, _ = _burn(neighbour)
            pid, used = _burn(w)
            # The burner has exited: its last stretch was charged at exit; the next fetch
            # after this one holds it.
            done = max(a["fetch"] for a in runner.of_type("array"))
            runner.wait_for(lambda r: r.get("type") == "array" and r["fetch"] > done + 1,
                            15, "two intervals after the burner ended")
            assert runner.stop() == 0, runner.stderr()
    assert (runner.end()["reason"], runner.end()["exit_code"]) == ("signal", 0)

    # Time is charged at context switches and at exit, so an interval in which the burner
    # kept its CPU has no row; the rows together hold all of its time.
    rows = [d for a in runner.of_type("array") for d in a["data"] if d["proc.pid"] == pid]
    assert rows, "the burner has rows"
    total = sum(d["cpu_time"] for d in rows)
    assert 0.8 * used < total < 1.3 * used + 0.1e9, (total, used)
    # Time is charged at context switches: on an idle CPU a spinning process may not be
    # switched out for longer than an interval, so one row can hold more than 0.3 s; but no
    # row holds more than the process used in all (per-CPU values are not counted twice).
    assert max(d["cpu_time"] for d in rows) <= 1.1 * used + 0.05e9, (rows, used)
    # Its first moments in the container are nsenter's (the same process, before it execs the
    # burner): a loaded machine may switch it out then, charging a row named nsenter.
    comms = [d["proc.comm"] for d in rows]
    assert Path(sys.executable).name[:15] in comms, rows
    assert set(comms) <= {Path(sys.executable).name[:15], "nsenter"}, rows
    assert all(d["proc.mntns_id"] == w.mntns_id and d["threads"] == 1 for d in rows)
    assert all(d["rss_pages"] > 0 and d["vm_pages"] >= d["rss_pages"] for d in rows)
    assert rows[0]["runtime.containerId"] == w.container_id
    seen = {d["proc.pid"] for a in runner.of_type("array") for d in a["data"]}
    assert noisy not in seen
    assert {d["proc.mntns_id"] for a in runner.of_type("array") for d in a["data"]} == {
        w.mntns_id}

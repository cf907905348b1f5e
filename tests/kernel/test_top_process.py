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
            def has_pid(r: dict[str, object], want: bool) -> bool:
                rows = r["data"] if r.get("type") == "array" else None
                return isinstance(rows, list) and any(d["proc.pid"] == pid for d in rows) is want

            first = runner.wait_for(lambda r: has_pid(r, True), 15, "the burner's first row")
            last = runner.wait_for(lambda r: r["fetch"] > first["fetch"] and has_pid(r, False)
                                   if r.get("type") == "array" else False,
                                   15, "an interval after the burner ended")
            assert runner.stop() == 0, runner.stderr()
    assert (runner.end()["reason"], runner.end()["exit_code"]) == ("signal", 0)

    rows = [d for a in runner.of_type("array") if a["fetch"] < last["fetch"]
            for d in a["data"] if d["proc.pid"] == pid]
    assert len(rows) >= 2, "0.6 s of CPU spans several 0.3 s intervals"
    total = sum(d["cpu_time"] for d in rows)
    assert 0.8 * used < total < 1.3 * used + 0.1e9, (total, used)
    assert max(d["cpu_time"] for d in rows) <= 0.3e9 * 1.5  # one CPU at most per interval
    assert all(d["proc.comm"] == Path(sys.executable).name[:15] for d in rows)
    assert all(d["proc.mntns_id"] == w.mntns_id and d["threads"] == 1 for d in rows)
    assert all(d["rss_pages"] > 0 and d["vm_pages"] >= d["rss_pages"] for d in rows)
    assert rows[0]["runtime.containerId"] == w.container_id
    seen = {d["proc.pid"] for a in runner.of_type("array") for d in a["data"]}
    assert noisy not in seen
    assert {d["proc.mntns_id"] for a in runner.of_type("array") for d in a["data"]} == {
        w.mntns_id}

"""advise_seccomp on this kernel: a process in its own mount namespace makes distinctive
syscalls (getpriority, sched_getaffinity) and they show in its container's rows; a neighbour
container's flock shows in the neighbour's rows only, and a container filter keeps the
neighbour out in the kernel. One runner fetches every interval, one only when it stops."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.runner_proc import Record, RunnerProcess, python_argv, wait_exit
from tests.workloads import ContainerWorkload, sleeping_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]

TARGET = ("import os\n"
          "os.getpriority(os.PRIO_PROCESS, 0)\n"
          "os.sched_getaffinity(0)\n"
          "os.write(1, b'done')\n")
NEIGHBOUR = ("import fcntl, os, sys\n"
             "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
             "fcntl.flock(fd, fcntl.LOCK_EX)\n"
             "fcntl.flock(fd, fcntl.LOCK_UN)\n"
             "os.write(1, b'done')\n")
MINE = {"SYS_GETPRIORITY", "SYS_SCHED_GETAFFINITY"}


def _run(w: ContainerWorkload, code: str, *args: str) -> None:
    proc = w.popen([*python_argv(code), *args], stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=60)
    assert wait_exit(proc) == 0 and out == b"done"


def _rows(runner: RunnerProcess) -> list[Record]:
    return [d for a in runner.of_type("array") for d in a["data"]]


def _names(rows: list[Record], mntns: int) -> set[str]:
    return {d["syscall"] for d in rows if d["mntns_id"] == mntns}


def test_syscalls_per_container(built_gadgets: dict[str, Path], tmp_path: Path) -> None:
    gadget = built_gadgets["advise_seccomp"]
    with sleeping_container() as w, sleeping_container() as neighbour:
        with RunnerProcess(gadget, "--container-id", w.container_id,
                           "--map-fetch-interval", "0.3") as runner, \
                RunnerProcess(gadget, "--map-fetch-interval", "3600") as whole:
            runner.wait_for(lambda r: r.get("type") == "array", 60, "a first interval")
            whole.wait_schema()
            _run(neighbour, NEIGHBOUR, str(tmp_path / "lock"))
            _run(w, TARGET)
            calls: set[str] = set()

            def all_mine(r: Record) -> bool:  # the two calls may fall in two intervals
                if r.get("type") == "array":
                    calls.update(d["syscall"] for d in r["data"])
                return MINE <= calls

            runner.wait_for(all_mine, 60, "the target's syscalls")
            # Two more intervals: anything else of the run is in too.
            fetch = runner.of_type("array")[-1]["fetch"]
            runner.wait_for(lambda r: r.get("type") == "array" and r["fetch"] >= fetch + 2,
                            60, "two more intervals")
            assert not _rows(whole), "a fetch before the stop"
            assert runner.stop() == 0 and whole.stop() == 0, runner.stderr() + whole.stderr()

    rows = _rows(runner)
    assert {d["mntns_id"] for d in rows} == {w.mntns_id}
    assert {d["runtime.containerId"] for d in rows} == {w.container_id}
    assert MINE <= _names(rows, w.mntns_id)
    assert "SYS_FLOCK" not in _names(rows, w.mntns_id)
    assert all(d["calls"] >= 1 for d in rows)
    # Without a filter, the one fetch at the stop holds the whole run, every container.
    assert len(whole.of_type("array")) == 1
    everything = _rows(whole)
    assert MINE <= _names(everything, w.mntns_id)
    assert "SYS_FLOCK" not in _names(everything, w.mntns_id)
    assert "SYS_FLOCK" in _names(everything, neighbour.mntns_id)
    assert not MINE & _names(everything, neighbour.mntns_id)
    pairs = [(d["mntns_id"], d["syscall_raw"]) for d in everything]
    assert len(pairs) == len(set(pairs))

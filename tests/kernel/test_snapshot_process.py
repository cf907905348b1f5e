"""snapshot_process on this kernel: a container's processes and threads, listed once by a task
iterator, and nothing of a neighbour container."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.runner_proc import Record, RunnerProcess, python_argv
from tests.workloads import sleeping_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]

# A process with a second thread that waits until stdin closes.
THREADED = ("import sys, threading\n"
            "t = threading.Thread(target=sys.stdin.read); t.start()\n"
            "print('ready', flush=True); t.join()\n")


def _snapshot(gadget: Path, *args: str) -> list[Record]:
    with RunnerProcess(gadget, *args) as runner:
        assert runner.wait(60) == 0, runner.stderr()
    end = runner.end()
    assert (end["reason"], end["exit_code"]) == ("finished", 0)
    (array,) = runner.of_type("array")
    assert (array["ds"], array["fetch"]) == ("processes", 1)
    return array["data"]  # type: ignore[no-any-return]


def test_a_containers_processes_and_threads(built_gadgets: dict[str, Path]) -> None:
    gadget = built_gadgets["snapshot_process"]
    with sleeping_container() as w, sleeping_container() as neighbour:
        threaded = w.popen(python_argv(THREADED), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert threaded.stdout is not None and threaded.stdout.readline() == b"ready\n"
        rows = _snapshot(gadget, "--container-id", w.container_id)
        thread_rows = _snapshot(gadget, "--mntns", str(w.mntns_id), "--param", "threads=true")
        everything = _snapshot(gadget)
        assert threaded.stdin is not None
        threaded.stdin.close()
        threaded.wait(10)

    assert sorted((r["proc.pid"], r["proc.comm"]) for r in rows) == sorted(
        [(w.pid, "sleep"), (threaded.pid, Path(sys.executable).name[:15])])
    sleeper = next(r for r in rows if r["proc.pid"] == w.pid)
    assert (sleeper["proc.tid"], sleeper["proc.parent.pid"]) == (w.pid, os.getpid())
    assert (sleeper["proc.mntns_id"], sleeper["proc.creds.uid"]) == (w.mntns_id, os.getuid())
    assert (sleeper["threads"], sleeper["kernel_thread"]) == (1, False)
    assert 0 < sleeper["age"] < 60e9
    assert sleeper["runtime.containerId"] == w.container_id
    assert next(r["threads"] for r in rows if r["proc.pid"] == threaded.pid) == 2
    tids = [r["proc.tid"] for r in thread_rows if r["proc.pid"] == threaded.pid]
    assert len(tids) == 2 and threaded.pid in tids
    # Unfiltered: both containers and the host's kernel threads.
    pids = {r["proc.pid"] for r in everything}
    assert {w.pid, neighbour.pid, threaded.pid} <= pids
    assert not [r for r in rows if r["proc.pid"] == neighbour.pid]
    assert any(r["kernel_thread"] and r["proc.comm"] == "kthreadd" for r in everything)

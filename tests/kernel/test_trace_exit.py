"""trace_exit on this kernel: real processes in their own mount namespace exit by exit(3), by
SIGKILL and by SIGABRT with a core dump, and the records say so."""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.runner_proc import (
    Record,
    RunnerProcess,
    python_argv,
    stop_and_check_end,
    wait_exit,
)
from tests.workloads import sleeping_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]


def _of(pid: int) -> Callable[[Record], bool]:
    return lambda d: d["proc.pid"] == pid


def test_exit_code_and_identity(built_gadgets: dict[str, Path]) -> None:
    with sleeping_container() as w, \
            RunnerProcess(built_gadgets["trace_exit"], "--mntns", str(w.mntns_id)) as runner:
        runner.wait_schema()
        proc = w.popen(["sh", "-c", "exit 3"])
        assert wait_exit(proc) == 3
        ev = runner.wait_event(_of(proc.pid), what="exit of sh")
        stop_and_check_end(runner)

    assert ev["proc.comm"] == "sh"
    assert ev["proc.tid"] == proc.pid
    assert ev["proc.parent.pid"] == os.getpid()  # the workload's process is our child
    assert ev["proc.parent.comm"] == Path(f"/proc/{os.getpid()}/comm").read_text().strip()
    assert ev["proc.mntns_id"] == w.mntns_id
    assert (ev["proc.creds.uid"], ev["proc.creds.gid"]) == (os.getuid(), os.getgid())
    assert (ev["exit_code"], ev["signal_raw"], ev["signal"]) == (3, 0, "")
    assert ev["core_dumped"] is False and ev["thread_exit"] is False
    assert 0 < ev["age"] < 20e9
    assert ev["runtime.containerId"] == w.container_id


def test_killed_and_core_dumped(built_gadgets: dict[str, Path], tmp_path: Path) -> None:
    # core_pattern is relative ("core") on these machines: the dump lands in the process's cwd.
    abort = python_argv(
        "import os, resource\n"
        "resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY,) * 2)\n"
        f"os.chdir({str(tmp_path)!r}); os.abort()\n")
    with sleeping_container() as w, \
            RunnerProcess(built_gadgets["trace_exit"], "--mntns", str(w.mntns_id)) as runner:
        runner.wait_schema()
        started = time.monotonic()
        sleeper = w.popen(["sleep", "100"])
        time.sleep(0.5)
        sleeper.send_signal(signal.SIGKILL)
        assert wait_exit(sleeper) == -signal.SIGKILL
        lived = time.monotonic() - started
        aborter = w.popen(abort)
        assert wait_exit(aborter) == -signal.SIGABRT
        killed = runner.wait_event(_of(sleeper.pid), what="exit of the killed sleep")
        aborted = runner.wait_event(_of(aborter.pid), what="exit of the aborting python")
        stop_and_check_end(runner)

    assert killed["proc.comm"] == "sleep"
    assert (killed["signal"], killed["signal_raw"]) == ("SIGKILL", signal.SIGKILL)
    assert (killed["exit_code"], killed["core_dumped"]) == (0, False)
    assert 0.4e9 < killed["age"] <= lived * 1e9
    assert (aborted["signal"], aborted["exit_code"]) == ("SIGABRT", 0)
    cores = list(tmp_path.glob("core*"))
    assert aborted["core_dumped"] is bool(cores), cores


def test_threads_param_shows_a_thread_that_exits_alone(built_gadgets: dict[str, Path]) -> None:
    # join() returns before the kernel is done with the thread: wait until it is gone, so the
    # main thread is the last one and the process record is its.
    code = ("import threading, os, time\n"
            "t = threading.Thread(target=lambda: None); t.start(); t.join()\n"
            "while len(os.listdir('/proc/self/task')) > 1: time.sleep(0.01)\n"
            "os._exit(5)\n")
    gadget = built_gadgets["trace_exit"]
    with sleeping_container() as w:
        select = ["--mntns", str(w.mntns_id)]
        with RunnerProcess(gadget, *select, "--param", "threads=true") as threads, \
                RunnerProcess(gadget, *select) as plain:
            threads.wait_schema()
            plain.wait_schema()
            proc = w.popen(python_argv(code))
            assert wait_exit(proc) == 5
            threads.wait_event(_of(proc.pid), what="exit of the process (threads=true)")
            plain.wait_event(_of(proc.pid), what="exit of the process")
            stop_and_check_end(threads)
            stop_and_check_end(plain)

    with_threads = threads.events(_of(proc.pid))
    thread = [d for d in with_threads if d["thread_exit"]]
    assert len(thread) == 1 and thread[0]["proc.tid"] != proc.pid
    assert (thread[0]["exit_code"], thread[0]["signal"]) == (0, "")
    assert [d["exit_code"] for d in with_threads if not d["thread_exit"]] == [5]
    assert [(d["thread_exit"], d["exit_code"]) for d in plain.events(_of(proc.pid))] == [(False, 5)]


def test_filter_drops_a_neighbours_exits(built_gadgets: dict[str, Path]) -> None:
    token = secrets.token_hex(4)
    gadget = built_gadgets["trace_exit"]
    with sleeping_container() as target, sleeping_container() as neighbour:
        both = ["--mntns", str(target.mntns_id), "--mntns", str(neighbour.mntns_id)]
        with RunnerProcess(gadget, "--container-id", target.container_id) as filtered, \
                RunnerProcess(gadget, *both, "--param", "failed=true") as control:
            filtered.wait_schema()
            control.wait_schema()
            noisy = neighbour.popen(["sh", "-c", f"exit 7 # {token}"])
            assert wait_exit(noisy) == 7
            quiet = target.popen(["sh", "-c", f"exit 3 # {token}"])
            assert wait_exit(quiet) == 3
            filtered.wait_event(_of(quiet.pid), what="the target's exit")
            control.wait_event(_of(noisy.pid), what="the neighbour's exit")
            control.wait_event(_of(quiet.pid), what="the target's exit")
            stop_and_check_end(filtered)
            stop_and_check_end(control)

    got: list[Record] = filtered.events()
    assert {d["proc.mntns_id"] for d in got} == {target.mntns_id}
    assert [d["exit_code"] for d in got if d["proc.pid"] == quiet.pid] == [3]
    assert not [d for d in got if d["proc.pid"] == noisy.pid]
    # failed=true keeps non-zero exits only; both are, the container's sleep is not done yet.
    assert all(d["exit_code"] or d["signal_raw"] for d in control.events())
    assert {d["proc.mntns_id"] for d in control.events()} == {target.mntns_id, neighbour.mntns_id}

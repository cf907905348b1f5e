"""traceloop on this kernel: a process in its own mount namespace makes known system calls (an
openat of a unique missing path, an openat of a file, a write of a known length, a close) and
each is one record with the arguments as strace prints them, the result, the errno and the
container; a neighbour container doing the same is not seen; a container over --max-rate is
cut to its budget and the next record says how many calls were skipped."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.runner_proc import (
    Record,
    RunnerProcess,
    python_argv,
    stop_and_check_end,
    wait_exit,
)
from tests.workloads import ContainerWorkload, sleeping_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]

O_RDONLY, O_WRONLY = os.O_RDONLY, os.O_WRONLY
CALLS = """
import json, os, sys
missing, path, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    os.open(missing, os.O_RDONLY)
except FileNotFoundError:
    pass
fd = os.open(path, os.O_WRONLY)
os.write(fd, b'x' * size)
os.close(fd)
print(json.dumps({'pid': os.getpid(), 'fd': fd}), flush=True)
"""
BURST = """
import os, sys, time
for _ in range(int(sys.argv[1])):
    os.getppid()
print(time.clock_gettime_ns(time.CLOCK_BOOTTIME), flush=True)
while True:
    time.sleep(0.1)
    os.getppid()
"""


def _calls(w: ContainerWorkload, tmp_path: Path, size: int) -> dict[str, Any]:
    tag = secrets.token_hex(6)
    path = tmp_path / f"kg-traceloop-{tag}"
    path.write_bytes(b"")
    missing = tmp_path / f"kg-traceloop-{tag}-missing"
    proc = w.popen([*python_argv(CALLS), str(missing), str(path), str(size)],
                   stdout=subprocess.PIPE)
    assert proc.stdout is not None
    out: dict[str, Any] = json.loads(proc.stdout.readline() or b"{}")
    assert wait_exit(proc) == 0 and path.stat().st_size == size
    out.update(path=str(path), missing=str(missing))
    return out


def _last_call(pid: int) -> Any:
    return lambda d: d["pid"] == pid and d["syscall"] == "SYS_EXIT_GROUP"


def test_known_calls_of_a_container(built_gadgets: dict[str, Path], tmp_path: Path) -> None:
    with sleeping_container() as w, \
            RunnerProcess(built_gadgets["traceloop"], "--mntns", str(w.mntns_id),
                          "--param", "max-rate=0") as runner:
        runner.wait_schema()
        out = _calls(w, tmp_path, 4321)
        # ~2000 records (the interpreter's start-up): generous for a loaded machine
        runner.wait_event(_last_call(out["pid"]), timeout=240, what="the workload's exit_group")
        stop_and_check_end(runner)

    mine = runner.events(lambda d: d["pid"] == out["pid"])
    by_path = {d["parameters"]: d for d in mine if d["syscall"] == "SYS_OPENAT"}
    at_fdcwd = "-100"
    failed = by_path[f'{at_fdcwd}, "{out["missing"]}", {O_RDONLY | os.O_CLOEXEC}, 0']
    opened = by_path[f'{at_fdcwd}, "{out["path"]}", {O_WRONLY | os.O_CLOEXEC}, 0']
    assert (failed["ret"], failed["error"], failed["error_raw"]) == (-2, "ENOENT", 2)
    assert (opened["ret"], opened["error"]) == (out["fd"], "")
    writes = [d for d in mine if d["syscall"] == "SYS_WRITE" and d["args"][0] == out["fd"]]
    assert len(writes) == 1
    write = writes[0]
    assert (write["ret"], write["args"][2]) == (4321, 4321)
    assert write["parameters"].startswith(f"{out['fd']}, 0x")
    assert write["parameters"].endswith(", 4321")
    close = [d for d in mine if d["syscall"] == "SYS_CLOSE" and d["parameters"] == str(out["fd"])
             and d["timestamp_raw"] > write["timestamp_raw"]]
    assert [d["ret"] for d in close] == [0]
    end = [d for d in mine if d["syscall"] == "SYS_EXIT_GROUP"]
    assert [(d["returned"], d["parameters"]) for d in end] == [(False, "0")]
    # in the order the calls were made, each one returned before the next was made
    order = [failed, opened, write, close[0]]
    assert [d["timestamp_raw"] for d in order] == sorted(d["timestamp_raw"] for d in order)
    assert all(d["returned"] and d["duration"] > 0 for d in order)
    assert {d["mntns_id"] for d in mine} == {w.mntns_id}
    assert {d["runtime.containerId"] for d in mine} == {w.container_id}
    assert all(d["comm"].startswith("python") for d in order)
    assert all(d["skipped"] == 0 for d in mine)


def test_other_containers_are_not_seen(built_gadgets: dict[str, Path], tmp_path: Path) -> None:
    with sleeping_container() as target, sleeping_container() as neighbour, \
            RunnerProcess(built_gadgets["traceloop"], "--container-id", target.container_id,
                          "--param", "max-rate=0") as runner:
        runner.wait_schema()
        noisy = _calls(neighbour, tmp_path, 11)
        out = _calls(target, tmp_path, 22)
        runner.wait_event(_last_call(out["pid"]), timeout=240, what="the target's exit_group")
        stop_and_check_end(runner)

    got: list[Record] = runner.events()
    assert {d["mntns_id"] for d in got} == {target.mntns_id}
    assert not runner.events(lambda d: d["pid"] == noisy["pid"])
    assert not [d for d in got if noisy["path"] in d["parameters"]]
    assert [d for d in got if out["path"] in d["parameters"]]


def test_rate_limit_counts_what_it_skips(built_gadgets: dict[str, Path]) -> None:
    burst = 3000
    with sleeping_container() as w, \
            RunnerProcess(built_gadgets["traceloop"], "--mntns", str(w.mntns_id),
                          "--param", "max-rate=20") as runner:
        runner.wait_schema()
        proc = w.popen([*python_argv(BURST), str(burst)], stdout=subprocess.PIPE)
        try:
            assert proc.stdout is not None
            done = int(proc.stdout.readline() or b"0")
            # the first record after the burst carries the count of every call skipped in it
            runner.wait_event(lambda d: d["pid"] == proc.pid and d["timestamp_raw"] > done,
                              what="a record after the burst")
        finally:
            proc.kill()
            wait_exit(proc)
        stop_and_check_end(runner)

    mine = runner.events(lambda d: d["pid"] == proc.pid)
    getppid = [d for d in mine if d["syscall"] == "SYS_GETPPID"]
    assert len(getppid) < burst // 2
    # every call is recorded or counted (the calls before the burst count too)
    assert len(getppid) + sum(d["skipped"] for d in runner.events()) >= burst
    assert [d for d in mine if d["skipped"]]

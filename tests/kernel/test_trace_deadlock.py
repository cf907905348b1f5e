"""trace_deadlock on this kernel: a process in its own mount namespace takes two pthread
mutexes (through ctypes, straight into the C library) in one order in a thread, then in the
other order in a second thread, one after the other (no deadlock happens); the gadget reports
the inversion once, with both mutex addresses and both threads. The same pairs taken in one
order only, or both ways by a single thread, are not reported; a neighbour container doing
the inversion is filtered out."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.runner_proc import RunnerProcess, python_argv, stop_and_check_end, wait_exit
from tests.workloads import ContainerWorkload, sleeping_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]

LOCKER = """
import ctypes, json, os, sys, threading
libc = ctypes.CDLL(None)
mutexes = [ctypes.create_string_buffer(64) for _ in range(6)]
for m in mutexes:
    assert libc.pthread_mutex_init(m, None) == 0
a, b, c, d, e, f = mutexes
tids = {}
def take(name, *order):
    tids[name] = threading.get_native_id()
    for m in order:
        assert libc.pthread_mutex_lock(m) == 0
    for m in reversed(order):
        assert libc.pthread_mutex_unlock(m) == 0
def in_thread(name, *order):
    t = threading.Thread(target=take, args=(name, *order))
    t.start()
    t.join()
in_thread('first', a, b)      # a -> b
in_thread('second', b, a)     # b -> a: the inversion
in_thread('same1', c, d)      # c -> d twice: no inversion
in_thread('same2', c, d)
take('main', e, f)            # e -> f and f -> e in one thread: cannot deadlock
take('main', f, e)
print(json.dumps({'pid': os.getpid(), 'tids': tids,
                  'addr': [ctypes.addressof(m) for m in mutexes]}), flush=True)
"""


def _lock_twice(w: ContainerWorkload) -> dict[str, Any]:
    proc = w.popen(python_argv(LOCKER), stdout=subprocess.PIPE)
    assert proc.stdout is not None
    out: dict[str, Any] = json.loads(proc.stdout.readline() or b"{}")
    assert wait_exit(proc) == 0
    return out


def _ours(out: dict[str, Any]) -> Any:
    return lambda d: d["proc.pid"] == out["pid"] and (
        d["mutex_held"] in out["addr"] or d["mutex_wanted"] in out["addr"])


def test_inversion_of_two_threads(built_gadgets: dict[str, Path]) -> None:
    with sleeping_container() as w, \
            RunnerProcess(built_gadgets["trace_deadlock"], "--mntns", str(w.mntns_id)) as runner:
        runner.wait_schema()
        out = _lock_twice(w)
        runner.wait_event(_ours(out), what="the inversion")
        stop_and_check_end(runner)

    a, b = out["addr"][:2]
    found = runner.events(_ours(out))
    assert len(found) == 1, found
    ev = found[0]
    assert (ev["mutex_held"], ev["mutex_wanted"]) == (b, a)
    assert (ev["proc.tid"], ev["other_tid"]) == (out["tids"]["second"], out["tids"]["first"])
    assert ev["proc.comm"].startswith("python") and ev["other_comm"].startswith("python")
    assert ev["other_timestamp_raw"] < ev["timestamp_raw"]
    assert ev["proc.mntns_id"] == w.mntns_id
    assert ev["runtime.containerId"] == w.container_id


def test_other_containers_are_filtered(built_gadgets: dict[str, Path]) -> None:
    with sleeping_container() as target, sleeping_container() as neighbour, \
            RunnerProcess(built_gadgets["trace_deadlock"],
                          "--container-id", target.container_id) as runner:
        runner.wait_schema()
        noisy = _lock_twice(neighbour)
        out = _lock_twice(target)
        runner.wait_event(_ours(out), what="the target's inversion")
        stop_and_check_end(runner)

    assert {d["proc.mntns_id"] for d in runner.events()} == {target.mntns_id}
    assert not runner.events(lambda d: d["proc.pid"] == noisy["pid"])

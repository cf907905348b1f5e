"""trace_oomkill on this kernel: a real OOM kill. A process in its own mount namespace joins a
memory cgroup limited to 48 MiB (the cgroup v1 memory controller) and allocates past it; the
kernel's OOM killer picks it, and the record names it, its memory and its memory cgroup."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.runner_proc import RunnerProcess, python_argv, stop_and_check_end, wait_exit
from tests.workloads import ContainerWorkload, sleeping_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]

MEMORY_V1 = Path("/sys/fs/cgroup/memory")
LIMIT = 48 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")
needs_memcg = pytest.mark.skipif(not (MEMORY_V1 / "memory.limit_in_bytes").exists(),
                                 reason=f"needs the cgroup v1 memory controller at {MEMORY_V1}")


@contextlib.contextmanager
def _memcg() -> Iterator[Path]:
    """A memory cgroup limited to LIMIT bytes (no swap here either), removed at the end."""
    path = MEMORY_V1 / f"kubectl-gadget-test-oom-{secrets.token_hex(4)}"
    path.mkdir()
    try:
        (path / "memory.limit_in_bytes").write_text(str(LIMIT))
        yield path
    finally:
        for pid in (path / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        path.rmdir()


def _hog(w: ContainerWorkload, memcg: Path) -> int:
    """Run a process in `w` that joins `memcg` and touches 4x its limit; return its pid."""
    code = (f"open({str(memcg / 'cgroup.procs')!r}, 'w').write('0')\n"
            "chunks = []\n"
            f"for _ in range({4 * LIMIT >> 20}):\n"
            "    chunks.append(bytearray(1 << 20))\n")
    hog = w.popen(python_argv(code))
    assert wait_exit(hog, 60) == -signal.SIGKILL
    return hog.pid


@needs_memcg
def test_oom_kill_in_a_memory_cgroup(built_gadgets: dict[str, Path]) -> None:
    with sleeping_container() as w, _memcg() as memcg, \
            RunnerProcess(built_gadgets["trace_oomkill"], "--mntns", str(w.mntns_id)) as runner:
        runner.wait_schema()
        pid = _hog(w, memcg)
        ev = runner.wait_event(lambda d: d["proc.pid"] == pid, what="the OOM kill")
        failcnt = int((memcg / "memory.failcnt").read_text())
        memcg_id = os.stat(memcg).st_ino
        stop_and_check_end(runner)

    assert failcnt > 0
    assert ev["proc.comm"].startswith("python")
    assert (ev["trigger_pid"], ev["trigger_comm"]) == (pid, ev["proc.comm"])
    assert (ev["proc.mntns_id"], ev["proc.parent.pid"]) == (w.mntns_id, os.getpid())
    assert ev["runtime.containerId"] == w.container_id
    assert (ev["memcg"], ev["memcg_id"]) == (memcg.name, memcg_id)
    # Killed near the limit, far below the 4x it asked for (the kernel's counters are per-CPU
    # approximations, and what the interpreter used before joining the cgroup is charged
    # elsewhere but still counted as its resident memory).
    assert LIMIT // PAGE // 2 < ev["anon_pages"] < 2 * LIMIT // PAGE
    assert ev["pages"] == ev["anon_pages"] + ev["file_pages"] + ev["shmem_pages"]
    assert ev["total_vm_pages"] >= ev["pages"]
    assert ev["oom_score_adj"] == 0


@needs_memcg
def test_filter_drops_a_neighbours_oom_kill(built_gadgets: dict[str, Path]) -> None:
    gadget = built_gadgets["trace_oomkill"]
    with sleeping_container() as target, sleeping_container() as neighbour, \
            _memcg() as memcg:
        both = ["--mntns", str(target.mntns_id), "--mntns", str(neighbour.mntns_id)]
        with RunnerProcess(gadget, "--container-id", target.container_id) as filtered, \
                RunnerProcess(gadget, *both) as control:
            filtered.wait_schema()
            control.wait_schema()
            noisy = _hog(neighbour, memcg)
            victim = _hog(target, memcg)
            filtered.wait_event(lambda d: d["proc.pid"] == victim, what="the target's kill")
            control.wait_event(lambda d: d["proc.pid"] == victim, what="the target's kill")
            stop_and_check_end(filtered)
            stop_and_check_end(control)

    assert [d["proc.pid"] for d in filtered.events()] == [victim]
    assert [d["proc.pid"] for d in control.events()] == [noisy, victim]

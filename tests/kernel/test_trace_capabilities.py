"""trace_capabilities on this kernel: a process in its own mount namespace chowns a file as
root (CAP_CHOWN granted), then as nobody (CAP_CHOWN refused); both checks are decoded with
the capability's name, the verdict and the chown system call."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
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
from tests.workloads import ContainerWorkload, sleeping_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]

NOBODY = 65534
# chown(2) and fchownat(2) on x86_64 and arm64 (libc picks one): the call that needed the cap.
CHOWN_CALLS = {"chown", "fchownat", "lchown"}


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user can reach (pytest's tmp_path is under a 0700 dir): chown, not path
    lookup, must be what fails."""
    with tempfile.TemporaryDirectory(prefix="kubectl-gadget-caps-") as path:
        os.chmod(path, 0o755)
        yield Path(path)


def _chown_twice(w: ContainerWorkload, path: Path) -> int:
    path.write_text("x")
    code = ("import os\n"
            f"os.chown({str(path)!r}, 1234, 1234)\n"
            f"os.setuid({NOBODY})\n"
            "try:\n"
            f"    os.chown({str(path)!r}, 0, 0)\n"
            "except PermissionError:\n"
            "    os._exit(0)\n"
            "os._exit(1)\n")
    proc = w.popen(python_argv(code))
    assert wait_exit(proc) == 0
    return proc.pid


def _syscall(ev: Record) -> str:
    return str(ev["syscall"]).removeprefix("SYS_").lower()


def _chown_checks(pid: int) -> Callable[[Record], bool]:
    return lambda d: d["proc.pid"] == pid and d["cap"] == "CAP_CHOWN"


def test_granted_and_refused_chown(built_gadgets: dict[str, Path], open_dir: Path) -> None:
    with sleeping_container() as w, \
            RunnerProcess(built_gadgets["trace_capabilities"], "--mntns", str(w.mntns_id)) \
            as runner:
        runner.wait_schema()
        pid = _chown_twice(w, open_dir / "file")
        runner.wait_event(lambda d: _chown_checks(pid)(d) and not d["capable"],
                          what="the refused CAP_CHOWN")
        stop_and_check_end(runner)

    # As root: one check for the new owner, one for the group; as nobody, the first refusal.
    *granted_both, refused = runner.events(_chown_checks(pid))
    granted = granted_both[0]
    assert [d["capable"] for d in (*granted_both, refused)] == [True, True, False]
    assert (granted["cap_raw"], refused["cap_raw"]) == (0, 0)
    assert _syscall(granted) in CHOWN_CALLS and _syscall(refused) == _syscall(granted)
    assert (granted["proc.creds.uid"], refused["proc.creds.uid"]) == (0, NOBODY)
    assert granted["proc.comm"].startswith("python")
    assert (granted["proc.mntns_id"], granted["proc.parent.pid"]) == (w.mntns_id, os.getpid())
    assert granted["runtime.containerId"] == w.container_id
    host_userns = os.stat("/proc/self/ns/user").st_ino
    assert granted["current_userns"] == granted["target_userns"] == host_userns
    assert (open_dir / "file").stat().st_uid == 1234


def test_filter_unique_and_failed(built_gadgets: dict[str, Path], open_dir: Path) -> None:
    gadget = built_gadgets["trace_capabilities"]
    with sleeping_container() as target, sleeping_container() as neighbour:
        both = ["--mntns", str(target.mntns_id), "--mntns", str(neighbour.mntns_id)]
        with RunnerProcess(gadget, "--container-id", target.container_id) as filtered, \
                RunnerProcess(gadget, *both, "--param", "unique=true",
                              "--param", "failed=true") as unique:
            filtered.wait_schema()
            unique.wait_schema()
            noisy = [_chown_twice(neighbour, open_dir / f"n{i}") for i in range(2)]
            quiet = [_chown_twice(target, open_dir / f"t{i}") for i in range(2)]
            for pid in quiet:
                filtered.wait_event(lambda d, p=pid: _chown_checks(p)(d) and not d["capable"],
                                    what="the target's refused CAP_CHOWN")
            unique.wait_event(lambda d: _chown_checks(quiet[0])(d), what="target's refusal")
            stop_and_check_end(filtered)
            stop_and_check_end(unique)

    got = filtered.events()
    assert {d["proc.mntns_id"] for d in got} == {target.mntns_id}
    assert not [d for d in got if d["proc.pid"] in noisy]
    # failed=true: refusals only; unique=true: the second process's refusal is not news.
    rows = unique.events(lambda d: d["cap"] == "CAP_CHOWN")
    assert [d["proc.pid"] for d in rows] == [noisy[0], quiet[0]]
    assert all(not d["capable"] for d in unique.events())

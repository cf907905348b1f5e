"""trace_mount on this kernel: a process in its own mount namespace mounts a tmpfs with flags
and options, unmounts it lazily, and fails to mount on a missing directory."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.runner_proc import RunnerProcess, stop_and_check_end
from tests.workloads import ContainerWorkload, sleeping_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]


def _mount_cycle(w: ContainerWorkload, where: Path, token: str) -> None:
    """tmpfs on `where` (read-only, nosuid), lazy umount, then a mount that fails with ENOENT."""
    w.exec(["mount", "-t", "tmpfs", "-o", "ro,nosuid,size=1m", f"src-{token}", str(where)])
    w.exec(["umount", "-l", str(where)])
    failed = w.exec(["mount", "-t", "tmpfs", f"src-{token}", f"{where}/missing"], check=False)
    assert failed.returncode != 0


def test_mount_umount_and_failure(built_gadgets: dict[str, Path], tmp_path: Path) -> None:
    token = secrets.token_hex(4)
    with sleeping_container() as w, \
            RunnerProcess(built_gadgets["trace_mount"], "--mntns", str(w.mntns_id)) as runner:
        runner.wait_schema()
        _mount_cycle(w, tmp_path, token)
        runner.wait_event(lambda d: d["target"] == f"{tmp_path}/missing", what="failed mount")
        stop_and_check_end(runner)

    ours = runner.events(lambda d: d["target"].startswith(str(tmp_path)))
    assert [(d["op"], d["target"]) for d in ours] == [
        ("MOUNT", str(tmp_path)), ("UMOUNT", str(tmp_path)), ("MOUNT", f"{tmp_path}/missing")]
    mount, umount, failed = ours
    assert (mount["fs"], mount["source"], mount["data"]) == ("tmpfs", f"src-{token}", "size=1m")
    assert mount["flags"] == "MS_RDONLY|MS_NOSUID"
    assert mount["flags_raw"] == 1 | 2
    assert (mount["ret"], mount["error"], mount["op_raw"]) == (0, "", 0)
    assert mount["proc.comm"] == "mount"
    assert (mount["proc.mntns_id"], mount["proc.parent.pid"]) == (w.mntns_id, os.getpid())
    assert mount["runtime.containerId"] == w.container_id
    assert 0 < mount["latency"] < 10e9
    assert (umount["umount_flags"], umount["umount_flags_raw"]) == ("MNT_DETACH", 2)
    assert (umount["fs"], umount["source"], umount["error"]) == ("", "", "")
    assert (failed["error"], failed["error_raw"], failed["ret"]) == ("ENOENT", 2, -2)
    # The host never saw the tmpfs: it lived in the container's mount namespace.
    assert str(tmp_path) not in Path("/proc/self/mounts").read_text()


def test_filter_drops_a_neighbours_mounts(built_gadgets: dict[str, Path], tmp_path: Path) -> None:
    gadget = built_gadgets["trace_mount"]
    with sleeping_container() as target, sleeping_container() as neighbour:
        both = ["--mntns", str(target.mntns_id), "--mntns", str(neighbour.mntns_id)]
        with RunnerProcess(gadget, "--container-id", target.container_id) as filtered, \
                RunnerProcess(gadget, *both) as control:
            filtered.wait_schema()
            control.wait_schema()
            _mount_cycle(neighbour, tmp_path, "noise")
            _mount_cycle(target, tmp_path, "target")
            done = f"{tmp_path}/missing"
            filtered.wait_event(lambda d: d["target"] == done, what="target's failed mount")
            control.wait_event(lambda d: d["target"] == done and d["source"] == "src-target",
                               what="target's failed mount")
            stop_and_check_end(filtered)
            stop_and_check_end(control)

    got = filtered.events()
    assert {d["proc.mntns_id"] for d in got} == {target.mntns_id}
    assert [d["source"] for d in got if d["op"] == "MOUNT"] == ["src-target"] * 2
    seen = control.events(lambda d: d["op"] == "MOUNT")
    assert [d["source"] for d in seen] == ["src-noise"] * 2 + ["src-target"] * 2

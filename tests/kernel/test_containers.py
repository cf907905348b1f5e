"""ContainerTable against real processes in their own mount namespace and runtime-shaped cgroup.

Needs root (new mount namespaces, cgroup directories) and util-linux's unshare/nsenter.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from node_runner.cgroups import container_of_pid
from node_runner.container_info import enrichment_fields
from node_runner.containers import AmbiguousContainerError, ContainerTable
from node_runner.mntns import mntns_of
from tests.conftest import REPO
from tests.workloads import (
    ContainerState,
    hierarchy_roots,
    run_in_container,
    sleeping_container,
)

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for mount namespaces and cgroups"),
    pytest.mark.skipif(
        not (shutil.which("unshare") and shutil.which("nsenter")),
        reason="needs util-linux unshare and nsenter",
    ),
]

RUNTIMES = ["containerd", "cri-o", "docker", "podman"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _require_cgroup(version: int) -> None:
    try:
        hierarchy_roots(version)
    except RuntimeError as exc:
        pytest.skip(f"cgroup v{version} is not available: {exc}")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as file:
            return file.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("version", [2, 1])
@pytest.mark.parametrize("driver", ["systemd", "cgroupfs"])
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_table_finds_real_container(version: int, driver: str, runtime: str) -> None:
    _require_cgroup(version)
    state = ContainerState(
        container_name="cart", pod_name="cart-0", namespace="shop", image="ghcr.io/shop/cart:1"
    )
    with sleeping_container(
        runtime=runtime, cgroup_driver=driver, cgroup_version=version, state=state
    ) as w:
        assert w.mntns_id != mntns_of(os.getpid())
        table = ContainerTable(paths=w.paths)
        found = table.lookup_mntns(w.mntns_id)
        assert found is not None
        assert (found.container_id, found.runtime, found.mntns_id, found.pid) == (
            w.container_id,
            runtime,
            w.mntns_id,
            w.pid,
        )
        assert found.pod_uid == w.pod_uid
        assert found.image == "ghcr.io/shop/cart:1"
        if runtime in ("containerd", "cri-o"):
            assert (found.k8s_namespace, found.k8s_pod_name, found.k8s_container_name) == (
                "shop",
                "cart-0",
                "cart",
            )
        assert found.name == "cart"
        fields = enrichment_fields(found, "node-1")
        assert fields["runtime.containerId"] == w.container_id
        assert fields["runtime.containerPid"] == str(w.pid)


def test_command_starts_inside_its_cgroup_and_mount_namespace() -> None:
    _require_cgroup(2)
    argv = ["sh", "-c", "cat /proc/self/cgroup; readlink /proc/self/ns/mnt"]
    with run_in_container(argv, stdout=subprocess.PIPE) as w:
        assert w.process.stdout is not None
        out = w.process.stdout.read().decode()
        assert w.wait(timeout=10) == 0
    # The very first thing the command did already saw the container's cgroup and mntns.
    assert f"0::{w.cgroup_relpath}\n" in out
    assert f"mnt:[{w.mntns_id}]" in out


def test_host_process_maps_to_none() -> None:
    table = ContainerTable()
    assert table.host_mntns is not None
    assert table.lookup_mntns(table.host_mntns) is None
    assert enrichment_fields(table.lookup_mntns(table.host_mntns), "n")["runtime.containerId"] == ""
    if container_of_pid(os.getpid()) is None:
        assert table.lookup_mntns(mntns_of(os.getpid())) is None


def test_unknown_mntns_rescans_once_and_finds_a_new_container() -> None:
    _require_cgroup(2)
    clock = FakeClock()
    table = ContainerTable(clock=clock, min_rescan_interval=1.0)
    with sleeping_container() as w:
        scans = table.scans
        assert table.lookup_mntns(w.mntns_id) is None  # younger than the interval: no rescan
        assert table.scans == scans
        clock.now += 1.5
        found = table.lookup_mntns(w.mntns_id)
        assert found is not None and found.container_id == w.container_id
        assert table.scans == scans + 1
        for _ in range(500):  # a flood of host events and unknown namespaces: no rescan
            assert table.lookup_mntns(table.host_mntns or 0) is None
            assert table.lookup_mntns(1) is None
        assert table.scans == scans + 1
        assert table.lookup_mntns(w.mntns_id) == found


def test_resolve_by_prefix_and_name_and_ambiguous_prefix() -> None:
    _require_cgroup(2)
    shared = secrets.token_hex(6)  # random: other test runs may be using this host too
    id_a = shared + "a" + secrets.token_hex(26)[:51]
    id_b = shared + "b" + secrets.token_hex(26)[:51]
    with (
        sleeping_container(container_id=id_a, state=ContainerState(container_name="web")) as a,
        sleeping_container(container_id=id_b, state=ContainerState(container_name="db")) as b,
    ):
        assert a.paths is not None and b.paths is not None
        table = ContainerTable(paths=a.paths)
        assert [c.container_id for c in table.resolve(container_ids=[id_b[:13]])] == [id_b]
        assert [c.mntns_id for c in table.resolve(container_ids=[id_a])] == [a.mntns_id]
        with pytest.raises(AmbiguousContainerError):
            table.resolve(container_ids=[shared])
        assert [c.container_id for c in table.resolve(names=["web"])] == [id_a]
        assert table.resolve(names=["db"]) == []  # b's state is in another state root
        table = ContainerTable(paths=b.paths, extra_metadata={id_a: {"container_name": "web"}})
        by_name = table.resolve(names=["web", "db"])
        assert [c.container_id for c in by_name] == [id_a, id_b]


def test_exec_joins_mount_namespace_and_cgroup() -> None:
    _require_cgroup(1)
    with sleeping_container(cgroup_driver="cgroupfs", cgroup_version=1) as w:
        result = w.exec(["readlink", "/proc/self/ns/mnt"])
        assert result.stdout.decode().strip() == f"mnt:[{w.mntns_id}]"
        extra = w.popen(["sleep", "1000"])
        identity = container_of_pid(extra.pid)
        assert identity is not None and identity.container_id == w.container_id
        assert mntns_of(extra.pid) == w.mntns_id
        table = ContainerTable()
        found = table.lookup_mntns(w.mntns_id)
        assert found is not None and found.pid == min(w.pid, extra.pid)
    assert not _alive(extra.pid)


@pytest.mark.parametrize("version", [2, 1])
def test_no_process_or_cgroup_left_behind(version: int) -> None:
    _require_cgroup(version)
    argv = ["sh", "-c", "sleep 1000 & sleep 1000 & wait"]
    with pytest.raises(RuntimeError, match="test failed"):
        with run_in_container(argv, cgroup_version=version, state=ContainerState()) as w:
            assert w.paths is not None
            state_root = Path(w.paths.containerd_state)
            deadline = time.monotonic() + 30
            while len(_cgroup_pids(w.cgroup_path)) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            pids = _cgroup_pids(w.cgroup_path)
            assert len(pids) == 3
            raise RuntimeError("test failed")
    for cgroup_dir in w.cgroup_paths:
        assert not os.path.exists(cgroup_dir)
    assert not state_root.exists()
    for pid in pids:
        assert not _alive(pid)


def _cgroup_pids(cgroup_dir: str) -> list[int]:
    with open(os.path.join(cgroup_dir, "cgroup.procs"), encoding="ascii") as file:
        return [int(line) for line in file if line.strip()]


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs util-linux setpriv")
@pytest.mark.parametrize("mode", [(), ("--cluster",)], ids=["local", "cluster"])
def test_runner_without_sys_ptrace_says_so_for_a_target_container(
        built_gadgets: dict[str, Path], mode: tuple[str, ...]) -> None:
    """Without CAP_SYS_PTRACE the mount namespace of a container's process cannot be read: a
    run that targets it stops with a permission error naming the capability (exit 6), instead
    of "no running container matches" or, on a cluster, a filter that lets nothing through."""
    with sleeping_container() as w:
        proc = subprocess.run(
            ["setpriv", "--bounding-set=-sys_ptrace", sys.executable, "-m", "node_runner", "run",
             "--gadget", str(built_gadgets["trace_exec"]), "--container-id",
             f"containerd://{w.container_id}", "--timeout", "60", *mode],
            cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    errors = [r for r in records if r["type"] == "error"]
    assert proc.returncode == 6, (proc.returncode, records, proc.stderr)
    assert errors and errors[0]["code"] == "permission", records
    assert "CAP_SYS_PTRACE" in errors[0]["message"] and w.container_id[:12] in errors[0]["message"]
    assert records[-1]["type"] == "end" and records[-1]["exit_code"] == 6
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs util-linux setpriv")
def test_whole_host_run_without_sys_ptrace_warns_that_containers_are_unknown(
        built_gadgets: dict[str, Path]) -> None:
    """A whole-host run without CAP_SYS_PTRACE cannot tell which container a process is in:
    it still runs, and a warning names the capability, so container events are not taken for
    host processes without a word."""
    with sleeping_container() as w:
        proc = subprocess.run(
            ["setpriv", "--bounding-set=-sys_ptrace", sys.executable, "-m", "node_runner", "run",
             "--gadget", str(built_gadgets["trace_exec"]), "--timeout", "1"],
            cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
        with_cap = subprocess.run(
            [sys.executable, "-m", "node_runner", "run", "--gadget",
             str(built_gadgets["trace_exec"]), "--timeout", "1"],
            cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    warnings = [r["message"] for r in records if r["type"] == "warning"]
    assert proc.returncode == 0, (records, proc.stderr)
    assert any("CAP_SYS_PTRACE" in m and "cannot be identified" in m for m in warnings), records
    assert any(w.container_id[:12] in m or "..." in m for m in warnings), warnings
    unwarned = [json.loads(line) for line in with_cap.stdout.splitlines()]
    assert with_cap.returncode == 0, with_cap.stderr
    assert not [r for r in unwarned if r["type"] == "warning"
                and "cannot be identified" in r["message"]], unwarned

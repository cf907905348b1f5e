"""Cgroup path -> (runtime, container id, pod uid), on lines shaped like real nodes' ones."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from node_runner.cgroups import (
    CgroupIdentity,
    container_of_pid,
    parse_cgroup,
    parse_cgroup_path,
    parse_proc_cgroup,
)

CID = "3f7c1a9e0b2d4c6e8f1a3b5c7d9e0f2a4b6c8d0e1f3a5b7c9d1e3f5a7b9c1d3e"
CID2 = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b"
UID = "5c3f8a2e-1b4d-4e6f-9a0b-7c2d3e4f5a6b"
UID_ = UID.replace("-", "_")

CONTAINER_PATHS = [
    # containerd, systemd driver (cgroup v2 and the v1 name=systemd line look the same)
    (
        f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/"
        f"cri-containerd-{CID}.scope",
        ("containerd", CID, UID),
    ),
    (
        f"/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{CID}.scope",
        ("containerd", CID, UID),
    ),
    # containerd, cgroupfs driver
    (f"/kubepods/burstable/pod{UID}/{CID}", ("containerd", CID, UID)),
    (f"/kubepods/pod{UID}/{CID}", ("containerd", CID, UID)),
    # containerd without CRI (ctr / nerdctl)
    (f"/default/{CID}", ("containerd", CID, "")),
    (f"/k8s.io/{CID}", ("containerd", CID, "")),
    (f"/system.slice/nerdctl-{CID}.scope", ("containerd", CID, "")),
    # CRI-O
    (
        f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/"
        f"crio-{CID}.scope",
        ("cri-o", CID, UID),
    ),
    (f"/kubepods/besteffort/pod{UID}/crio-{CID}", ("cri-o", CID, UID)),
    # docker, standalone and under Kubernetes (cri-dockerd, systemd driver)
    (f"/docker/{CID}", ("docker", CID, "")),
    (f"/system.slice/docker-{CID}.scope", ("docker", CID, "")),
    (
        f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/"
        f"docker-{CID}.scope",
        ("docker", CID, UID),
    ),
    # podman: rootful, rootless, payload sub-cgroup, cgroupfs
    (f"/machine.slice/libpod-{CID}.scope", ("podman", CID, "")),
    (f"/machine.slice/libpod-{CID}.scope/container", ("podman", CID, "")),
    (
        f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{CID}.scope",
        ("podman", CID, ""),
    ),
    (f"/libpod_parent/libpod-{CID}", ("podman", CID, "")),
    # kind: a docker container (the node) running containerd; the innermost one wins
    (
        f"/system.slice/docker-{CID2}.scope/kubelet.slice/kubelet-kubepods.slice/"
        f"kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_}.slice/"
        f"cri-containerd-{CID}.scope",
        ("containerd", CID, UID),
    ),
    (f"/docker/{CID2}/kubepods/besteffort/pod{UID}/{CID}", ("containerd", CID, UID)),
    # seen from a runner pod in its own cgroup namespace
    (
        f"/../../kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope",
        ("containerd", CID, UID),
    ),
    # a process still listed after its cgroup was removed
    (f"/system.slice/docker-{CID}.scope (deleted)", ("docker", CID, "")),
]

HOST_PATHS = [
    "/",
    "",
    "/init.scope",
    "/user.slice/user-0.slice/session-3.scope",
    "/system.slice/containerd.service",
    "/system.slice/docker.service",
    "/system.slice/crio.service",
    "/kubepods.slice/kubepods-besteffort.slice",
    f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice",
    f"/kubepods/besteffort/pod{UID}",
    # monitors next to containers are not containers
    f"/kubepods.slice/kubepods-pod{UID_}.slice/crio-conmon-{CID}.scope",
    f"/kubepods/besteffort/pod{UID}/crio-conmon-{CID}",
    f"/machine.slice/libpod-conmon-{CID}.scope",
    # a bare id under a parent that does not say which runtime made it
    f"/process_api/{CID}",
    f"/{CID}",
    "/process_api/46d12b1117c52fb96da1f04a89c73ad0",
    # almost ids: wrong length, upper case
    f"/docker/{CID[:-1]}",
    f"/system.slice/docker-{CID.upper()}.scope",
]


@pytest.mark.parametrize(("path", "expected"), CONTAINER_PATHS)
def test_container_paths(path: str, expected: tuple[str, str, str]) -> None:
    assert parse_cgroup(path) == CgroupIdentity(*expected)
    assert parse_cgroup_path(path) == expected[:2]


@pytest.mark.parametrize("path", HOST_PATHS)
def test_host_paths(path: str) -> None:
    assert parse_cgroup(path) is None
    assert parse_cgroup_path(path) is None


V1_HOST = """\
12:rdma:/
11:pids:/user.slice/user-0.slice/session-3.scope
4:cpu,cpuacct:/user.slice
1:name=systemd:/user.slice/user-0.slice/session-3.scope
0::/user.slice/user-0.slice/session-3.scope
"""


def _proc_cgroup(systemd: str, v1: str, v2: str) -> str:
    return (
        f"12:rdma:/\n9:pids:{v1}\n8:memory:{v1}\n4:cpu,cpuacct:{v1}\n"
        f"1:name=systemd:{systemd}\n0::{v2}\n"
    )


def test_proc_cgroup_host() -> None:
    assert parse_proc_cgroup(V1_HOST) is None
    assert parse_proc_cgroup("") is None
    assert parse_proc_cgroup("garbage\n\n") is None


def test_proc_cgroup_v2_only() -> None:
    text = f"0::/system.slice/docker-{CID}.scope\n"
    assert parse_proc_cgroup(text) == ("docker", CID, "")


def test_proc_cgroup_any_line_that_parses_wins() -> None:
    # v1 pids hierarchy only (the v2 and systemd lines stay at the root)
    text = _proc_cgroup("/", f"/kubepods/besteffort/pod{UID}/{CID}", "/")
    assert parse_proc_cgroup(text) == ("containerd", CID, UID)


def test_proc_cgroup_prefers_v2_when_lines_disagree() -> None:
    text = _proc_cgroup(
        f"/system.slice/docker-{CID2}.scope",
        f"/docker/{CID2}",
        f"/machine.slice/libpod-{CID}.scope",
    )
    assert parse_proc_cgroup(text) == ("podman", CID, "")


def test_proc_cgroup_prefers_name_systemd_over_controllers() -> None:
    text = _proc_cgroup(f"/system.slice/docker-{CID}.scope", f"/docker/{CID2}", "/")
    assert parse_proc_cgroup(text) == ("docker", CID, "")


def test_container_of_pid_reads_proc_root(tmp_path: Path) -> None:
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "cgroup").write_text(_proc_cgroup("/", "/", f"/docker/{CID}"))
    (tmp_path / "43").mkdir()
    (tmp_path / "43" / "cgroup").write_text(V1_HOST)
    assert container_of_pid(42, str(tmp_path)) == ("docker", CID, "")
    assert container_of_pid(43, str(tmp_path)) is None
    with pytest.raises(FileNotFoundError):
        container_of_pid(44, str(tmp_path))


def test_container_of_pid_on_real_proc() -> None:
    # Whatever this test runs in, the answer must agree with parsing the file directly.
    with open(f"/proc/{os.getpid()}/cgroup", encoding="utf-8") as file:
        expected = parse_proc_cgroup(file.read())
    assert container_of_pid(os.getpid()) == expected

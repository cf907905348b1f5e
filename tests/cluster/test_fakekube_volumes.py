"""configMap volumes in fakekube's kubelet: process containers and runc containers.

A process container sees the ConfigMap's files at the volumeMount's path, read-only, in a
mount namespace of its own (the host's view is unchanged, a missing mount point is created and
removed afterwards); a runc container gets the same files bind-mounted read-only into its
root. `items` and `defaultMode` decide names and modes. A pod whose ConfigMap does not exist
waits in ContainerCreating with a FailedMount event, and starts once it is created.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.fakekube import FakeCluster

pytestmark = pytest.mark.cluster
NS = "gadget"


@pytest.fixture
def cluster(fake_cluster: FakeCluster) -> FakeCluster:
    fake_cluster.create_namespace(NS, privileged=True)
    return fake_cluster


def configmap(cluster: FakeCluster, name: str, data: dict[str, str],
              binary: dict[str, bytes] | None = None) -> None:
    body: dict[str, Any] = {"metadata": {"name": name}, "data": data}
    if binary:
        body["binaryData"] = {k: base64.b64encode(v).decode() for k, v in binary.items()}
    cluster.core_v1().create_namespaced_config_map(NS, body)


def pod_with_volume(name: str, script: str, mount: str, source: dict[str, Any],
                    image: str = "busybox:1.36", node: str = "node-a") -> dict[str, Any]:
    return {"metadata": {"name": name},
            "spec": {"nodeName": node, "restartPolicy": "Never",
                     "automountServiceAccountToken": False,
                     "containers": [{"name": "main", "image": image,
                                     "command": ["sh", "-c", script],
                                     "volumeMounts": [{"name": "files", "mountPath": mount,
                                                       "readOnly": True}]}],
                     "volumes": [{"name": "files", "configMap": source}]}}


def finished_log(cluster: FakeCluster, name: str) -> str:
    pod = cluster.wait_for_phase(NS, name, "Succeeded", "Failed", timeout=60)
    log = cluster.pod_log(NS, name)
    assert pod["status"]["phase"] == "Succeeded", log
    return log


def test_process_container_sees_the_files_read_only_at_its_mount_path(
        cluster: FakeCluster) -> None:
    configmap(cluster, "files", {"gadget.yaml": "name: x\n"}, {"program.bpf.o": b"\x7fELF\0\1"})
    base = Path(f"/run/fakekube-test-{secrets.token_hex(4)}")
    mount = base / "gadget"
    script = (f"cat {mount}/gadget.yaml; od -An -tx1 {mount}/program.bpf.o; "
              f"stat -c '%n %a' {mount}/gadget.yaml; "
              f"touch {mount}/new 2>/dev/null && echo writable || echo read-only; "
              f"ls {mount}")
    cluster.core_v1().create_namespaced_pod(
        NS, pod_with_volume("reader", script, str(mount), {"name": "files"}))
    log = finished_log(cluster, "reader")
    assert "name: x" in log and "7f 45 4c 46 00 01" in log, log
    assert f"{mount}/gadget.yaml 644" in log and "read-only" in log, log
    assert sorted(log.split()[-2:]) == ["gadget.yaml", "program.bpf.o"], log
    cluster.wait_for(lambda: not base.exists() or None, 30,
                     "the mount point created for the pod removed after it")


def test_items_default_mode_and_an_existing_mount_point(cluster: FakeCluster,
                                                        tmp_path: Path) -> None:
    configmap(cluster, "files", {"a": "alpha", "b": "beta"})
    mount = tmp_path / "existing"
    mount.mkdir()
    (mount / "host-file").write_text("host")
    source = {"name": "files", "defaultMode": 0o600,
              "items": [{"key": "a", "path": "sub/first"}, {"key": "b", "path": "second",
                                                             "mode": 0o640}]}
    script = (f"cat {mount}/sub/first; echo; stat -c '%n %a' {mount}/sub/first {mount}/second; "
              f"ls {mount}")
    cluster.core_v1().create_namespaced_pod(NS, pod_with_volume("items", script, str(mount),
                                                                source))
    log = finished_log(cluster, "items")
    assert "alpha" in log and f"{mount}/sub/first 600" in log and f"{mount}/second 640" in log
    assert "host-file" not in log, "the volume hides what the host has there"
    assert (mount / "host-file").read_text() == "host", "the host's view is unchanged"
    assert sorted(p.name for p in mount.iterdir()) == ["host-file"]


def test_missing_configmap_waits_with_failed_mount_then_starts(cluster: FakeCluster) -> None:
    mount = Path(f"/run/fakekube-test-{secrets.token_hex(4)}")
    cluster.core_v1().create_namespaced_pod(
        NS, pod_with_volume("waiter", f"cat {mount}/k", str(mount), {"name": "late"}))
    pod = cluster.wait_for(
        lambda: next((e for e in cluster.events(NS, "waiter") if e["reason"] == "FailedMount"),
                     None), 30, "a FailedMount event")
    assert pod["type"] == "Warning" and pod["source"]["component"] == "kubelet"
    assert pod["message"] == ('MountVolume.SetUp failed for volume "files" : '
                              'configmap "late" not found')
    current = cluster.get_pod(NS, "waiter")
    assert current is not None and current["status"]["phase"] == "Pending"
    waiting = current["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "ContainerCreating"
    configmap(cluster, "late", {"k": "arrived"})
    assert "arrived" in finished_log(cluster, "waiter")
    cluster.wait_for(lambda: not mount.exists() or None, 30, "the mount point removed")


def test_optional_and_missing_key(cluster: FakeCluster) -> None:
    configmap(cluster, "files", {"a": "1"})
    source = {"name": "files", "items": [{"key": "nope", "path": "x"}]}
    cluster.core_v1().create_namespaced_pod(
        NS, pod_with_volume("badkey", "true", "/run/fakekube-unused", source))
    event = cluster.wait_for(
        lambda: next((e for e in cluster.events(NS, "badkey") if e["reason"] == "FailedMount"),
                     None), 30, "a FailedMount event")
    assert event["message"].endswith("configmap references non-existent config key: nope")
    cluster.core_v1().delete_namespaced_pod("badkey", NS, grace_period_seconds=0)
    cluster.wait_gone(NS, "badkey")

    optional = {"name": "absent", "optional": True}
    cluster.core_v1().create_namespaced_pod(
        NS, pod_with_volume("optional", "ls -A /run/fakekube-opt | wc -l", "/run/fakekube-opt",
                            optional))
    assert finished_log(cluster, "optional").split() == ["0"]


def _tiny_rootfs(root: Path) -> None:
    """A root filesystem holding sh, cat and stat with their libraries (from this machine)."""
    for tool in ("sh", "cat", "stat", "touch"):
        path = shutil.which(tool)
        assert path is not None
        real = Path(os.path.realpath(path))
        for need in [real, *_libraries(real)]:
            dest = root / str(need).lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(need, dest)
        (root / "bin").mkdir(exist_ok=True)
        if not (root / "bin" / tool).exists():
            shutil.copy2(real, root / "bin" / tool)
    for sub in ("proc", "dev", "sys", "tmp"):
        (root / sub).mkdir(exist_ok=True)


def _libraries(binary: Path) -> list[Path]:
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
    libs = []
    for line in out.stdout.splitlines():
        for part in line.split():
            if part.startswith("/"):
                libs.append(Path(part))
    return libs


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("runc"),
                    reason="runc containers need root and runc")
def test_runc_container_gets_a_read_only_bind_mount(cluster: FakeCluster,
                                                    tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    _tiny_rootfs(rootfs)
    cluster.map_oci_image("example.com/tiny:1", str(rootfs),
                          {"config": {"Env": ["PATH=/bin:/usr/bin"]}})
    configmap(cluster, "files", {"gadget.yaml": "name: in-runc\n"})
    script = ("cat /etc/gadget/gadget.yaml; stat -c '%a' /etc/gadget/gadget.yaml; "
              "touch /etc/gadget/new 2>/dev/null && echo writable || echo read-only")
    body = pod_with_volume("boxed", script, "/etc/gadget", {"name": "files"},
                           image="example.com/tiny:1")
    body["spec"]["containers"][0]["securityContext"] = {"capabilities": {"drop": ["ALL"]}}
    cluster.core_v1().create_namespaced_pod(NS, body)
    log = finished_log(cluster, "boxed")
    assert "name: in-runc" in log and "644" in log and "read-only" in log, log
    assert not (rootfs / "etc" / "gadget" / "new").exists()

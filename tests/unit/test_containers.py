"""ContainerTable, runtime state readers and enrichment on a fake /proc and fake state dirs."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import pytest

from node_runner.container_info import Container, ContainerMetadata, enrichment_fields
from node_runner.containers import AmbiguousContainerError, ContainerSelectorError, ContainerTable
from node_runner.gadget.schema import ENRICHMENT_FIELDS
from node_runner.mntns import host_mntns, mntns_of
from node_runner.runtime_state import (
    RuntimeInfo,
    RuntimePaths,
    read_containerd,
    read_crio,
    read_docker,
    read_podman,
    read_runtime_info,
)

HOST_NS = 4026531840
CID_A = "aaaaaaaaaaaa1111" + "0" * 48
CID_B = "aaaaaaaaaaaa2222" + "0" * 48
CID_C = "cccccccccccc" + "1" * 52
UID = "0b6d1d2e-2f8a-4c1e-9d3b-5a6f7e8d9c0b"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def add_proc(proc: Path, pid: int, mntns: int, cgroup_v2: str) -> None:
    (proc / str(pid) / "ns").mkdir(parents=True)
    os.symlink(f"mnt:[{mntns}]", proc / str(pid) / "ns" / "mnt")
    (proc / str(pid) / "cgroup").write_text(f"1:name=systemd:/\n0::{cgroup_v2}\n")


def kube_path(cid: str) -> str:
    uid = UID.replace("-", "_")
    return f"/kubepods.slice/kubepods-pod{uid}.slice/cri-containerd-{cid}.scope"


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    root.mkdir()
    add_proc(root, 1, HOST_NS, "/init.scope")
    add_proc(root, 50, HOST_NS, "/system.slice/containerd.service")
    add_proc(root, 120, 4026532001, kube_path(CID_A))
    add_proc(root, 100, 4026532001, kube_path(CID_A))
    add_proc(root, 130, 4026532002, f"/docker/{CID_B}")
    (root / "self").mkdir()  # not a pid
    (root / "77").mkdir()  # vanished mid-scan: no files left
    return root


def table(
    proc: Path,
    clock: FakeClock | None = None,
    extra_metadata: Mapping[str, ContainerMetadata] | None = None,
    min_rescan_interval: float = 1.0,
    negative_recheck_interval: float = 10.0,
) -> ContainerTable:
    return ContainerTable(
        str(proc),
        RuntimePaths.under(str(proc.parent / "host")),
        extra_metadata=extra_metadata,
        min_rescan_interval=min_rescan_interval,
        negative_recheck_interval=negative_recheck_interval,
        clock=clock or FakeClock(),
    )


def test_mntns_of_reads_the_namespace_link(proc: Path) -> None:
    assert mntns_of(120, str(proc)) == 4026532001
    assert host_mntns(str(proc)) == HOST_NS
    with pytest.raises(OSError):
        mntns_of(77, str(proc))


def test_host_mntns_falls_back_to_kthreadd(tmp_path: Path) -> None:
    add_proc(tmp_path, 2, HOST_NS, "/")
    assert host_mntns(str(tmp_path)) == HOST_NS
    assert host_mntns(str(tmp_path / "missing")) is None


def test_table_maps_mntns_to_containers(proc: Path) -> None:
    t = table(proc)
    a = t.lookup_mntns(4026532001)
    b = t.lookup_mntns(4026532002)
    assert a is not None and b is not None
    assert (a.container_id, a.runtime, a.pid, a.pod_uid) == (CID_A, "containerd", 100, UID)
    assert (b.container_id, b.runtime, b.pid, b.pod_uid) == (CID_B, "docker", 130, "")
    assert t.lookup_mntns(HOST_NS) is None
    assert [c.container_id for c in t.containers()] == [CID_A, CID_B]


def test_container_with_several_mount_namespaces(proc: Path) -> None:
    add_proc(proc, 125, 4026532009, kube_path(CID_A))  # a process that unshared its mounts
    t = table(proc)
    a = t.lookup_mntns(4026532009)
    assert a is not None and a.container_id == CID_A and a.mntns_id == 4026532001
    assert t.mntns_ids(a) == {4026532001, 4026532009}


def test_host_mntns_is_never_a_container(proc: Path) -> None:
    add_proc(proc, 5, HOST_NS, f"/docker/{CID_C}")  # nsenter -t 1 -m from a container
    t = table(proc)
    assert t.lookup_mntns(HOST_NS) is None
    assert t.resolve(container_ids=[CID_C]) == []


def test_unknown_mntns_rescans_at_most_once_per_interval(proc: Path) -> None:
    clock = FakeClock()
    t = table(proc, clock, min_rescan_interval=1.0)
    scans = t.scans
    add_proc(proc, 200, 4026532003, f"/docker/{CID_C}")
    assert t.lookup_mntns(4026532003) is None  # the table is younger than the interval
    assert t.scans == scans
    clock.now += 1.5
    found = t.lookup_mntns(4026532003)
    assert found is not None and found.container_id == CID_C
    assert t.scans == scans + 1
    for _ in range(1000):  # a flood of misses costs no more scans until the interval passes
        assert t.lookup_mntns(4026539999) is None
    assert t.scans == scans + 1
    clock.now += 1.5
    assert t.lookup_mntns(4026539999) is None
    assert t.scans == scans + 2


def test_known_non_container_namespaces_are_rechecked_slowly(proc: Path) -> None:
    add_proc(proc, 60, 4026532050, "/system.slice/chronyd.service")  # PrivateTmp service
    clock = FakeClock()
    t = table(proc, clock, min_rescan_interval=1.0, negative_recheck_interval=10.0)
    scans = t.scans
    clock.now += 5
    assert t.lookup_mntns(4026532050) is None
    assert t.lookup_mntns(HOST_NS) is None
    assert t.scans == scans
    clock.now += 6
    assert t.lookup_mntns(4026532050) is None
    assert t.scans == scans + 1


def test_resolve_by_id_prefix_and_name(proc: Path) -> None:
    t = table(proc)
    assert [c.container_id for c in t.resolve(container_ids=[CID_A])] == [CID_A]
    assert [c.container_id for c in t.resolve(container_ids=[CID_B[:16]])] == [CID_B]
    assert [c.container_id for c in t.resolve(container_ids=["docker://" + CID_B])] == [CID_B]
    with pytest.raises(AmbiguousContainerError, match="matches 2 containers"):
        t.resolve(container_ids=[CID_A[:12]])
    with pytest.raises(ContainerSelectorError, match="at least 12"):
        t.resolve(container_ids=[CID_A[:8]])
    with pytest.raises(ContainerSelectorError, match="not a hex"):
        t.resolve(container_ids=["nginx-container"])
    assert t.resolve(container_ids=["f" * 64]) == []


def test_resolve_by_name_uses_state_and_extra_metadata(proc: Path) -> None:
    t = table(
        proc,
        extra_metadata={
            UID: {"namespace": "shop", "pod_name": "cart-0", "pod_labels": {"app": "cart"}},
            "containerd://" + CID_A: {"container_name": "cart", "owner_kind": "StatefulSet"},
            CID_B: {"name": "registry"},
        },
    )
    assert [c.container_id for c in t.resolve(names=["cart"])] == [CID_A]
    assert [c.container_id for c in t.resolve(names=["registry", "cart"])] == [CID_A, CID_B]
    assert t.resolve(names=["nope"]) == []
    a = t.resolve(names=["cart"])[0]
    assert (a.k8s_namespace, a.k8s_pod_name, a.k8s_owner_kind) == ("shop", "cart-0", "StatefulSet")
    assert a.k8s_pod_labels == (("app", "cart"),)


def test_resolve_rescans_once_when_something_is_missing(proc: Path) -> None:
    clock = FakeClock()
    t = table(proc, clock)
    add_proc(proc, 300, 4026532004, f"/docker/{CID_C}")
    assert t.resolve(container_ids=[CID_C]) == []  # fresh table: no rescan
    clock.now += 2
    scans = t.scans
    assert [c.pid for c in t.resolve(container_ids=[CID_C])] == [300]
    assert t.scans == scans + 1


def test_enrichment_fields() -> None:
    host = enrichment_fields(None, "worker-1")
    assert tuple(host) == ENRICHMENT_FIELDS
    assert host["k8s.node"] == "worker-1"
    assert all(v == "" for k, v in host.items() if k != "k8s.node")
    c = Container(
        container_id=CID_A,
        runtime="containerd",
        mntns_id=1,
        pid=42,
        name="cart",
        image="ghcr.io/shop/cart:1.2",
        k8s_namespace="shop",
        k8s_pod_name="cart-0",
        k8s_container_name="cart",
        k8s_pod_labels=(("app", "cart"), ("tier", "web")),
        k8s_owner_kind="StatefulSet",
        k8s_owner_name="cart",
    )
    fields = enrichment_fields(c, "worker-1")
    assert tuple(fields) == ENRICHMENT_FIELDS
    assert fields["k8s.podLabels"] == "app=cart,tier=web"
    assert fields["runtime.containerPid"] == "42"
    assert fields["runtime.runtimeName"] == "containerd"
    assert fields["runtime.containerImageName"] == "ghcr.io/shop/cart:1.2"
    assert fields["k8s.owner.kind"] == "StatefulSet"


# --- runtime state files, shaped like the ones found on real nodes -----------------------


def write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))


@pytest.fixture
def paths(tmp_path: Path) -> RuntimePaths:
    return RuntimePaths.under(str(tmp_path))


def test_runtime_paths_under() -> None:
    paths = RuntimePaths.under("/host")
    assert paths.containerd_state == "/host/run/containerd"
    assert paths.docker_root == "/host/var/lib/docker"


def test_containerd_bundle(paths: RuntimePaths) -> None:
    bundle = Path(paths.containerd_state, "io.containerd.runtime.v2.task", "k8s.io", CID_A)
    write(
        bundle / "config.json",
        {
            "ociVersion": "1.1.0",
            "process": {"args": ["/cart"]},
            "annotations": {
                "io.kubernetes.cri.container-name": "cart",
                "io.kubernetes.cri.container-type": "container",
                "io.kubernetes.cri.image-name": "ghcr.io/shop/cart:1.2",
                "io.kubernetes.cri.sandbox-id": CID_B,
                "io.kubernetes.cri.sandbox-name": "cart-0",
                "io.kubernetes.cri.sandbox-namespace": "shop",
                "io.kubernetes.cri.sandbox-uid": UID,
            },
        },
    )
    assert read_containerd(CID_A, paths) == RuntimeInfo(
        name="cart",
        image="ghcr.io/shop/cart:1.2",
        k8s_namespace="shop",
        k8s_pod_name="cart-0",
        k8s_container_name="cart",
        k8s_pod_uid=UID,
    )
    assert read_containerd(CID_B, paths) is None


def test_crio_bundle_with_pod_labels_from_the_infra_container(paths: RuntimePaths) -> None:
    run = Path(paths.containers_run, "overlay-containers")
    k8s = {
        "io.kubernetes.container.name": "cart",
        "io.kubernetes.pod.name": "cart-0",
        "io.kubernetes.pod.namespace": "shop",
        "io.kubernetes.pod.uid": UID,
    }
    container = {
        **k8s,
        "io.kubernetes.cri-o.ContainerType": "container",
        "io.kubernetes.cri-o.ImageName": "ghcr.io/shop/cart:1.2",
        "io.kubernetes.cri-o.SandboxID": CID_B,
        "io.kubernetes.cri-o.Labels": json.dumps(k8s),
    }
    infra_labels = {**k8s, "app": "cart", "io.kubernetes.container.name": "POD"}
    infra = {**k8s, "io.kubernetes.cri-o.Labels": json.dumps(infra_labels)}
    write(run / CID_A / "userdata" / "config.json", {"annotations": container})
    write(run / CID_B / "userdata" / "config.json", {"annotations": infra})
    info = read_crio(CID_A, paths)
    assert info is not None
    assert (info.k8s_container_name, info.k8s_pod_name, info.k8s_namespace) == (
        "cart",
        "cart-0",
        "shop",
    )
    assert info.image == "ghcr.io/shop/cart:1.2"
    assert info.k8s_pod_labels == (("app", "cart"),)


def test_docker_config_v2_under_dockershim(paths: RuntimePaths) -> None:
    root = Path(paths.docker_root, "containers")
    k8s = {"io.kubernetes.pod.name": "cart-0", "io.kubernetes.pod.namespace": "shop"}
    write(
        root / CID_A / "config.v2.json",
        {
            "ID": CID_A,
            "Name": "/k8s_cart_cart-0_shop_" + UID + "_0",
            "Config": {
                "Image": "ghcr.io/shop/cart:1.2",
                "Labels": {
                    **k8s,
                    "io.kubernetes.container.name": "cart",
                    "io.kubernetes.docker.type": "container",
                    "io.kubernetes.sandbox.id": CID_B,
                },
            },
        },
    )
    sandbox_labels = {
        **k8s,
        "app": "cart",
        "annotation.kubernetes.io/config.source": "api",
        "io.kubernetes.docker.type": "podsandbox",
    }
    write(root / CID_B / "config.v2.json", {"Config": {"Labels": sandbox_labels}})
    info = read_docker(CID_A, paths)
    assert info is not None
    assert info.name.startswith("k8s_cart_cart-0_shop_")
    assert (info.k8s_container_name, info.image) == ("cart", "ghcr.io/shop/cart:1.2")
    assert info.k8s_pod_labels == (("app", "cart"),)
    # cgroupfs gives containerd and dockershim the same cgroup shape: the state decides
    assert read_runtime_info("containerd", CID_A, paths) == ("docker", info)


def test_podman_containers_json(paths: RuntimePaths) -> None:
    storage = Path(paths.containers_storage, "overlay-containers")
    metadata = {"image-name": "docker.io/library/redis:7", "name": "cache", "created-at": 1}
    entries = [{"id": CID_A, "names": ["cache"], "metadata": json.dumps(metadata)}]
    write(storage / "containers.json", entries)
    write(storage / CID_A / "userdata" / "config.json", {"annotations": {}})
    info = read_podman(CID_A, paths)
    assert info is not None and (info.name, info.image) == ("cache", "docker.io/library/redis:7")
    assert read_podman(CID_B, paths) is None


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2]", '{"annotations": 7}', "\x00"])
def test_broken_state_files_are_unknown_not_errors(paths: RuntimePaths, content: str) -> None:
    write(
        Path(paths.containerd_state, "io.containerd.runtime.v2.task", "ns", CID_A, "config.json"),
        content,
    )
    write(
        Path(paths.containers_run, "overlay-containers", CID_A, "userdata", "config.json"), content
    )
    write(Path(paths.docker_root, "containers", CID_A, "config.v2.json"), content)
    write(Path(paths.containers_storage, "overlay-containers", "containers.json"), content)
    for runtime in ("containerd", "cri-o", "docker", "podman"):
        _, info = read_runtime_info(runtime, CID_A, paths)
        assert info is None or info == RuntimeInfo()


def test_a_gone_container_is_named_until_its_namespace_id_is_held_again(proc: Path) -> None:
    """A top's row is read up to an interval after its samples: a container that ended in
    between is still named (it named no container, which a cluster client keeps), and
    forgotten once its namespace id, reused, is held by another process."""
    clock = FakeClock()
    t = table(proc, clock)
    assert t.lookup_mntns(4026532002).container_id == CID_B  # type: ignore[union-attr]
    for name in ("cgroup", "ns/mnt", "ns"):
        path = proc / "130" / name
        path.rmdir() if name == "ns" else path.unlink()
    (proc / "130").rmdir()
    clock.now += 2
    t.refresh()
    assert CID_B not in [c.container_id for c in t.containers()]
    gone = t.lookup_mntns(4026532002)
    assert gone is not None and gone.container_id == CID_B
    assert enrichment_fields(gone, "n")["runtime.containerId"] == CID_B
    add_proc(proc, 140, 4026532002, "/user.slice/session-1.scope")  # the id, reused by the host
    clock.now += 2
    t.refresh()
    assert t.lookup_mntns(4026532002) is None

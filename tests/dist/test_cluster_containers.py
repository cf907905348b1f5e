"""A cluster run whose runner pod is a real OCI container: the test kubelet runs it with runc.

The runner image (built once per session) is mapped into fakekube as an unpacked OCI image, so
the kubelet translates the runner pod the client creates (oci_spec) and runs it with runc: the
runner traces from inside a container with exactly the pod's capabilities, the host's PID
namespace and the read-only runtime-state mounts, and still attributes a target pod's exec to
that pod. Opt-in with the image build: `make runner-image-test`.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

import pytest

from kubectl_gadget.cluster.runner_pod import CAPABILITIES, DEFAULT_IMAGE
from tests.cluster.fakekube.oci_spec import CAP_ORDER, grantable
from tests.cluster.product_fixtures import GadgetCluster
from tests.conftest import needs_root_btf
from tests.runner_image import amd64_image, needs_mmdebstrap

pytestmark = [pytest.mark.runner_image, needs_mmdebstrap, needs_root_btf,
              pytest.mark.skipif(not shutil.which("runc"),
                                 reason="runc not installed (apt-get install runc)"),
              pytest.mark.usefixtures("no_runner_leftovers")]


def _container_processes(pod_uid: str) -> list[int]:
    """Processes in the runner pod's kubelet-like cgroup (kubepods/besteffort/pod<uid>/...)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cgroup = Path(f"/proc/{entry}/cgroup").read_text()
            except OSError:
                continue
            if f"/kubepods/besteffort/pod{pod_uid}/" in cgroup:
                pids.append(int(entry))
    return pids


def _cap_eff(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith("CapEff:")), 16)


def test_runner_pod_as_runc_container_traces_a_target_pod(
        make_gadget_cluster: object, runner_layout: Path, runner_rootfs: Path) -> None:
    gc: GadgetCluster = make_gadget_cluster(nodes=("node-a",))  # type: ignore[operator]
    _, image_config, _ = amd64_image(runner_layout)
    gc.cluster.map_oci_image(DEFAULT_IMAGE, str(runner_rootfs), image_config)
    gc.target("cart", node="node-a")
    marker = f"mark-{secrets.token_hex(4)}"

    client = gc.run_gadget("-n", "shop", "-l", "app=cart", "--timeout", "10",
                           gadget="trace_exec")
    session = client.session
    pods = gc.wait_runners_streaming(session, ["node-a"], timeout=60)
    uid = pods["node-a"]["metadata"]["uid"]
    pids = _container_processes(uid)
    assert pids, "the runner runs inside the pod's container cgroup"
    wanted = sum(1 << CAP_ORDER.index(c) for c in CAPABILITIES if c in grantable())
    assert {_cap_eff(pid) for pid in pids} == {wanted}, "exactly the pod's capabilities"
    assert all(os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
               for pid in pids), "its own mount namespace"

    gc.workloads.exec("shop", "cart", ["/bin/echo", marker])
    client.wait_events(lambda ev: any(str(e.get("args", "")).endswith(marker) for e in ev),
                       what=f"the exec of echo {marker} in pod cart")
    assert client.wait() == 0, client.stderr
    (event,) = [e for e in client.events() if str(e.get("args", "")).endswith(marker)
                and e.get("proc.comm") == "echo"]
    assert (event["k8s.node"], event["k8s.namespace"], event["k8s.podName"]) == (
        "node-a", "shop", "cart")
    assert _container_processes(uid) == [], "the container is gone after the run"

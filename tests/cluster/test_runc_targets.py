"""RuncWorkloads: target pods as real runc containers, laid out as containerd does on a node.

No API server here: a pod object goes straight to the hook, as the fake kubelet hands it. The
container's processes must sit in the kubelet's cgroupfs-driver cgroup in every hierarchy, in
their own mount and PID namespaces and the pod sandbox's network, IPC and UTS ones; the bundle
with the CRI annotations must be where containerd keeps it, read back by the runner's own
readers; `runc exec` must run inside; after `stop` nothing of the pod may remain. The last test
runs a real local trace_exec whose pod names can only come from that runtime state.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node_runner.cgroups import container_of_pid
from node_runner.runtime_state import RuntimePaths, read_containerd
from tests.cluster.runc_container import TASKS
from tests.cluster.runc_targets import RuncError, RuncWorkloads, runc_available

ROOT = Path(__file__).resolve().parents[2]
TRACE_EXEC = ROOT / "build" / "gadgets" / "trace_exec"


@pytest.fixture
def workloads() -> Iterator[RuncWorkloads]:
    if os.geteuid() != 0:
        pytest.skip("runc containers need root")
    if not runc_available():
        pytest.skip("runc is not installed")
    w = RuncWorkloads()
    try:
        yield w
    finally:
        w.close()


def pod(name: str, containers: tuple[str, ...] = ("app",), **spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "shop", "name": name, "uid": str(uuid.uuid4())},
            "spec": {"containers": [{"name": c, "image": f"registry.example/{c}:1"}
                                    for c in containers], **spec}}


def ns(pid: int | str, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def bundle_dir(cid: str) -> Path:
    return Path(RuntimePaths().containerd_state, *TASKS, cid)


def test_containers_are_runc_containers_in_kubelet_cgroups(workloads: RuncWorkloads) -> None:
    p = pod("cart-a", ("app", "sidecar"))
    uid = p["metadata"]["uid"]
    ids = workloads.start(p)
    app, side = (workloads.container("shop", "cart-a", c) for c in ("app", "sidecar"))
    assert ids == {"app": f"containerd://{app.container_id}",
                   "sidecar": f"containerd://{side.container_id}"}
    for c in (app, side):
        want = f"/kubepods/besteffort/pod{uid}/{c.container_id}"
        with open(f"/proc/{c.pid}/cgroup", encoding="utf-8") as file:
            lines = file.read().splitlines()
        assert lines and all(line.split(":", 2)[2] == want for line in lines), lines
        assert os.path.isdir(c.cgroup_path) and c.cgroup_path.endswith(want)
        assert container_of_pid(c.pid) == ("containerd", c.container_id, uid)
        assert c.mntns_id == os.stat(f"/proc/{c.pid}/ns/mnt").st_ino
        # Own mount and PID namespaces; the pod's network, IPC and UTS namespaces.
        for kind in ("mnt", "pid", "net", "ipc", "uts"):
            assert ns(c.pid, kind) != ns("self", kind), kind
    for kind in ("net", "ipc", "uts"):
        assert ns(app.pid, kind) == ns(side.pid, kind), kind
    for kind in ("mnt", "pid"):
        assert ns(app.pid, kind) != ns(side.pid, kind), kind

    # The bundle where containerd keeps it, read by the runner's own reader.
    config = json.loads((bundle_dir(app.container_id) / "config.json").read_text())
    notes = config["annotations"]
    assert notes["io.kubernetes.cri.container-type"] == "container"
    assert notes["io.kubernetes.cri.sandbox-id"] != app.container_id
    assert config["linux"]["cgroupsPath"] == f"/kubepods/besteffort/pod{uid}/{app.container_id}"
    info = read_containerd(side.container_id, RuntimePaths())
    assert info is not None
    assert (info.k8s_namespace, info.k8s_pod_name, info.k8s_container_name, info.k8s_pod_uid,
            info.image) == ("shop", "cart-a", "sidecar", uid, "registry.example/sidecar:1")
    sandbox = json.loads((bundle_dir(notes["io.kubernetes.cri.sandbox-id"]) / "config.json")
                         .read_text())["annotations"]
    assert sandbox["io.kubernetes.cri.container-type"] == "sandbox"
    assert sandbox["io.kubernetes.cri.sandbox-uid"] == uid


def test_exec_runs_inside_and_stop_leaves_nothing(workloads: RuncWorkloads) -> None:
    p = pod("cart-a")
    workloads.start(p)
    app = workloads.container("shop", "cart-a")
    done = app.exec(["sh", "-c", "cat /proc/1/comm /etc/hostname; readlink /proc/self/ns/mnt"])
    assert done.stdout.decode().split() == ["sleep", "cart-a", ns(app.pid, "mnt")]
    assert sys.executable.encode() in app.exec([sys.executable, "-c",
                                                "import sys; print(sys.executable)"]).stdout
    sleeper = app.popen(["sleep", "1000"])  # the host pid of the command, not of runc
    assert ns(sleeper.pid, "mnt") == ns(app.pid, "mnt")
    assert container_of_pid(sleeper.pid) == container_of_pid(app.pid)
    assert app.popen(["sh", "-c", "exit 7"]).wait(60) == 7
    with pytest.raises(subprocess.CalledProcessError):
        app.exec(["cat", "/no/such/file"])

    sandbox_id = json.loads((bundle_dir(app.container_id) / "config.json").read_text())[
        "annotations"]["io.kubernetes.cri.sandbox-id"]
    cgroups = [os.path.dirname(app.cgroup_path), *app.cgroup_paths]
    workloads.stop(p)
    assert ("shop", "cart-a") not in workloads.by_pod
    for pid in (app.pid, sleeper.pid):
        assert not os.path.exists(f"/proc/{pid}"), pid
    assert sleeper.poll() is not None and app.poll() is not None
    for path in (bundle_dir(app.container_id), bundle_dir(sandbox_id), *cgroups):
        assert not os.path.exists(path), path
    listed = subprocess.run(["runc", "--root", str(workloads.runc_root), "list", "-q"],
                            capture_output=True, text=True, check=True).stdout
    assert listed.strip() == ""


def test_host_network_pod_and_host_path_volumes(workloads: RuncWorkloads,
                                                tmp_path: Path) -> None:
    (tmp_path / "in").write_text("from the host\n")
    p = pod("web-a", hostNetwork=True, volumes=[{"name": "data", "hostPath": {
        "path": str(tmp_path)}}])
    p["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    workloads.start(p)
    app = workloads.container("shop", "web-a")
    assert ns(app.pid, "net") == ns("self", "net")
    assert app.exec(["cat", "/data/in"]).stdout == b"from the host\n"
    app.exec(["sh", "-c", "echo from the pod > /data/out"])
    assert (tmp_path / "out").read_text() == "from the pod\n"


def test_a_pod_that_cannot_start_leaves_nothing(workloads: RuncWorkloads) -> None:
    p = pod("bad", ("app", "broken"), volumes=[{"name": "v", "emptyDir": {}}])
    p["spec"]["containers"][1]["volumeMounts"] = [{"name": "v", "mountPath": "/v"}]
    tasks = Path(RuntimePaths().containerd_state, *TASKS)
    before = set(os.listdir(tasks)) if tasks.is_dir() else set()
    with pytest.raises(RuncError, match="only hostPath volumes"):
        workloads.start(p)
    after = set(os.listdir(tasks)) if tasks.is_dir() else set()
    assert after <= before
    assert not [h for h in workloads.hierarchies
                if os.path.exists(f"{h}/kubepods/besteffort/pod{p['metadata']['uid']}")]


def test_a_local_run_names_the_pod_from_runtime_state(workloads: RuncWorkloads) -> None:
    """`kubectl gadget run --local` gets no names from a client: the pod, namespace and
    container come from the runc container's cgroup and its containerd bundle."""
    if not (TRACE_EXEC / "program.bpf.o").exists():
        pytest.skip("build/gadgets/trace_exec is not built: run `make gadgets`")
    workloads.start(pod("cart-a", ("app", "sidecar")))
    side = workloads.container("shop", "cart-a", "sidecar")
    client = subprocess.Popen(
        [sys.executable, "-m", "kubectl_gadget", "run", str(TRACE_EXEC), "--local", "-o",
         "json", "--container-id", side.container_id, "--timeout", "120"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert client.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(x) for x in client.stdout or ()],
                              daemon=True)
    reader.start()
    try:
        found = None
        deadline = time.monotonic() + 120
        while found is None:  # exec until the tracer, once attached, reports one
            if time.monotonic() > deadline or client.poll() is not None:
                client.kill()
                pytest.fail(f"no event (rc={client.wait()}): {client.communicate()[1]}")
            side.popen(["/bin/echo", "local-mark"], stdout=subprocess.DEVNULL).wait(60)
            with contextlib.suppress(queue.Empty):
                while found is None:
                    event = json.loads(lines.get(timeout=0.5))
                    if "local-mark" in str(event.get("args")):
                        found = event
        assert (found["k8s"]["namespace"], found["k8s"]["podName"],
                found["k8s"]["containerName"]) == ("shop", "cart-a", "sidecar"), found
        assert found["runtime"]["containerId"] == side.container_id
    finally:
        client.kill()
        client.communicate()
        reader.join(10)

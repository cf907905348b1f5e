"""`kubectl gadget run ./mygadget` on a cluster: the directory's files go in a ConfigMap.

No node has the client's path, so the client builds the directory here, ships its files in one
ConfigMap per session (our labels) mounted read-only into every runner pod, and deletes it
after the pods, on Ctrl-C too; `gc` takes one a killed client left. Before anything is
created: nodes of another architecture, a gadget too big for a ConfigMap and a user who may
not create ConfigMaps each give one clear message. The gadgets here are copies of in-tree
ones under other names, so the runner image's own copies cannot stand in for them.
"""

from __future__ import annotations

import base64
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from kubectl_gadget.cluster.gadget_files import MOUNT_PATH
from kubectl_gadget.cluster.runner_pod import (
    COMPONENT_LABEL,
    CREATED_AT,
    DEADLINE,
    MANAGED_BY,
    MANAGER,
    SESSION_LABEL,
    rfc3339,
)
from tests.cluster.product_fixtures import GADGETS, ROOT, RUNNER_NAMESPACE, GadgetCluster

pytestmark = pytest.mark.usefixtures("no_runner_leftovers")


def configmaps(gc: GadgetCluster) -> list[dict[str, Any]]:
    return gc.store.list("configmaps", RUNNER_NAMESPACE)[0]


def echo_events(events: list[dict[str, Any]], marker: str) -> list[dict[str, Any]]:
    return [e for e in events if str(e.get("args", "")).split()[-1:] == [marker]]


@pytest.fixture
def built_copy(tmp_path: Path) -> Path:
    """build/gadgets/trace_exec as `my_exec`: a built directory that is no in-tree name."""
    out = tmp_path / "my_exec"
    shutil.copytree(GADGETS / "trace_exec", out)
    return out


def test_built_directory_runs_from_its_configmap(gadget_cluster: GadgetCluster,
                                                 built_copy: Path) -> None:
    gc = gadget_cluster
    gc.target("cart-a", node="node-a")
    gc.target("cart-b", node="node-b")
    client = gc.run_gadget("-n", "shop", "-l", "app=cart", "--timeout", "120",
                           gadget=str(built_copy))
    session = client.session
    pods = gc.wait_runners_streaming(session, ["node-a", "node-b"])

    [cm] = configmaps(gc)
    meta = cm["metadata"]
    assert meta["name"] == f"gadget-{session}-files"
    assert meta["labels"][MANAGED_BY] == MANAGER and meta["labels"][SESSION_LABEL] == session
    assert meta["labels"][COMPONENT_LABEL] == "gadget-files"
    assert CREATED_AT in meta["annotations"] and DEADLINE in meta["annotations"]
    assert cm["immutable"] is True
    assert sorted(cm["binaryData"]) == ["gadget.yaml", "program.bpf.o"]
    for name, data in cm["binaryData"].items():
        assert base64.b64decode(data) == (built_copy / name).read_bytes(), name
    for pod in pods.values():
        spec = pod["spec"]
        args = spec["containers"][0]["args"]
        assert args[args.index("--gadget") + 1] == f"{MOUNT_PATH}/my_exec"
        assert str(built_copy) not in " ".join(args), "no path of the client's machine"
        assert {"name": "gadget-files", "mountPath": MOUNT_PATH, "readOnly": True} in \
            spec["containers"][0]["volumeMounts"]
        assert spec["volumes"][-1]["configMap"]["name"] == meta["name"]

    for pod in ("cart-a", "cart-b"):
        gc.workloads.exec("shop", pod, ["/bin/echo", f"shipped-{pod}"])
    client.wait_events(lambda ev: all(echo_events(ev, f"shipped-{p}") for p in
                                      ("cart-a", "cart-b")), what="events of both runners")
    gc.clear_requests()
    client.signal(signal.SIGINT)
    assert client.wait() == 0, client.stderr
    events = client.events()
    assert {e["k8s.node"] for e in echo_events(events, "shipped-cart-a")} == {"node-a"}
    assert {e["k8s.node"] for e in echo_events(events, "shipped-cart-b")} == {"node-b"}
    assert configmaps(gc) == [] and gc.runner_pods(session) == []
    deletes = [r.path for r in gc.requests("DELETE")]
    cm_delete = deletes.index(f"/api/v1/namespaces/{RUNNER_NAMESPACE}/configmaps/{meta['name']}")
    assert all(i < cm_delete for i, path in enumerate(deletes) if "/pods/" in path), deletes
    assert "note: runner pods will read" not in client.stderr


def test_source_directory_is_compiled_here_and_ctrl_c_removes_its_configmap(
        gadget_cluster: GadgetCluster, tmp_path: Path) -> None:
    gc = gadget_cluster
    src = tmp_path / "exec_copy"
    shutil.copytree(ROOT / "gadgets" / "trace_exec", src)
    gc.target("cart-a", node="node-a")
    client = gc.run_gadget("-n", "shop", "-l", "app=cart", gadget=str(src))  # no --timeout
    session = client.session
    gc.wait_runners_streaming(session, ["node-a"])
    assert [c["metadata"]["name"] for c in configmaps(gc)] == [f"gadget-{session}-files"]
    gc.workloads.exec("shop", "cart-a", ["/bin/echo", "compiled-here"])
    client.wait_events(lambda ev: bool(echo_events(ev, "compiled-here")), what="the event")
    client.signal(signal.SIGINT)
    assert client.wait() == 0, client.stderr
    assert configmaps(gc) == [] and gc.runner_pods(session) == []


def test_killed_client_leaves_a_configmap_that_gc_removes(gadget_cluster: GadgetCluster,
                                                          built_copy: Path) -> None:
    gc = gadget_cluster
    gc.target("cart-a", node="node-a")
    client = gc.run_gadget("-n", "shop", "-l", "app=cart", "--timeout", "120",
                           gadget=str(built_copy))
    session = client.session
    gc.wait_runners_streaming(session, ["node-a"])
    client.kill()  # SIGKILL: nothing cleans up
    name = f"gadget-{session}-files"
    assert [c["metadata"]["name"] for c in configmaps(gc)] == [name]

    kept = gc.command("gc")  # its pods were renewed a moment ago: the session counts as live
    assert kept.returncode == 0, kept.stderr
    assert f"keeping configmap {RUNNER_NAMESPACE}/{name}: its session is running" in kept.stderr
    done = gc.command("gc", "--all")
    assert done.returncode == 0, done.stderr
    assert f"deleted configmap {RUNNER_NAMESPACE}/{name}" in done.stdout.splitlines()
    assert configmaps(gc) == []
    gc.wait_for(lambda: not gc.runner_pods(session) or None, 60, "runner pods deleted")


def _plant(gc: GadgetCluster, name: str, session: str, created: float,
           component: str = "gadget-files") -> None:
    gc.core_v1().create_namespaced_config_map(RUNNER_NAMESPACE, {
        "metadata": {"name": name, "labels": {MANAGED_BY: MANAGER, COMPONENT_LABEL: component,
                                              SESSION_LABEL: session},
                     "annotations": {CREATED_AT: rfc3339(created),
                                     DEADLINE: rfc3339(created + 3600)}},
        "binaryData": {"program.bpf.o": base64.b64encode(b"\x7fELF").decode()}})


def test_gc_takes_orphaned_configmaps_only(gadget_cluster: GadgetCluster) -> None:
    gc = gadget_cluster
    now = time.time()
    _plant(gc, "gadget-0bad0001-files", "0bad0001", now - 600)  # no pods for 10 minutes
    _plant(gc, "gadget-0bad0002-files", "0bad0002", now - 7200)  # deadline passed
    _plant(gc, "gadget-f4e50003-files", "f4e50003", now)  # its session creates its pods now
    _plant(gc, "not-ours", "0bad0004", now - 600)  # our labels, not our name
    _plant(gc, "gadget-0bad0005-files", "0bad0005", now - 600, component="runner")

    dry = gc.command("gc", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert sorted(dry.stdout.splitlines()) == [
        f"would delete configmap {RUNNER_NAMESPACE}/gadget-0bad0001-files",
        f"would delete configmap {RUNNER_NAMESPACE}/gadget-0bad0002-files"], dry.stdout
    assert len(configmaps(gc)) == 5
    done = gc.command("gc")
    assert sorted(done.stdout.splitlines()) == [
        f"deleted configmap {RUNNER_NAMESPACE}/gadget-0bad0001-files",
        f"deleted configmap {RUNNER_NAMESPACE}/gadget-0bad0002-files"], done.stdout
    assert f"keeping configmap {RUNNER_NAMESPACE}/gadget-f4e50003-files: its session is " \
        "running" in done.stderr
    assert f"keeping configmap {RUNNER_NAMESPACE}/not-ours: labelled like ours" in done.stderr
    assert sorted(c["metadata"]["name"] for c in configmaps(gc)) == [
        "gadget-0bad0005-files", "gadget-f4e50003-files", "not-ours"]
    for cm in configmaps(gc):  # the fixture's leftover check is about the product's own
        gc.core_v1().delete_namespaced_config_map(cm["metadata"]["name"], RUNNER_NAMESPACE)


def _created_nothing(gc: GadgetCluster) -> None:
    posts = [r.path for r in gc.requests("POST") if r.query.get("dryRun") != ["All"]]
    assert not [p for p in posts if p.endswith(("/pods", "/configmaps"))], posts
    assert configmaps(gc) == [] and gc.runner_pods() == []


def test_node_of_another_architecture_is_refused_before_anything_is_created(
        gadget_cluster: GadgetCluster, built_copy: Path) -> None:
    gc = gadget_cluster
    gc.target("cart-a", node="node-a")
    gc.target("cart-b", node="node-b")

    def arm(node: dict[str, Any]) -> dict[str, Any]:
        node["status"]["nodeInfo"]["architecture"] = "arm64"
        return node

    gc.store.mutate("nodes", "", "node-b", arm)
    gc.clear_requests()
    client = gc.run_gadget("-n", "shop", "-l", "app=cart", "--timeout", "30",
                           gadget=str(built_copy))
    assert client.wait() == 1, client.stderr
    assert "node-b (arm64)" in client.stderr and "node-a" not in client.stderr.split(
        "architecture")[-1], client.stderr
    assert "kubectl gadget image build" in client.stderr and "push" in client.stderr
    assert "Traceback" not in client.stderr
    _created_nothing(gc)

    # An in-tree name is not shipped: the runner image has it for every architecture.
    intree = gc.run_gadget("-n", "shop", "-l", "app=cart", "--timeout", "30",
                           "--node", "node-a", gadget="trace_exec")
    intree.wait_stderr(r"session [0-9a-f]+: starting")
    assert configmaps(gc) == []
    intree.signal(signal.SIGINT)
    intree.wait(120)


def test_late_target_pod_on_another_architecture_gets_no_runner(
        gadget_cluster: GadgetCluster, built_copy: Path) -> None:
    gc = gadget_cluster

    def arm(node: dict[str, Any]) -> dict[str, Any]:
        node["status"]["nodeInfo"]["architecture"] = "arm64"
        return node

    gc.store.mutate("nodes", "", "node-b", arm)
    gc.target("cart-a", node="node-a")
    client = gc.run_gadget("-n", "shop", "-l", "app=cart", "--timeout", "120",
                           gadget=str(built_copy))
    session = client.session
    gc.wait_runners_streaming(session, ["node-a"])
    gc.target("cart-b", node="node-b")  # matches the run: node-b would get a runner
    client.wait_stderr(r"node node-b: no runner: gadget .* node-b \(arm64\)")
    assert [p["spec"]["nodeName"] for p in gc.runner_pods(session)] == ["node-a"]
    client.signal(signal.SIGINT)
    assert client.wait() == 0, client.stderr
    assert configmaps(gc) == []


def test_forbidden_configmaps_is_one_message_and_nothing_is_created(
        gadget_cluster: GadgetCluster, built_copy: Path) -> None:
    gc = gadget_cluster
    gc.target("cart-a", node="node-a")
    gc.deny("create", "configmaps", namespace=RUNNER_NAMESPACE)
    gc.clear_requests()
    client = gc.run_gadget("-n", "shop", "-l", "app=cart", "--timeout", "30",
                           gadget=str(built_copy))
    assert client.wait() == 1, client.stderr
    errors = [line for line in client.stderr_lines if "is forbidden" in line]
    assert len(errors) == 1, client.stderr
    assert 'cannot create resource "configmaps"' in errors[0]
    assert "configmaps create and delete in namespace gadget" in client.stderr
    assert "Traceback" not in client.stderr
    _created_nothing(gc)

    gc.clear_denials()
    gc.deny("delete", "configmaps", namespace=RUNNER_NAMESPACE)
    gc.clear_requests()
    client = gc.run_gadget("-n", "shop", "-l", "app=cart", "--timeout", "30",
                           gadget=str(built_copy))
    assert client.wait() == 1, client.stderr
    assert 'cannot delete resource "configmaps"' in client.stderr, client.stderr
    _created_nothing(gc)


def test_too_big_for_a_configmap_is_refused_before_any_api_call(
        gadget_cluster: GadgetCluster, built_copy: Path) -> None:
    gc = gadget_cluster
    gc.target("cart-a", node="node-a")
    with open(built_copy / "program.bpf.o", "ab") as obj:  # trailing bytes: still an object
        obj.write(b"\0" * (1024 * 1024))
    gc.clear_requests()
    client = gc.run_gadget("-n", "shop", "-l", "app=cart", "--timeout", "30",
                           gadget=str(built_copy))
    assert client.wait() == 1, client.stderr
    assert "too big to ship to the runner pods in a ConfigMap" in client.stderr
    assert "1 MiB" in client.stderr and "kubectl gadget image build" in client.stderr
    assert gc.requests() == []

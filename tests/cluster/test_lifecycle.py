"""Lifecycle of runner pods: client SIGINT and SIGKILL, `gc`, `list`, and the real kubectl.

- SIGINT: runners are asked to stop, their final records are still printed, every runner pod
  is deleted before the client exits, exit code 0.
- SIGKILL: the client cannot clean up; the pods remain, and the backstops end them: the
  runner stops by itself at its `--deadline` (the pod's `activeDeadlineSeconds` behind it);
  `kubectl gadget gc` then removes what is left.
- `gc` deletes only provable leftovers (our labels, a session label, the gadget-<session>-
  name) and keeps look-alikes; `--dry-run` deletes nothing.
- During a run, `kubectl gadget list` and the real `kubectl get pods -l` show the runners.
"""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import pytest

from kubectl_gadget.cluster.runner_pod import (
    COMPONENT,
    COMPONENT_LABEL,
    MANAGED_BY,
    MANAGER,
    NODE_LABEL,
    SESSION_LABEL,
)
from tests.cluster.product_fixtures import RUNNER_NAMESPACE, GadgetCluster

pytestmark = pytest.mark.usefixtures("no_runner_leftovers")


def echo_markers(events: list[dict[str, Any]], prefix: str) -> list[str]:
    return [a.split()[-1] for e in events if e.get("proc.comm") == "echo"
            and (a := str(e.get("args", ""))).split()[-1:] and a.split()[-1].startswith(prefix)]


def test_sigint_prints_final_records_and_deletes_every_runner(
        gadget_cluster: GadgetCluster) -> None:
    gc = gadget_cluster
    for node in ("node-a", "node-b", "node-c"):
        gc.target(f"cart-{node[-1]}", node=node)
    client = gc.run_gadget("-n", "shop", "-l", "app=cart", "--timeout", "60")
    session = client.session
    pods = gc.wait_runners_streaming(session, ["node-a", "node-b", "node-c"])
    # Generated right before the signal: they can only be shown if the runners drain and
    # the client keeps reading after Ctrl-C.
    sent = []
    for node in ("node-a", "node-b", "node-c"):
        for i in range(3):
            marker = f"final-{node}-{i}"
            gc.workloads.exec("shop", f"cart-{node[-1]}", ["/bin/echo", marker])
            sent.append(marker)
    client.signal(signal.SIGINT)
    rc = client.wait(60)
    err = client.stderr
    assert rc == 0, err
    assert "stopping runners" in err and "Traceback" not in err
    assert sorted(echo_markers(client.events(), "final-")) == sorted(sent), err
    # Deleted before the client returned, not merely asked to go.
    assert gc.runner_pods(session) == []
    for pod in pods.values():
        assert gc.runner_pids(pod["metadata"]["name"]) == []
    deletes = gc.requests("DELETE", f"/api/v1/namespaces/{RUNNER_NAMESPACE}/pods/")
    assert {r.path.rsplit("/", 1)[-1] for r in deletes} == {
        p["metadata"]["name"] for p in pods.values()}
    # The summary says how each runner ended (they stopped on request: that is ok).
    summary = err.split("summary:", 1)[-1]
    for node in ("node-a", "node-b", "node-c"):
        assert f"  {node}: ok" in summary, summary


def test_sigkill_leaves_pods_that_stop_at_their_deadline_and_gc_removes_them(
        gadget_cluster: GadgetCluster) -> None:
    gc = gadget_cluster
    gc.target("cart-a", node="node-a")
    gc.target("cart-b", node="node-b")
    client = gc.run_gadget("-n", "shop", "-l", "app=cart", "--runner-deadline", "5")
    session = client.session
    pods = gc.wait_runners_streaming(session, ["node-a", "node-b"])
    names = sorted(p["metadata"]["name"] for p in pods.values())
    assert all(p["spec"]["activeDeadlineSeconds"] == 5 for p in pods.values())
    client.kill()
    killed = time.monotonic()

    # Nobody cleans up: the pods stay, their runners keep running for now.
    time.sleep(0.5)
    assert sorted(p["metadata"]["name"] for p in gc.runner_pods(session)) == names
    assert all(gc.runner_pids(name) for name in names)

    # Backstop: each runner stops by itself at its --deadline; the pods end.
    for name in names:
        pod = gc.wait_for_phase(RUNNER_NAMESPACE, name, "Succeeded", "Failed", timeout=20)
        assert gc.runner_pids(name) == [], f"runner of {name} still running after its end"
        ends = [json.loads(line) for line in gc.pod_log(RUNNER_NAMESPACE, name).splitlines()
                if line.startswith("{") and '"end"' in line]
        assert ends and ends[-1]["reason"] == "deadline", (name, pod["status"], ends)
    print(f"runner pods ended {time.monotonic() - killed:.1f}s after the client was killed")

    # gc --dry-run shows them and deletes nothing; gc deletes them.
    gc.clear_requests()
    dry = gc.command("gc", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    files = f"gadget-{session}-files"  # the shipped gadget directory (build/gadgets/...)
    assert sorted(line.split("/")[-1] for line in dry.stdout.splitlines()
                  if line.startswith("would delete ")) == sorted([*names, files]), dry.stdout
    assert gc.requests("DELETE") == []
    assert len(gc.runner_pods(session)) == 2
    done = gc.command("gc")
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == sorted(
        [f"deleted {RUNNER_NAMESPACE}/{n}" for n in names]
        + [f"deleted configmap {RUNNER_NAMESPACE}/{files}"]), done.stdout
    assert gc.runner_pods(session) == []
    assert gc.store.list("configmaps", RUNNER_NAMESPACE)[0] == []


def _plant(gc: GadgetCluster, name: str, namespace: str = RUNNER_NAMESPACE,
           labels: dict[str, str] | None = None) -> str:
    gc.create_target_pod(name, namespace, node="node-a", labels=labels or {},
                         image="ghcr.io/kubectl-gadget/node-runner:0.0.9")
    return f"{namespace}/{name}"


def test_gc_removes_planted_leftovers_and_keeps_look_alikes(
        gadget_cluster: GadgetCluster) -> None:
    gc = gadget_cluster
    session = "dead0001"
    ours = {MANAGED_BY: MANAGER, COMPONENT_LABEL: COMPONENT, SESSION_LABEL: session,
            NODE_LABEL: "node-a"}
    leftover = _plant(gc, f"gadget-{session}-x", labels=ours)
    leftover_b = _plant(gc, f"gadget-{session}-node-b", labels={**ours, NODE_LABEL: "node-b"})
    elsewhere = _plant(gc, f"gadget-{session}-y", namespace="tools", labels=ours)
    foreign = [
        _plant(gc, f"gadget-{session}-z"),  # our name pattern, no labels
        _plant(gc, f"gadget-{session}-partial", labels={MANAGED_BY: MANAGER}),
        _plant(gc, f"gadget-{session}-nosession",
               labels={MANAGED_BY: MANAGER, COMPONENT_LABEL: COMPONENT}),
        _plant(gc, f"gadget-{session}-othercomp",
               labels={**ours, COMPONENT_LABEL: "controller"}),
        _plant(gc, "gadget-cafe0002-x", labels=ours),  # session label != name's session
        _plant(gc, f"my-gadget-{session}-x", labels=ours),  # prefix not ours
        _plant(gc, f"gadget-{session}-other", labels={**ours, MANAGED_BY: "helm"}),
    ]
    labelled_like_ours = foreign[1:6]  # carry our managed-by label: listed, then kept
    try:
        _check_gc(gc, [leftover, leftover_b], elsewhere, foreign, labelled_like_ours)
    finally:
        # Remove the look-alikes ourselves (some carry our managed-by label on purpose).
        api = gc.core_v1()
        for kept in foreign:
            ns, name = kept.split("/")
            if gc.get_pod(ns, name) is not None:
                api.delete_namespaced_pod(name, ns)
        for kept in foreign:
            gc.wait_gone(*kept.split("/"))


def _names(gc: GadgetCluster) -> set[str]:
    return {f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in gc.pods()}


def _check_gc(gc: GadgetCluster, leftovers: list[str], elsewhere: str, foreign: list[str],
              labelled_like_ours: list[str]) -> None:
    everything = _names(gc)
    gc.clear_requests()
    dry = gc.command("gc", "--dry-run", "-A")
    assert dry.returncode == 0, dry.stderr
    assert sorted(dry.stdout.splitlines()) == sorted(
        f"would delete {p}" for p in [*leftovers, elsewhere]), dry.stdout
    assert gc.writes() == [], "gc --dry-run must not write"
    assert _names(gc) == everything

    # Default scope: the gadget namespace only.
    done = gc.command("gc")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(done.stdout.splitlines()) == sorted(f"deleted {p}" for p in leftovers)
    for kept in labelled_like_ours:
        if kept.startswith(f"{RUNNER_NAMESPACE}/"):
            assert f"keeping {kept}" in done.stderr, done.stderr
    assert _names(gc) == everything - set(leftovers)

    everywhere = gc.command("gc", "-A")
    assert everywhere.returncode == 0, everywhere.stderr
    assert everywhere.stdout.splitlines() == [f"deleted {elsewhere}"], everywhere.stdout
    assert _names(gc) == set(foreign) | (everything - {*leftovers, elsewhere})
    deleted = {r.path.rsplit("/", 1)[-1] for r in gc.requests("DELETE")}
    assert deleted == {p.split("/")[1] for p in [*leftovers, elsewhere]}, \
        "gc deleted a pod that is not provably ours"


def test_list_and_kubectl_show_the_running_session(gadget_cluster: GadgetCluster,
                                                    kubectl_available: None) -> None:
    gc = gadget_cluster
    gc.target("cart-a", node="node-a")
    gc.target("cart-c", node="node-c")
    client = gc.run_gadget("-n", "shop", "-l", "app=cart", "--timeout", "60")
    session = client.session
    pods = gc.wait_runners_streaming(session, ["node-a", "node-c"])
    names = sorted(p["metadata"]["name"] for p in pods.values())

    listed = gc.command("list")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert sorted((r[0], r[1], r[2], r[-1]) for r in rows) == sorted(
        (session, node, "Running", f"{RUNNER_NAMESPACE}/{pods[node]['metadata']['name']}")
        for node in ("node-a", "node-c")), listed.stdout

    selector = f"{SESSION_LABEL}={session}"
    got = gc.kubectl("get", "pods", "-n", RUNNER_NAMESPACE, "-l", selector, "-o", "json",
                     "--as", "admin")
    assert got.returncode == 0, got.stderr
    items = json.loads(got.stdout)["items"]
    assert sorted(i["metadata"]["name"] for i in items) == names
    for item in items:
        labels = item["metadata"]["labels"]
        assert labels[MANAGED_BY] == MANAGER and labels[COMPONENT_LABEL] == COMPONENT
        assert labels[SESSION_LABEL] == session
        assert labels[NODE_LABEL] == item["spec"]["nodeName"]
        assert item["status"]["phase"] == "Running"
    table = gc.kubectl("get", "pods", "-n", RUNNER_NAMESPACE, "-l",
                       f"{MANAGED_BY}={MANAGER}", "--as", "admin")
    assert table.returncode == 0, table.stderr
    assert sorted(line.split()[0] for line in table.stdout.splitlines()[1:]) == names
    assert all("Running" in line for line in table.stdout.splitlines()[1:])

    client.signal(signal.SIGINT)
    assert client.wait(60) == 0, client.stderr
    after = gc.kubectl("get", "pods", "-n", RUNNER_NAMESPACE, "-l", selector, "-o", "name",
                       "--as", "admin")
    assert after.returncode == 0 and after.stdout.strip() == "", after.stdout
    gone = gc.command("list")
    assert "no gadget sessions" in gone.stderr and gone.stdout == ""

"""Cluster runs that go wrong: a runner killed or its node lost mid-run, admission and RBAC
refusals, unschedulable runner pods and image pull failures.

Partial failure must not stop the other nodes; every failure is one clear line on stderr (no
traceback) naming the node and the cause; the exit code follows the documented rule (0 all
nodes ok, 1 otherwise unless every runner failed with the same runner code 2-7). Each test
ends with no runner pod left (`no_runner_leftovers`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kubectl_gadget.cluster.runner_pod import NODE_LABEL
from tests.cluster.product_fixtures import ROOT, RUNNER_NAMESPACE, GadgetClient, GadgetCluster

pytestmark = pytest.mark.usefixtures("no_runner_leftovers")

Event = dict[str, Any]


def markers(events: list[Event], prefix: str) -> set[str]:
    return {a.split()[-1] for e in events if (a := str(e.get("args", ""))).split()[-1:]
            and a.split()[-1].startswith(prefix) and e.get("proc.comm") == "echo"}


def summary_line(client: GadgetClient, node: str) -> str:
    lines = client.stderr.split("summary:", 1)[-1].splitlines()
    found = [line for line in lines if line.startswith(f"  {node}: ")]
    assert len(found) == 1, f"no summary line for {node}:\n{client.stderr}"
    return found[0]


def _three_carts(gc: GadgetCluster) -> None:
    for node in ("node-a", "node-b", "node-c"):
        gc.target(f"cart-{node[-1]}", node=node)


def _exec_round(gc: GadgetCluster, tag: str, nodes: tuple[str, ...]) -> set[str]:
    sent = set()
    for node in nodes:
        marker = f"{tag}-{node}"
        gc.workloads.exec("shop", f"cart-{node[-1]}", ["/bin/echo", marker])
        sent.add(marker)
    return sent


def test_runner_killed_mid_run_others_keep_streaming(gadget_cluster: GadgetCluster) -> None:
    gc = gadget_cluster
    _three_carts(gc)
    client = gc.run_gadget("-n", "shop", "-l", "app=cart", "--timeout", "60")
    session = client.session
    pods = gc.wait_runners_streaming(session, ["node-a", "node-b", "node-c"])
    before = _exec_round(gc, "before", ("node-a", "node-b", "node-c"))
    client.wait_events(lambda ev: markers(ev, "before-") == before, what="events before")

    victim = pods["node-b"]["metadata"]["name"]
    pids = gc.runner_pids(victim)
    assert pids, f"no process found for runner pod {victim}"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    gc.wait_for_phase(RUNNER_NAMESPACE, victim, "Failed")

    after = _exec_round(gc, "after", ("node-a", "node-c"))
    client.wait_events(lambda ev: markers(ev, "after-") == after,
                       what="events from the surviving nodes after the kill")
    client.signal(signal.SIGINT)  # the survivors stop normally; node-b's failure remains
    assert client.wait(60) == 1, client.stderr
    err = client.stderr
    assert "Traceback" not in err
    line = summary_line(client, "node-b")
    assert "exit code 137" in line, line
    assert "ok" in summary_line(client, "node-a") and "ok" in summary_line(client, "node-c")
    events = client.events()
    assert markers(events, "after-") == after and markers(events, "before-") == before
    assert {e["k8s.node"] for e in events if e.get("args", "").startswith("/bin/echo after-")} \
        == {"node-a", "node-c"}


def test_node_lost_mid_run(gadget_cluster: GadgetCluster) -> None:
    gc = gadget_cluster
    _three_carts(gc)
    client = gc.run_gadget("-n", "shop", "-l", "app=cart", "--timeout", "6")
    session = client.session
    gc.wait_runners_streaming(session, ["node-a", "node-b", "node-c"])
    gc.lose_node("node-b")
    after = _exec_round(gc, "after", ("node-a", "node-c"))
    client.wait_events(lambda ev: markers(ev, "after-") == after,
                       what="events from the surviving nodes after node-b was lost")
    # The run ends at its --timeout (6 s): a lost node is not waited for until the backstop
    # (a minute after the last runner started) or the pod's grace period runs out.
    rc = client.wait(60)
    assert rc == 1, client.stderr
    assert "Traceback" not in client.stderr
    assert "node lost" in summary_line(client, "node-b"), client.stderr
    assert "ok" in summary_line(client, "node-a")


# -- refusals before or at pod start ---------------------------------------------------------

def _whole_host_run(gc: GadgetCluster, *extra: str) -> GadgetClient:
    return gc.run_gadget("-A", "--node", "node-a", "--timeout", "10", *extra)


def _pod_posts(gc: GadgetCluster) -> tuple[list[Any], list[Any]]:
    posts = gc.requests("POST", f"/api/v1/namespaces/{RUNNER_NAMESPACE}/pods")
    dry = [r for r in posts if "dryRun" in r.query]
    return dry, [r for r in posts if "dryRun" not in r.query]


@pytest.mark.parametrize("labelled", [False, True], ids=["psa-default", "psa-label"])
def test_pod_security_refusal_names_the_label_command(make_gadget_cluster: Any,
                                                       labelled: bool) -> None:
    gc: GadgetCluster = make_gadget_cluster(privileged_namespace=False)
    if labelled:
        gc.store.mutate("namespaces", "", RUNNER_NAMESPACE, lambda ns: (
            ns["metadata"]["labels"].update({"pod-security.kubernetes.io/enforce": "baseline"})
            or ns))
    else:
        gc.enforce_pod_security("baseline")
    client = _whole_host_run(gc)
    rc = client.wait(60)
    err = client.stderr
    assert rc == 1, err
    assert "Traceback" not in err
    assert (f"kubectl label --overwrite namespace {RUNNER_NAMESPACE} "
            "pod-security.kubernetes.io/enforce=privileged") in err, err
    dry, real = _pod_posts(gc)
    assert real == [], "a runner pod was created although admission refuses it"
    if not labelled:
        assert dry, "the refusal should come from a server-side dry run"
        assert "PodSecurity" in err or "violates" in err, err
    assert gc.pods(RUNNER_NAMESPACE) == []


def test_rbac_refusal_names_the_missing_permission(gadget_cluster: GadgetCluster) -> None:
    gc = gadget_cluster
    gc.deny("create", "pods", namespace=RUNNER_NAMESPACE)
    client = _whole_host_run(gc)
    rc = client.wait(60)
    err = client.stderr
    assert rc == 1, err
    assert "Traceback" not in err
    assert 'cannot create resource "pods"' in err, err
    assert "pods create" in err, "the message should say which permission to grant"
    _dry, real = _pod_posts(gc)
    assert real == []
    assert gc.pods(RUNNER_NAMESPACE) == []


@pytest.mark.parametrize("how", ["scheduler", "taint"])
def test_unschedulable_runner_is_reported(gadget_cluster: GadgetCluster, how: str) -> None:
    gc = gadget_cluster
    extra: tuple[str, ...] = ()
    if how == "scheduler":
        gc.fail_scheduling("Insufficient cpu", labels={NODE_LABEL: "node-a"})
        expected = "Insufficient cpu"
    else:
        gc.taint_node("node-a", "dedicated", "db", "NoSchedule")
        extra = ("--no-tolerate-taints",)
        expected = "untolerated taint"
    # --timeout 600: a run that waited for its timeout instead of ending at the startup
    # timeout would outlast the wait below.
    client = _whole_host_run(gc, "--startup-timeout", "3", "--timeout", "600", *extra)
    client.wait_stderr(r"waiting on 1 node\(s\): unschedulable")
    rc = client.wait(90)
    err = client.stderr
    assert rc == 1, err
    assert "Traceback" not in err
    line = summary_line(client, "node-a")
    assert "unschedulable" in line and expected in line, line
    assert "not started after 3s" in line, line


def test_image_pull_failure_is_reported(gadget_cluster: GadgetCluster) -> None:
    gc = gadget_cluster
    gc.fail_image_pull(message="pull access denied, repository does not exist",
                       labels={NODE_LABEL: "node-a"})
    # --timeout 600: a run that went on waiting for the pod after its pull failed would
    # outlast the wait below.
    client = _whole_host_run(gc, "--runner-image", "registry.example/nope/runner:0",
                             "--timeout", "600")
    rc = client.wait(90)
    err = client.stderr
    assert rc == 7, err  # the only node's image pull failed: the image code
    assert "Traceback" not in err
    line = summary_line(client, "node-a")
    assert "image pull failed" in line and "pull access denied" in line, line



def test_unknown_param_of_an_image_the_client_cannot_read_is_the_runners_usage_error(
        gadget_cluster: GadgetCluster, tmp_path: Path) -> None:
    """An image reference is read by the runners only, so the client passes its params on
    unchecked: the runner refuses a key the gadget does not know (exit 2, naming the key and
    the closest param) instead of tracing without it, and the client reports that."""
    gc = gadget_cluster
    store, image = tmp_path / "store", "localhost/probe/trace_exec:v1"
    subprocess.run([sys.executable, "-m", "kubectl_gadget", "image", "build", "-t", image,
                    str(ROOT / "gadgets" / "trace_exec")], check=True, capture_output=True,
                   timeout=300, cwd=ROOT, env={**os.environ, "KUBECTL_GADGET_STORE": str(store)})
    runner_image = "localhost/probe/runner-with-store:1"  # the runner pods read that store
    gc.map_image(runner_image, [sys.executable, "-m", "node_runner"], cwd=str(ROOT),
                 env={"KUBECTL_GADGET_STORE": str(store)})
    client = gc.run_gadget("-A", "--node", "node-a", "--timeout", "30", "--runner-image",
                           runner_image, "--verify-image=false", "--param", "ignore-faild=true",
                           gadget=image)
    rc = client.wait(60)
    err = client.stderr
    assert rc == 2, err  # the only runner's code: usage
    said = "unknown param 'ignore-faild' of gadget trace_exec (closest known param: ignore-failed)"
    assert said in summary_line(client, "node-a"), err
    assert "Traceback" not in err

"""The Python API on a cluster: `run(..., namespace=, selector=, kubeconfig=)` selects pods as
the CLI does, starts runner pods through the fake API server, yields the events of the
selected pods with their Kubernetes fields, and deletes its runner pods when the loop is left
early."""

from __future__ import annotations

import threading

import pytest

from kubectl_gadget import Event, run
from tests.cluster.product_fixtures import TRACE_EXEC, GadgetCluster

pytestmark = pytest.mark.usefixtures("no_runner_leftovers")


def test_events_of_selected_pods_then_an_early_break(gadget_cluster: GadgetCluster) -> None:
    gc = gadget_cluster
    gc.target("cart-a", node="node-a")
    gc.target("cart-b", node="node-b")
    gc.target("web-a", node="node-a", labels={"app": "web"})
    stop = threading.Event()

    def keep_echoing() -> None:
        while not stop.wait(0.5):
            for pod in ("cart-a", "cart-b", "web-a"):
                gc.workloads.exec("shop", pod, ["/bin/echo", f"api-{pod}"])

    diag: list[str] = []
    echoes = threading.Thread(target=keep_echoing)
    echoes.start()
    seen: dict[str, Event] = {}
    try:
        for ev in run(TRACE_EXEC, namespace="shop", selector="app=cart", timeout=90,
                      kubeconfig=str(gc.cluster.kubeconfig_path), diag=diag.append):
            if ev.get("proc.comm") == "echo":
                seen[str(ev["k8s.podName"])] = ev
            if {"cart-a", "cart-b"} <= set(seen):
                break
        pods_left = gc.runner_pods()
    finally:
        stop.set()
        echoes.join()
    assert pods_left == [], "leaving the loop deleted the runner pods"
    assert set(seen) == {"cart-a", "cart-b"}, diag  # web-a is not selected
    assert (seen["cart-a"].node, seen["cart-b"].node) == ("node-a", "node-b")
    assert seen["cart-a"]["k8s.namespace"] == "shop"
    assert any(d.startswith("session ") for d in diag), diag
    # trace_exec has no endpoints: its run follows no services (nor all pods)
    assert not gc.cluster.requests("GET", "/api/v1/services")
    assert not [r for r in gc.cluster.requests("GET", "/api/v1/pods")
                if not r.param("labelSelector") and not r.param("fieldSelector")]

"""`kubectl gadget run` against target pods that are real runc containers (targets="runc").

Real client, fakekube, runner pods and eBPF; each target pod is a sandbox plus one runc
container per pod container, in the kubelet's cgroupfs cgroups with containerd's bundles
(tests/cluster/runc_targets.py). Commands run in them with `runc exec`, the path of `kubectl
exec`. trace_exec must name the pod and container of an exec in a selected pod and show
nothing of a pod on the same node that the selector leaves out; in a pod of two containers
each exec must be named after the container it ran in.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest

from tests.cluster.product_fixtures import GadgetCluster
from tests.cluster.runc_targets import runc_available

pytestmark = [pytest.mark.usefixtures("no_runner_leftovers"),
              pytest.mark.skipif(not runc_available(), reason="runc is not installed")]

Event = dict[str, Any]


def marked(events: list[Event], marker: str) -> list[Event]:
    return [e for e in events if str(e.get("args", "")).split()[-1:] == [marker]
            and e.get("proc.comm") == "echo"]


def test_trace_exec_names_the_runc_pod_and_skips_the_unselected(make_gadget_cluster: Any
                                                                ) -> None:
    gc: GadgetCluster = make_gadget_cluster(nodes=("node-a",), targets="runc")
    gc.target("cart-a", owner=("ReplicaSet", "cart-7d4b9"))
    gc.target("web-a", labels={"app": "web"})  # same node, not selected
    client = gc.run_gadget("-n", "shop", "-l", "app=cart", "--timeout", "120")
    gc.wait_runners_streaming(client.session, ["node-a"])
    web = gc.workloads.container("shop", "web-a").popen(["/bin/echo", "mark-web"])
    cart = gc.workloads.container("shop", "cart-a").popen(["/bin/echo", "mark-cart"])
    assert (web.wait(60), cart.wait(60)) == (0, 0)
    client.wait_events(lambda ev: bool(marked(ev, "mark-cart")), what="the exec in cart-a")
    client.signal(signal.SIGINT)
    assert client.wait() == 0, client.stderr
    events = client.events()
    (e,) = marked(events, "mark-cart")
    app = gc.workloads.container("shop", "cart-a")
    assert (e["k8s.node"], e["k8s.namespace"], e["k8s.podName"], e["k8s.containerName"]) == (
        "node-a", "shop", "cart-a", "app"), e
    assert (e["k8s.owner.kind"], e["k8s.owner.name"]) == ("ReplicaSet", "cart-7d4b9"), e
    assert e["runtime.containerId"] == app.container_id, e
    assert e["proc.pid"] == cart.pid, e  # the host pid of the command runc exec ran
    assert not marked(events, "mark-web"), events
    assert {(e["k8s.namespace"], e["k8s.podName"]) for e in events} == {("shop", "cart-a")}


def test_two_containers_of_one_pod_are_told_apart(make_gadget_cluster: Any) -> None:
    gc: GadgetCluster = make_gadget_cluster(nodes=("node-a",), targets="runc")
    gc.target("cart-a", containers=("app", "sidecar"))
    client = gc.run_gadget("-n", "shop", "-l", "app=cart", "--timeout", "120")
    gc.wait_runners_streaming(client.session, ["node-a"])
    for container in ("app", "sidecar"):
        gc.workloads.exec("shop", "cart-a", ["/bin/echo", f"mark-{container}"], container)
    client.wait_events(lambda ev: all(marked(ev, f"mark-{c}") for c in ("app", "sidecar")),
                       what="an exec in each container")
    client.signal(signal.SIGINT)
    assert client.wait() == 0, client.stderr
    events = client.events()
    for container in ("app", "sidecar"):
        (e,) = marked(events, f"mark-{container}")
        assert (e["k8s.podName"], e["k8s.containerName"]) == ("cart-a", container), e
        assert e["runtime.containerId"] == gc.workloads.container(
            "shop", "cart-a", container).container_id, e

"""Endpoint owners on a cluster: trace_tcp's addresses named as the pods and services owning them.

Real client, fake API server, real runner pods and eBPF. The traced pod (a real process) opens
TCP connections over loopback to addresses that the fake API server lists as a pod's IP and a
service's ClusterIP (127.0.0.0/8 addresses stand for them: the cluster's service range is
127.0.10.0/24 and the pods get 127.0.20.x), and to one nobody owns yet. The client must name
each connect's destination (`dst.k8s.kind/namespace/name`) from one list and watch of pods and
of services, resolve a pod created while the session runs, filter on those fields, warn once
and go on when it may not list services, and leave no watch thread behind.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import pytest

from kubectl_gadget import run
from tests.cluster.fakekube.admission import DenyRule
from tests.cluster.product_fixtures import GADGETS, GadgetCluster

pytestmark = pytest.mark.usefixtures("no_runner_leftovers")

POD_IP, SVC_IP, LATE_IP = "127.0.20.5", "127.0.10.20", "127.0.20.7"

# For each address: listen on it, connect, accept, close; print the listening ports.
CONNECT = """
import socket, sys
ports = []
for ip in sys.argv[1:]:
    srv = socket.socket()
    srv.bind((ip, 0))
    srv.listen()
    ports.append(srv.getsockname()[1])
    c = socket.create_connection((ip, ports[-1]))
    conn, _ = srv.accept()
    conn.close(); c.close(); srv.close()
print(*ports)
"""


def _trace_tcp() -> str:
    path = GADGETS / "trace_tcp"
    if not (path / "program.bpf.o").exists():
        pytest.skip("build/gadgets/trace_tcp is not built: run `make gadgets`")
    return str(path)


def _cluster(make_gadget_cluster: Any) -> GadgetCluster:
    gc: GadgetCluster = make_gadget_cluster(nodes=("node-a",), service_cidr="127.0.10.0/24")
    gc.target("cart-a", node="node-a")
    gc.cluster.create_target_pod("web-1", "store", node="node-a", labels={"app": "web"},
                                 pod_ip=POD_IP)
    gc.cluster.create_service("db", "store", cluster_ip=SVC_IP, labels={"app": "db"})
    return gc


def _connect(gc: GadgetCluster, *ips: str) -> list[int]:
    done = gc.workloads.container("shop", "cart-a").exec([sys.executable, "-c", CONNECT, *ips])
    return [int(p) for p in done.stdout.split()]


def _connects(events: list[dict[str, Any]], port: int) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "connect" and e["dst.port"] == port]


def _owner(event: dict[str, Any]) -> tuple[str, str, str]:
    return event["dst.k8s.kind"], event["dst.k8s.namespace"], event["dst.k8s.name"]


def _lists(gc: GadgetCluster, path: str) -> list[Any]:
    return [r for r in gc.cluster.requests("GET", path) if r.path == path
            and r.param("watch") not in ("true", "1") and not r.param("labelSelector")]


def test_destinations_are_named_by_pod_ip_and_cluster_ip(make_gadget_cluster: Any) -> None:
    gc = _cluster(make_gadget_cluster)
    client = gc.run_gadget("-n", "shop", "-l", "app=cart", "--timeout", "600",
                           gadget=_trace_tcp())
    gc.wait_runners_streaming(client.session, ["node-a"])
    pod_port, svc_port, late_port = _connect(gc, POD_IP, SVC_IP, LATE_IP)
    events = client.wait_events(lambda ev: all(_connects(ev, p) for p in (pod_port, svc_port,
                                                                          late_port)),
                                what="the three connects")
    (to_pod,), (to_svc,), (to_late,) = (_connects(events, p) for p in (pod_port, svc_port,
                                                                       late_port))
    assert _owner(to_pod) == ("pod", "store", "web-1") and to_pod["dst.k8s.labels"] == "app=web"
    assert _owner(to_svc) == ("svc", "store", "db") and to_svc["dst.k8s.labels"] == "app=db"
    assert _owner(to_late) == ("raw", "", "") and to_late["dst.addr"] == LATE_IP
    assert to_pod["k8s.podName"] == "cart-a"  # the traced pod, as before

    # A pod created while the session runs: the watch brings its address. The event of a
    # connection may outrun the watch event, so connect again until one is named.
    gc.cluster.create_target_pod("late-1", "store", node="node-a", pod_ip=LATE_IP)
    for _attempt in range(20):
        (port,) = _connect(gc, LATE_IP)
        (late,) = _connects(client.wait_events(lambda ev, p=port: bool(_connects(ev, p)),
                                               what="a connect to the new pod"), port)
        if _owner(late) != ("raw", "", ""):
            break
    assert _owner(late) == ("pod", "store", "late-1")
    client.signal(signal.SIGINT)  # seen: stop now (a loaded machine may need long to get here)
    assert client.wait() == 0, client.stderr
    assert "warning" not in client.stderr, client.stderr
    # One list of each for the session (the others are the target resolution's, by label);
    # the rest came through the watch.
    assert len(_lists(gc, "/api/v1/pods")) == 1 and len(_lists(gc, "/api/v1/services")) == 1
    watches = [r for r in gc.cluster.requests("GET", "/api/v1/services")
               if r.param("watch") in ("true", "1")]
    assert watches, "services are watched"


def test_filter_on_owner_and_a_refused_service_list(make_gadget_cluster: Any) -> None:
    gc = _cluster(make_gadget_cluster)
    gc.cluster.ctx.admission.deny(DenyRule(verb="list", resource="services"))
    client = gc.run_gadget("-n", "shop", "-l", "app=cart", "--timeout", "600",
                           "--filter", "dst.k8s.kind!=raw", gadget=_trace_tcp())
    gc.wait_runners_streaming(client.session, ["node-a"])
    svc_port, pod_port = _connect(gc, SVC_IP, POD_IP)  # the pod's last: both seen when it is
    client.wait_events(lambda ev: bool(_connects(ev, pod_port)), what="the connect to the pod")
    client.wait_stderr("not resolved")  # the services watch's own thread says it
    client.signal(signal.SIGINT)  # seen: stop now (a loaded machine may need long to get here)
    assert client.wait() == 0, client.stderr
    events = client.events()
    assert {_owner(e) for e in events} <= {("pod", "store", "web-1")}, events
    assert not _connects(events, svc_port)  # raw without the services list: filtered out
    warnings = [line for line in client.stderr.splitlines() if "not resolved" in line]
    assert len(warnings) == 1, client.stderr
    assert warnings[0].startswith("warning: endpoint addresses are not resolved to services: ")
    assert 'cannot list resource "services"' in warnings[0]


def test_python_api_run_leaves_no_watch_thread(make_gadget_cluster: Any) -> None:
    gc = _cluster(make_gadget_cluster)
    diag: list[str] = []
    stop = threading.Event()
    ports: list[int] = []

    def keep_connecting() -> None:
        while not stop.wait(0.5):
            ports.extend(_connect(gc, SVC_IP))

    worker = threading.Thread(target=keep_connecting)
    worker.start()
    seen = []
    try:
        for ev in run(_trace_tcp(), namespace="shop", selector="app=cart", timeout=90,
                      filter="dst.k8s.name==db", kubeconfig=str(gc.cluster.kubeconfig_path),
                      diag=diag.append):
            seen.append(ev)
            break
    finally:
        stop.set()
        worker.join()
    assert seen, f"no event; diagnostics: {diag}"
    assert (seen[0]["dst.k8s.kind"], seen[0]["dst.addr"]) == ("svc", SVC_IP)
    assert seen[0]["dst.port"] in ports
    assert [t.name for t in threading.enumerate() if t.name.startswith("owners-")] == []

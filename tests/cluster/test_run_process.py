"""Process gadgets through the cluster path: real client, fakekube, runner pods, real eBPF.

Target pods are real processes in their own mount namespace. trace_exit must report a
selected pod's process exiting with code 7 under that pod's Kubernetes names, and nothing of a
pod that was not selected doing the same; trace_signal the SIGUSR1 one process of a pod sends
to another.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

import pytest

from tests.cluster.product_fixtures import GADGETS, GadgetCluster
from tests.kernel.runner_proc import wait_exit

pytestmark = pytest.mark.usefixtures("no_runner_leftovers")


def _gadget(name: str) -> str:
    path = GADGETS / name
    if not (path / "program.bpf.o").exists():
        pytest.skip(f"build/gadgets/{name} is not built: run `make gadgets`")
    return str(path)


def _names(e: dict[str, Any]) -> tuple[str, str, str, str]:
    return (e["k8s.node"], e["k8s.namespace"], e["k8s.podName"], e["k8s.containerName"])


def _pid_in_its_namespace(pid: int) -> int:
    """The pid a process has in its own PID namespace (a runc target's; the host's for a
    process target): the last NSpid field of its status."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        return int(next(line for line in status if line.startswith("NSpid:")).split()[-1])


def test_trace_exit_names_the_pod(make_gadget_cluster: Any) -> None:
    gc: GadgetCluster = make_gadget_cluster(nodes=("node-a", "node-b"))
    gc.target("cart-a", node="node-a")
    gc.target("web-b", node="node-b", labels={"app": "web"})
    client = gc.run_gadget("-n", "shop", "-l", "app=cart", "--timeout", "60",
                           gadget=_gadget("trace_exit"))
    gc.wait_runners_streaming(client.session, ["node-a"])
    other = gc.workloads.container("shop", "web-b").popen(["sh", "-c", "exit 7"])
    mine = gc.workloads.container("shop", "cart-a").popen(["sh", "-c", "exit 7"])
    assert (wait_exit(other), wait_exit(mine)) == (7, 7)

    client.wait_events(lambda ev: any(e["proc.pid"] == mine.pid for e in ev),
                       what="the exit in cart-a")
    client.signal(signal.SIGINT)  # seen: stop now (a loaded machine may need long to get here)
    assert client.wait() == 0, client.stderr
    (ev,) = [e for e in client.events() if e["proc.pid"] == mine.pid]
    assert (ev["exit_code"], ev["signal"], ev["proc.comm"]) == (7, "", "sh")
    assert _names(ev) == ("node-a", "shop", "cart-a", "app")
    assert not [e for e in client.events() if e["proc.pid"] == other.pid]
    assert {e["k8s.podName"] for e in client.events()} == {"cart-a"}


def test_trace_signal_between_processes_of_a_pod(make_gadget_cluster: Any) -> None:
    gc: GadgetCluster = make_gadget_cluster(nodes=("node-a",))
    gc.target("cart-a", node="node-a")
    client = gc.run_gadget("-n", "shop", "-l", "app=cart", "--timeout", "60",
                           gadget=_gadget("trace_signal"))
    gc.wait_runners_streaming(client.session, ["node-a"])
    pod = gc.workloads.container("shop", "cart-a")
    sleeper = pod.popen(["sleep", "100"])
    inside = _pid_in_its_namespace(sleeper.pid)  # what the sender, in the pod, knows it by
    sender = pod.popen([sys.executable, "-c", f"import os; os.kill({inside}, 10)"])
    # Killed by SIGUSR1: -10 for a process, 128 + 10 through runc exec (as kubectl exec says).
    assert wait_exit(sender) == 0 and wait_exit(sleeper) in (-signal.SIGUSR1,
                                                             128 + signal.SIGUSR1)

    def sent(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in events if e["proc.pid"] == sender.pid and e["tpid"] == sleeper.pid]

    client.wait_events(lambda ev: len(sent(ev)) == 1, what="the SIGUSR1")
    client.signal(signal.SIGINT)  # seen: stop now (a loaded machine may need long to get here)
    assert client.wait() == 0, client.stderr
    (ev,) = sent(client.events())
    assert (ev["sig"], ev["result"], ev["code"], ev["tcomm"]) == (
        "SIGUSR1", "DELIVERED", "SI_USER", "sleep")
    assert _names(ev) == ("node-a", "shop", "cart-a", "app")

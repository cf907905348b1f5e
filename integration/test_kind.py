"""trace_exec and trace_open on real pods of a kind cluster, through the real runner image."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest

NS = "gadget-it"


def kubectl(context: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--context", context, *args], capture_output=True,
                          text=True, check=check, timeout=120)


@pytest.fixture
def workload(kind_cluster: str):
    name = f"cart-{uuid.uuid4().hex[:6]}"
    kubectl(kind_cluster, "create", "namespace", NS, check=False)
    kubectl(kind_cluster, "-n", NS, "run", name, "--labels", "app=cart",
            "--image", "busybox:1.36", "--restart", "Never", "--",
            "sh", "-c", "while true; do cat /etc/hostname >/dev/null; "
            "ls /nonexistent-it 2>/dev/null; sleep 1; done")
    kubectl(kind_cluster, "-n", NS, "wait", "--for=condition=Ready", f"pod/{name}",
            "--timeout=120s")
    yield name
    kubectl(kind_cluster, "-n", NS, "delete", "pod", name, "--now", check=False)


def run_gadget(context: str, *args: str) -> list[dict]:
    proc = subprocess.run([sys.executable, "-m", "kubectl_gadget", "run", *args, "--context",
                           context, "-n", NS, "-l", "app=cart", "-o", "json", "--timeout", "15"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def no_leftovers(context: str) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        out = kubectl(context, "get", "pods", "-A", "-l",
                      "app.kubernetes.io/managed-by=kubectl-gadget", "-o", "name").stdout
        if not out.strip():
            return
        time.sleep(2)
    pytest.fail(f"runner pods left behind: {out}")


def test_trace_exec_on_a_pod(kind_cluster: str, workload: str) -> None:
    events = run_gadget(kind_cluster, "trace_exec")
    mine = [e for e in events if e["k8s"]["podName"] == workload]
    assert any(e["proc"]["comm"] in ("sleep", "ls", "cat") for e in mine), events[:5]
    assert all(e["k8s"]["namespace"] == NS for e in events)
    no_leftovers(kind_cluster)


def test_trace_open_failed_on_a_pod(kind_cluster: str, workload: str) -> None:
    events = run_gadget(kind_cluster, "trace_open", "--failed")
    assert any(e["fname"] == "/nonexistent-it" and e["error"] == "ENOENT" for e in events)
    assert all(e["k8s"]["podName"] == workload for e in events)
    no_leftovers(kind_cluster)

"""Integration tests against a kind cluster (`make kind-up`, then `make integration`).

Skipped, with the reason, when kind, docker or the cluster is not available (as on machines
without a Docker engine). They use the real API server, real kubelet and the runner image.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

CLUSTER = "kubectl-gadget"


def _missing() -> str:
    for tool in ("docker", "kind", "kubectl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "no Docker engine is running"
    clusters = subprocess.run(["kind", "get", "clusters"], capture_output=True, text=True)
    if CLUSTER not in clusters.stdout.split():
        return f"kind cluster {CLUSTER!r} does not exist (make kind-up)"
    return ""


@pytest.fixture(scope="session")
def kind_cluster() -> str:
    reason = _missing()
    if reason:
        pytest.skip(f"integration tests need a kind cluster: {reason}")
    return f"kind-{CLUSTER}"

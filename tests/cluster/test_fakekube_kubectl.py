"""Fidelity of the fake API server with the real ``kubectl`` binary.

Discovery, server-side tables, ``-o json``, ``logs -f`` streaming, graceful ``delete --wait``,
admission/RBAC refusals as kubectl prints them, and TLS mode (the only mode where kubectl
sends its bearer token).
"""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.cluster.fakekube import FakeCluster
from tests.cluster.helpers import pod_body

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("kubectl_available")]


def test_kubectl_get_pods_json_and_nodes(fake_cluster: FakeCluster) -> None:
    fake_cluster.create_target_pod("cart-1", "shop", labels={"app": "cart"}, node="node-b")
    fake_cluster.create_target_pod("db-1", "shop", labels={"app": "db"})
    result = fake_cluster.kubectl("get", "pods", "-l", "app=cart", "-n", "shop", "-o", "json",
                                  check=True)
    items = json.loads(result.stdout)["items"]
    assert [(i["metadata"]["name"], i["spec"]["nodeName"]) for i in items] == [
        ("cart-1", "node-b")]
    assert items[0]["status"]["containerStatuses"][0]["containerID"].startswith("containerd://")

    table = fake_cluster.kubectl("get", "nodes", check=True).stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert [row.split()[:2] for row in table[1:]] == [
        ["node-a", "Ready"], ["node-b", "Ready"], ["node-c", "Ready"]]
    nodes = json.loads(fake_cluster.kubectl("get", "nodes", "-o", "json", check=True).stdout)
    assert nodes["items"][0]["metadata"]["labels"]["kubernetes.io/hostname"] == "node-a"

    pods = fake_cluster.kubectl("get", "pods", "-n", "shop", check=True).stdout.splitlines()
    assert pods[1].split()[:3] == ["cart-1", "1/1", "Running"]


def test_kubectl_logs_follow_and_delete(fake_cluster: FakeCluster, tmp_path: Path) -> None:
    fake_cluster.create_namespace("gadget")
    # b is written only once the test has read a through kubectl: kubectl must stream.
    go = tmp_path / "go"
    fake_cluster.map_image("ghcr.io/x/ab:1", [
        "sh", "-c", f"echo a; while [ ! -e {go} ]; do sleep 0.05; done; echo b"])
    fake_cluster.core_v1().create_namespaced_pod(
        "gadget", pod_body("ab", image="ghcr.io/x/ab:1", node="node-c"))
    fake_cluster.wait_for_phase("gadget", "ab", "Running")
    proc = subprocess.Popen(fake_cluster.kubectl_argv("logs", "-f", "ab", "-n", "gadget"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=fake_cluster.kubectl_env())
    assert proc.stdout is not None
    backstop = threading.Timer(60, go.touch)  # a kubectl that does not stream ends, late
    backstop.start()
    first = proc.stdout.readline()
    assert not go.exists(), "kubectl showed a only after the pod ended: it did not stream"
    backstop.cancel()
    go.touch()
    rest, err = proc.communicate(timeout=60)
    assert (first, rest, proc.returncode) == ("a\n", "b\n", 0), err

    fake_cluster.wait_for_phase("gadget", "ab", "Succeeded")
    deleted = fake_cluster.kubectl("delete", "pod", "ab", "-n", "gadget")
    assert deleted.stdout.strip() == 'pod "ab" deleted', deleted.stderr
    assert fake_cluster.get_pod("gadget", "ab") is None
    missing = fake_cluster.kubectl("delete", "pod", "ab", "-n", "gadget")
    assert missing.returncode != 0
    assert 'Error from server (NotFound): pods "ab" not found' in missing.stderr


def test_kubectl_delete_running_pod_waits_for_kubelet(fake_cluster: FakeCluster) -> None:
    fake_cluster.create_namespace("gadget")
    fake_cluster.core_v1().create_namespaced_pod(
        "gadget", pod_body("sleeper", node="node-a", command=["sleep", "60"]))
    fake_cluster.wait_for_phase("gadget", "sleeper", "Running")
    # A grace period longer than kubectl's own wait: the delete completes only if SIGTERM
    # ended the sleep, not the grace period running out.
    result = fake_cluster.kubectl("delete", "pod", "sleeper", "-n", "gadget", "--wait=true",
                                  "--grace-period=300", "--timeout=90s", timeout=120)
    assert result.returncode == 0, result.stderr
    assert fake_cluster.get_pod("gadget", "sleeper") is None
    deletes = fake_cluster.requests("DELETE", "/api/v1/namespaces/gadget/pods/sleeper")
    assert [r.status for r in deletes] == [200]


def test_kubectl_sees_admission_and_rbac_refusals(fake_cluster: FakeCluster) -> None:
    fake_cluster.enforce_pod_security("baseline")
    fake_cluster.create_namespace("gadget")
    manifest = fake_cluster.workdir / "pod.json"
    body = pod_body("priv", command=["true"])
    body["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    manifest.write_text(json.dumps(body))
    refused = fake_cluster.kubectl("create", "-n", "gadget", "-f", str(manifest))
    assert refused.returncode != 0
    assert ('Error from server (Forbidden): error when creating "' in refused.stderr
            and 'pods "priv" is forbidden: violates PodSecurity "baseline:latest": privileged '
            '(container "main" must not set securityContext.privileged=true)' in refused.stderr)

    fake_cluster.deny("list", "pods", namespace="gadget", user="eve")
    denied = fake_cluster.kubectl("get", "pods", "-n", "gadget", "--as", "eve")
    assert ('pods is forbidden: User "eve" cannot list resource "pods" in API group "" in the '
            'namespace "gadget"') in denied.stderr
    can = fake_cluster.kubectl("auth", "can-i", "list", "pods", "-n", "gadget", "--as", "eve")
    assert can.stdout.strip() == "no"


def test_tls_mode_carries_token_identity_for_both_clients(make_fake_cluster: Any) -> None:
    cluster = make_fake_cluster(tls=True)
    assert cluster.url.startswith("https://127.0.0.1:")
    cluster.create_target_pod("a", "shop", labels={"app": "x"})
    assert [p.metadata.name for p in cluster.core_v1().list_namespaced_pod("shop").items] == ["a"]
    cluster.deny("list", "pods", namespace="shop", user="admin")
    refused = cluster.kubectl("get", "pods", "-n", "shop")
    assert ('pods is forbidden: User "admin" cannot list resource "pods" in API group "" in the '
            'namespace "shop"') in refused.stderr
    with pytest.raises(ApiException) as denied:
        cluster.core_v1().list_namespaced_pod("shop")
    assert denied.value.status == 403
    cluster.clear_denials()
    listed = cluster.kubectl("get", "pods", "-n", "shop", "-o", "name", check=True)
    assert listed.stdout.split() == ["pod/a"]

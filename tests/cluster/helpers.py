"""Manifests and raw-HTTP helpers shared by the fakekube fidelity tests."""

from __future__ import annotations

import json
import shutil
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from tests.cluster.fakekube import FakeCluster


def pod_body(name: str | None = None, *, image: str = "busybox:1.36", labels: dict | None = None,
             node: str | None = None, command: list[str] | None = None,
             generate_name: str | None = None, **spec: Any) -> dict[str, Any]:
    """A pod manifest. Without ``node`` it names a scheduler that does not exist, so API-only
    tests see no scheduler/kubelet writes (a real cluster leaves such pods Pending too)."""
    if node is None:
        spec.setdefault("schedulerName", "manual")
    container: dict[str, Any] = {"name": "main", "image": image}
    if command:
        container["command"] = command
    meta: dict[str, Any] = {"labels": labels or {}}
    if name:
        meta["name"] = name
    if generate_name:
        meta["generateName"] = generate_name
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                            "spec": {"containers": [container], "restartPolicy": "Never", **spec}}
    if node:
        body["spec"]["nodeName"] = node
    return body


def status_of(exc: ApiException) -> dict[str, Any]:
    body = json.loads(str(exc.body))
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == exc.status
    return body


def raw(cluster: FakeCluster, method: str, path: str, body: Any = None,
        content_type: str | None = "application/json") -> tuple[int, Any, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {cluster.tokens['admin']}"}
    if content_type:
        headers["Content-Type"] = content_type
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    response = urllib3.PoolManager().request(method, cluster.url + path, body=data,
                                             headers=headers)
    return response.status, response.headers, json.loads(response.data)


def kubectl_rows(cluster: FakeCluster, *args: str) -> list[list[str]] | None:
    """Rows of a ``kubectl get`` table (header excluded); None when kubectl is absent."""
    if shutil.which("kubectl") is None:
        return None
    lines = cluster.kubectl("get", *args, check=True).stdout.splitlines()
    return [line.split() for line in lines[1:]]

"""Services and pod addresses in the fake API server, proven with the official client and kubectl.

A Service's ClusterIP is allocated from the service range (the one asked for, or the first
free one), refused out of range or when taken, fixed for the service's life and free again once
it is deleted; services are listed and watched across namespaces like pods. Target pods carry
the pod IP a network plugin gave them, and a hostNetwork pod the node's address.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from tests.cluster.fakekube import FakeCluster
from tests.cluster.helpers import status_of

pytestmark = pytest.mark.cluster


def _svc(name: str, cluster_ip: str | None = None, ports: Any = ({"port": 80},)) -> dict:
    spec: dict[str, Any] = {"ports": list(ports), "selector": {"app": name}}
    if cluster_ip is not None:
        spec["clusterIP"] = cluster_ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def _invalid(fn: Any, *args: Any) -> dict[str, Any]:
    with pytest.raises(ApiException) as err:
        fn(*args)
    assert err.value.status == 422, err.value.body
    return status_of(err.value)


def test_cluster_ips_are_allocated_checked_and_released(fake_cluster: FakeCluster) -> None:
    v1 = fake_cluster.core_v1()
    api = v1.read_namespaced_service("kubernetes", "default")
    assert api.spec.cluster_ip == "10.96.0.1" and api.spec.ports[0].port == 443
    fake_cluster.create_namespace("shop")
    web = v1.create_namespaced_service("shop", _svc("web"))
    assert (web.spec.cluster_ip, web.spec.cluster_ips, web.spec.type) == \
        ("10.96.0.2", ["10.96.0.2"], "ClusterIP")
    assert (web.spec.ports[0].protocol, web.spec.ports[0].target_port) == ("TCP", 80)
    db = v1.create_namespaced_service("shop", _svc("db", "10.96.7.7"))
    assert db.spec.cluster_ip == "10.96.7.7"

    taken = _invalid(v1.create_namespaced_service, "shop", _svc("db2", "10.96.7.7"))
    assert taken["message"] == ('Service "db2" is invalid: spec.clusterIPs: Invalid value: '
                                '[]string{"10.96.7.7"}: failed to allocate IP 10.96.7.7: '
                                "provided IP is already allocated")
    outside = _invalid(v1.create_namespaced_service, "shop", _svc("far", "192.168.0.1"))
    assert "provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12" \
        in outside["message"]
    no_ports = _invalid(v1.create_namespaced_service, "shop", _svc("bare", ports=()))
    assert no_ports["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.ports"}]
    assert v1.create_namespaced_service("shop", _svc("hl", "None", ())).spec.cluster_ips == \
        ["None"]

    moved = _invalid(v1.patch_namespaced_service, "db", "shop", {"spec": {"clusterIP":
                                                                          "10.96.7.8"}})
    assert moved["details"]["causes"][0]["field"] == "spec.clusterIPs[0]"
    kept = v1.replace_namespaced_service("db", "shop", _svc("db", ports=({"port": 81},)))
    assert (kept.spec.cluster_ip, kept.spec.ports[0].port) == ("10.96.7.7", 81)
    v1.delete_namespaced_service("db", "shop")
    assert v1.create_namespaced_service("shop", _svc("db", "10.96.7.7")).spec.cluster_ip == \
        "10.96.7.7"


def test_services_list_and_watch_across_namespaces(fake_cluster: FakeCluster) -> None:
    v1 = fake_cluster.core_v1()
    fake_cluster.create_service("web", "shop", cluster_ip="10.96.1.1")
    listed = v1.list_service_for_all_namespaces()
    assert {(s.metadata.namespace, s.metadata.name) for s in listed.items} == \
        {("default", "kubernetes"), ("shop", "web")}
    by_ip = v1.list_service_for_all_namespaces(field_selector="spec.clusterIP=10.96.1.1")
    assert [s.metadata.name for s in by_ip.items] == ["web"]
    rv = listed.metadata.resource_version
    fake_cluster.create_service("db", "store", cluster_ip="10.96.1.2")
    v1.delete_namespaced_service("web", "shop")
    seen = [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(
        v1.list_service_for_all_namespaces, resource_version=rv, timeout_seconds=1)]
    assert seen == [("ADDED", "db"), ("DELETED", "web")]


def test_target_pods_carry_their_pod_ip(fake_cluster: FakeCluster) -> None:
    pod = fake_cluster.create_target_pod("web-1", "shop", node="node-b", pod_ip="10.244.9.9")
    assert (pod["status"]["podIP"], pod["status"]["podIPs"]) == ("10.244.9.9",
                                                                [{"ip": "10.244.9.9"}])
    host = fake_cluster.create_target_pod("agent", "kube-system", node="node-b",
                                          host_network=True)
    assert host["spec"]["hostNetwork"] is True
    assert host["status"]["podIP"] == host["status"]["hostIP"]
    plain = fake_cluster.create_target_pod("db-1", "shop", node="node-b")
    assert plain["status"]["podIP"].startswith("10.244.")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="the real kubectl is not on PATH")
def test_kubectl_gets_services(fake_cluster: FakeCluster) -> None:
    fake_cluster.create_service("web", "shop", cluster_ip="10.96.3.3")
    table = fake_cluster.kubectl("get", "svc", "-n", "shop", check=True).stdout.splitlines()
    assert table[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert table[1].split()[:5] == ["web", "ClusterIP", "10.96.3.3", "<none>", "80/TCP"]
    items = json.loads(fake_cluster.kubectl("get", "services", "-A", "-o", "json",
                                            check=True).stdout)["items"]
    assert {i["metadata"]["name"] for i in items} == {"kubernetes", "web"}

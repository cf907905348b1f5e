"""Fidelity of fakekube's ConfigMaps, with the official client and the real kubectl.

The product ships local gadget directories to runner pods as a ConfigMap, so the fake must
refuse what a real API server refuses: bad key names, a key in both `data` and `binaryData`,
binaryData that is not base64 and more than 1 MiB of values, with the server's error shapes.
"""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.cluster.fakekube import FakeCluster
from tests.cluster.helpers import raw, status_of

pytestmark = pytest.mark.cluster
MIB = 1024 * 1024


def cm_body(name: str, data: dict[str, str] | None = None,
            binary: dict[str, bytes] | None = None, labels: dict[str, str] | None = None,
            **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": name, "labels": labels or {}}, **extra}
    if data is not None:
        body["data"] = data
    if binary is not None:
        body["binaryData"] = {k: base64.b64encode(v).decode() for k, v in binary.items()}
    return body


@pytest.fixture
def v1(fake_cluster: FakeCluster) -> Any:
    fake_cluster.create_namespace("gadget")
    return fake_cluster.core_v1()


def test_create_get_list_delete_with_the_official_client(fake_cluster: FakeCluster,
                                                         v1: Any) -> None:
    blob = bytes(range(256)) * 4
    made = v1.create_namespaced_config_map(
        "gadget", cm_body("files", {"gadget.yaml": "name: x\n"}, {"program.bpf.o": blob},
                          {"app": "x"}))
    assert made.metadata.uid and made.metadata.resource_version and made.kind == "ConfigMap"
    got = v1.read_namespaced_config_map("files", "gadget")
    assert got.data == {"gadget.yaml": "name: x\n"}
    assert base64.b64decode(got.binary_data["program.bpf.o"]) == blob
    v1.create_namespaced_config_map("gadget", cm_body("other", {"a": "1"}))
    assert [c.metadata.name for c in v1.list_namespaced_config_map(
        "gadget", label_selector="app=x").items] == ["files"]
    assert sorted(c.metadata.name for c in v1.list_config_map_for_all_namespaces().items) == [
        "files", "other"]
    with pytest.raises(ApiException) as dup:
        v1.create_namespaced_config_map("gadget", cm_body("files", {"a": "1"}))
    assert dup.value.status == 409 and status_of(dup.value)["reason"] == "AlreadyExists"

    v1.delete_namespaced_config_map("files", "gadget")
    with pytest.raises(ApiException) as gone:
        v1.read_namespaced_config_map("files", "gadget")
    assert gone.value.status == 404
    assert status_of(gone.value)["message"] == 'configmaps "files" not found'
    v1.delete_collection_namespaced_config_map("gadget")
    assert v1.list_namespaced_config_map("gadget").items == []
    with pytest.raises(ApiException) as no_ns:
        v1.create_namespaced_config_map("nowhere", cm_body("x", {"a": "1"}))
    assert no_ns.value.status == 404


def test_watch_sees_added_and_deleted(fake_cluster: FakeCluster, v1: Any) -> None:
    start = v1.list_namespaced_config_map("gadget").metadata.resource_version
    v1.create_namespaced_config_map("gadget", cm_body("w", {"a": "1"}, labels={"s": "1"}))
    v1.delete_namespaced_config_map("w", "gadget")
    seen = []
    for event in watch.Watch().stream(v1.list_namespaced_config_map, "gadget",
                                      label_selector="s=1", resource_version=start,
                                      timeout_seconds=2):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 2:
            break
    assert seen == [("ADDED", "w"), ("DELETED", "w")]


def test_validation_errors_are_the_servers(fake_cluster: FakeCluster, v1: Any) -> None:
    with pytest.raises(ApiException) as bad:
        v1.create_namespaced_config_map(
            "gadget", cm_body("bad", {"a/b": "1", "dup": "x", "..x": "y"}, {"dup": b"x"}))
    status = status_of(bad.value)
    assert bad.value.status == 422 and status["reason"] == "Invalid"
    causes = {(c["field"], c["reason"]) for c in status["details"]["causes"]}
    assert causes == {("data[a/b]", "FieldValueInvalid"), ("data[dup]", "FieldValueInvalid"),
                      ("data[..x]", "FieldValueInvalid")}
    assert "duplicate of key present in binaryData" in status["message"]
    assert "regex used for validation is '[-._a-zA-Z0-9]+'" in status["message"]
    assert "must not start with '..'" in status["message"]
    assert status["message"].startswith('ConfigMap "bad" is invalid: [')

    # binaryData must be base64: a decode error (400), not a validation one.
    code, _headers, body = raw(fake_cluster, "POST", "/api/v1/namespaces/gadget/configmaps",
                               {**cm_body("b64"), "binaryData": {"k": "no!base64"}})
    assert code == 400 and body["reason"] == "BadRequest"
    assert body["message"] == ('ConfigMap in version "v1" cannot be handled as a ConfigMap: '
                               "illegal base64 data at input byte 2")
    code, _headers, body = raw(fake_cluster, "POST", "/api/v1/namespaces/gadget/configmaps",
                               {**cm_body("num"), "data": {"k": 1}})
    assert code == 400 and "Go struct field ConfigMap.data of type string" in body["message"]


def test_size_limit_counts_all_values(fake_cluster: FakeCluster, v1: Any) -> None:
    # Exactly 1 MiB of values (text plus decoded binary) is accepted; one byte more is not.
    v1.create_namespaced_config_map(
        "gadget", cm_body("full", {"a": "x" * (MIB // 2)}, {"b": b"\0" * (MIB // 2)}))
    with pytest.raises(ApiException) as big:
        v1.create_namespaced_config_map(
            "gadget", cm_body("over", {"a": "x" * (MIB // 2)}, {"b": b"\0" * (MIB // 2 + 1)}))
    status = status_of(big.value)
    assert big.value.status == 422 and status["reason"] == "Invalid"
    assert status["message"] == ('ConfigMap "over" is invalid: []: Too long: may not be more '
                                 f"than {MIB} bytes")
    assert status["details"]["causes"] == [
        {"reason": "FieldValueTooLong", "message": f"Too long: may not be more than {MIB} bytes",
         "field": "[]"}]
    # An update may not grow it past the limit either.
    with pytest.raises(ApiException) as grown:
        v1.patch_namespaced_config_map("full", "gadget", {"data": {"c": "y"}})
    assert grown.value.status == 422


def test_immutable_keeps_its_data_and_namespace_deletion_removes_it(
        fake_cluster: FakeCluster, v1: Any) -> None:
    v1.create_namespaced_config_map("gadget", cm_body("frozen", {"a": "1"}, immutable=True))
    with pytest.raises(ApiException) as locked:
        v1.patch_namespaced_config_map("frozen", "gadget", {"data": {"a": "2"}})
    assert locked.value.status == 422
    assert "field is immutable when `immutable` is set" in status_of(locked.value)["message"]
    v1.patch_namespaced_config_map("frozen", "gadget", {"metadata": {"labels": {"l": "v"}}})

    v1.delete_namespace("gadget")
    fake_cluster.wait_for(lambda: fake_cluster.store.get("namespaces", "", "gadget") is None,
                          30, "namespace gadget gone")
    assert fake_cluster.store.list("configmaps", "gadget")[0] == []


@pytest.mark.usefixtures("kubectl_available")
def test_kubectl_create_get_delete(fake_cluster: FakeCluster, tmp_path: Path) -> None:
    fake_cluster.create_namespace("gadget")
    (tmp_path / "gadget.yaml").write_text("name: x\n")
    blob = bytes(range(256)) * 8
    (tmp_path / "program.bpf.o").write_bytes(blob)
    made = fake_cluster.kubectl("create", "configmap", "files", "-n", "gadget",
                                f"--from-file={tmp_path / 'gadget.yaml'}",
                                f"--from-file={tmp_path / 'program.bpf.o'}")
    assert made.returncode == 0, made.stderr  # kubectl sends this one as protobuf
    rows = fake_cluster.kubectl("get", "cm", "-n", "gadget", check=True).stdout.splitlines()
    assert rows[0].split() == ["NAME", "DATA", "AGE"] and rows[1].split()[:2] == ["files", "2"]
    got = json.loads(fake_cluster.kubectl("get", "cm", "files", "-n", "gadget", "-o", "json",
                                          check=True).stdout)
    assert got["data"] == {"gadget.yaml": "name: x\n"}
    assert base64.b64decode(got["binaryData"]["program.bpf.o"]) == blob  # not UTF-8: binary
    deleted = fake_cluster.kubectl("delete", "configmap", "files", "-n", "gadget")
    assert deleted.returncode == 0 and 'configmap "files" deleted' in deleted.stdout
    missing = fake_cluster.kubectl("get", "cm", "files", "-n", "gadget")
    assert missing.returncode != 0
    assert 'configmaps "files" not found' in missing.stderr


@pytest.mark.usefixtures("kubectl_available")
def test_kubectl_shows_the_validation_and_size_errors(fake_cluster: FakeCluster,
                                                      tmp_path: Path) -> None:
    fake_cluster.create_namespace("gadget")
    big = tmp_path / "big.json"
    big.write_text(json.dumps(cm_body("big", {"a": "x" * (MIB + 1)})))
    result = fake_cluster.kubectl("create", "-n", "gadget", "-f", str(big))
    assert result.returncode != 0
    assert f'The ConfigMap "big" is invalid: []: Too long: may not be more than {MIB} bytes' in \
        result.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(cm_body("bad", {"a/b": "1"})))
    result = fake_cluster.kubectl("create", "-n", "gadget", "-f", str(bad))
    assert result.returncode != 0
    assert 'The ConfigMap "bad" is invalid: data[a/b]: Invalid value: "a/b"' in result.stderr
    assert fake_cluster.store.list("configmaps", "gadget")[0] == []


def test_watch_thread_safe_delete(fake_cluster: FakeCluster, v1: Any) -> None:
    """A deletecollection by label, seen by a concurrent watch, removes only the matches."""
    for name, session in (("a", "1"), ("b", "1"), ("c", "2")):
        v1.create_namespaced_config_map("gadget", cm_body(name, {"k": "v"},
                                                          labels={"session": session}))
    rv = v1.list_namespaced_config_map("gadget").metadata.resource_version
    deleted: list[str] = []

    def follow() -> None:
        for event in watch.Watch().stream(v1.list_namespaced_config_map, "gadget",
                                          resource_version=rv, timeout_seconds=5):
            if event["type"] == "DELETED":
                deleted.append(event["object"].metadata.name)
            if len(deleted) == 2:
                return

    thread = threading.Thread(target=follow)
    thread.start()
    v1.delete_collection_namespaced_config_map("gadget", label_selector="session=1")
    thread.join(30)
    assert sorted(deleted) == ["a", "b"]
    assert [c.metadata.name for c in v1.list_namespaced_config_map("gadget").items] == ["c"]
    assert isinstance(v1, client.CoreV1Api)

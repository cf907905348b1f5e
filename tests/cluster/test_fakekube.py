"""Fidelity of the fake API server, proven with the official Python client.

If these pass, product code that talks to the fake through ``kubernetes.client`` sees the same
shapes, errors and streaming behaviour it would see from a real kube-apiserver.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.cluster.fakekube import FakeCluster
from tests.cluster.helpers import pod_body, raw, status_of

pytestmark = pytest.mark.cluster


@pytest.fixture
def v1(fake_cluster: FakeCluster) -> Any:
    return fake_cluster.core_v1()


# -- objects, selectors, errors (official client) ----------------------------------------
def test_list_with_label_and_field_selectors(fake_cluster: FakeCluster, v1: Any) -> None:
    fake_cluster.create_target_pod("cart-1", "shop", labels={"app": "cart", "tier": "web"},
                                   node="node-a")
    fake_cluster.create_target_pod("cart-2", "shop", labels={"app": "cart"}, node="node-b")
    fake_cluster.create_target_pod("db-1", "shop", labels={"app": "db", "tier": "data"},
                                   node="node-b")
    fake_cluster.create_target_pod("web-1", "other", labels={"app": "web"}, node="node-c")

    def names(**kw: Any) -> list[str]:
        return sorted(p.metadata.name for p in v1.list_namespaced_pod("shop", **kw).items)

    assert names(label_selector="app=cart") == ["cart-1", "cart-2"]
    assert names(label_selector="app==cart,tier=web") == ["cart-1"]
    assert names(label_selector="app!=cart") == ["db-1"]
    assert names(label_selector="tier notin (web)") == ["cart-2", "db-1"]
    assert names(label_selector="app in (db, web)") == ["db-1"]
    assert names(label_selector="tier") == ["cart-1", "db-1"]
    assert names(label_selector="!tier") == ["cart-2"]
    assert names(field_selector="spec.nodeName=node-b") == ["cart-2", "db-1"]
    assert names(field_selector="metadata.name!=cart-1,status.phase=Running") == ["cart-2", "db-1"]
    everywhere = v1.list_pod_for_all_namespaces(label_selector="app in (web,db)")
    assert sorted((p.metadata.namespace, p.metadata.name) for p in everywhere.items) == [
        ("other", "web-1"), ("shop", "db-1")]
    assert int(everywhere.metadata.resource_version) > 0

    with pytest.raises(ApiException) as bad:
        v1.list_namespaced_pod("shop", label_selector="app in (cart")
    assert bad.value.status == 400 and status_of(bad.value)["reason"] == "BadRequest"
    with pytest.raises(ApiException) as unknown:
        v1.list_namespaced_pod("shop", field_selector="spec.image=x")
    assert status_of(unknown.value)["message"] == "field label not supported: spec.image"


def test_pagination_with_limit_and_continue(fake_cluster: FakeCluster, v1: Any) -> None:
    for i in range(5):
        fake_cluster.create_target_pod(f"p-{i}", "page", labels={"app": "p"})
    first = v1.list_namespaced_pod("page", limit=2)
    assert [p.metadata.name for p in first.items] == ["p-0", "p-1"]
    assert first.metadata.remaining_item_count == 3 and first.metadata._continue
    rest = v1.list_namespaced_pod("page", limit=10, _continue=first.metadata._continue)
    assert [p.metadata.name for p in rest.items] == ["p-2", "p-3", "p-4"]
    assert not rest.metadata._continue


def test_create_defaults_and_metadata(fake_cluster: FakeCluster, v1: Any) -> None:
    fake_cluster.create_namespace("gadget")
    pod = v1.create_namespaced_pod("gadget", pod_body(generate_name="runner-",
                                                      image="ghcr.io/x/runner",
                                                      node="nowhere"))
    assert pod.metadata.name.startswith("runner-") and len(pod.metadata.name) == len("runner-") + 5
    assert pod.metadata.uid and pod.metadata.creation_timestamp is not None
    assert pod.metadata.generation == 1 and int(pod.metadata.resource_version) > 1
    assert pod.spec.containers[0].image_pull_policy == "Always"
    assert pod.spec.termination_grace_period_seconds == 30
    assert {t.key for t in pod.spec.tolerations} == {"node.kubernetes.io/not-ready",
                                                     "node.kubernetes.io/unreachable"}
    assert pod.status.phase == "Pending"
    again = v1.read_namespaced_pod(pod.metadata.name, "gadget")
    assert again.metadata.uid == pod.metadata.uid


def test_errors_are_real_status_objects(fake_cluster: FakeCluster, v1: Any) -> None:
    fake_cluster.create_namespace("gadget")
    with pytest.raises(ApiException) as missing_ns:
        v1.create_namespaced_pod("nope", pod_body("a"))
    body = status_of(missing_ns.value)
    assert (missing_ns.value.status, body["reason"]) == (404, "NotFound")
    assert body["message"] == 'namespaces "nope" not found'

    with pytest.raises(ApiException) as missing_pod:
        v1.read_namespaced_pod("ghost", "gadget")
    assert status_of(missing_pod.value)["message"] == 'pods "ghost" not found'
    assert status_of(missing_pod.value)["details"] == {"kind": "pods", "name": "ghost"}

    v1.create_namespaced_pod("gadget", pod_body("a"))
    with pytest.raises(ApiException) as dup:
        v1.create_namespaced_pod("gadget", pod_body("a"))
    assert (dup.value.status, status_of(dup.value)["reason"]) == (409, "AlreadyExists")

    no_containers = pod_body("b")
    no_containers["spec"]["containers"] = []
    with pytest.raises(ApiException) as invalid:
        v1.create_namespaced_pod("gadget", no_containers)
    body = status_of(invalid.value)
    assert (invalid.value.status, body["reason"]) == (422, "Invalid")
    assert body["message"] == 'Pod "b" is invalid: spec.containers: Required value'
    assert body["details"]["causes"] == [{"reason": "FieldValueRequired",
                                          "message": "Required value",
                                          "field": "spec.containers"}]

    nameless = pod_body(None)
    nameless["spec"]["containers"][0]["name"] = ""
    with pytest.raises(ApiException) as two:
        v1.create_namespaced_pod("gadget", nameless)
    message = status_of(two.value)["message"]
    assert message.startswith('Pod "" is invalid: [metadata.name: Required value: name or '
                              "generateName is required")
    assert "spec.containers[0].name: Required value" in message

    bad_label = pod_body("c", labels={"session": "not valid!"})
    with pytest.raises(ApiException) as label:
        v1.create_namespaced_pod("gadget", bad_label)
    assert 'metadata.labels: Invalid value: "not valid!"' in status_of(label.value)["message"]
    assert v1.list_namespaced_pod("gadget").items[0].metadata.name == "a"


def test_pod_security_admission_refusal(fake_cluster: FakeCluster, v1: Any) -> None:
    fake_cluster.enforce_pod_security("baseline")
    fake_cluster.create_namespace("gadget")
    body = pod_body("runner", hostPID=True)
    body["spec"]["containers"][0]["securityContext"] = {
        "privileged": True, "capabilities": {"add": ["SYS_ADMIN", "BPF"]}}
    body["spec"]["volumes"] = [{"name": "sys", "hostPath": {"path": "/sys"}}]
    with pytest.raises(ApiException) as refused:
        v1.create_namespaced_pod("gadget", body)
    status = status_of(refused.value)
    assert (refused.value.status, status["reason"]) == (403, "Forbidden")
    assert status["message"] == (
        'pods "runner" is forbidden: violates PodSecurity "baseline:latest": '
        'non-default capabilities (container "main" must not include "BPF", "SYS_ADMIN" in '
        "securityContext.capabilities.add), host namespaces (hostPID=true), "
        'hostPath volumes (volume "sys"), privileged (container "main" must not set '
        "securityContext.privileged=true)")
    fake_cluster.create_namespace("privileged-ns", privileged=True)
    assert v1.create_namespaced_pod("privileged-ns", body).metadata.name == "runner"
    assert v1.create_namespaced_pod("gadget", pod_body("plain")).metadata.name == "plain"


def test_rbac_refusal_and_access_review(fake_cluster: FakeCluster) -> None:
    fake_cluster.create_namespace("gadget")
    fake_cluster.deny("create", "pods", namespace="gadget", user="u")
    user_api = fake_cluster.core_v1(user="u")
    with pytest.raises(ApiException) as refused:
        user_api.create_namespaced_pod("gadget", pod_body("x"))
    assert refused.value.status == 403
    assert status_of(refused.value)["message"] == (
        'pods is forbidden: User "u" cannot create resource "pods" in API group "" in the '
        'namespace "gadget"')
    assert fake_cluster.core_v1().create_namespaced_pod("gadget", pod_body("x"))

    authz = client.AuthorizationV1Api(user_api.api_client)

    def allowed(verb: str) -> bool:
        review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(namespace="gadget", verb=verb,
                                                            resource="pods")))
        status = authz.create_self_subject_access_review(review).status
        assert status is not None
        return bool(status.allowed)

    assert allowed("create") is False and allowed("list") is True

    with pytest.raises(ApiException) as unauthorized:
        client.CoreV1Api(client.ApiClient(_config(fake_cluster.url, "wrong"))).list_namespace()
    assert unauthorized.value.status == 401


def _config(url: str, token: str) -> client.Configuration:
    config = client.Configuration()
    config.host = url
    config.api_key = {"authorization": f"Bearer {token}"}
    return config


def test_patch_update_and_conflicts(fake_cluster: FakeCluster, v1: Any) -> None:
    fake_cluster.create_namespace("gadget")
    created = v1.create_namespaced_pod("gadget", pod_body("p", labels={"a": "1"}))
    patched = v1.patch_namespaced_pod("p", "gadget", {"metadata": {"labels": {"b": "2"},
                                                                     "annotations": {"n": "v"}}})
    assert patched.metadata.labels == {"a": "1", "b": "2"}
    assert patched.metadata.annotations == {"n": "v"}
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)
    assert patched.metadata.generation == 1
    removed = v1.patch_namespaced_pod("p", "gadget",
                                      [{"op": "remove", "path": "/metadata/labels/a"}])
    assert removed.metadata.labels == {"b": "2"}
    with pytest.raises(ApiException) as forbidden_change:
        v1.patch_namespaced_pod("p", "gadget", {"spec": {"restartPolicy": "Always"}})
    assert status_of(forbidden_change.value)["reason"] == "Invalid"
    assert "pod updates may not change fields" in status_of(forbidden_change.value)["message"]
    stale = created.to_dict()
    with pytest.raises(ApiException) as conflict:
        v1.replace_namespaced_pod("p", "gadget", client.V1Pod(
            metadata=client.V1ObjectMeta(name="p", resource_version=stale["metadata"]
                                         ["resource_version"], labels={"c": "3"}),
            spec=created.spec))
    assert (conflict.value.status, status_of(conflict.value)["reason"]) == (409, "Conflict")


def test_watch_replays_from_resource_version_and_times_out(fake_cluster: FakeCluster,
                                                           v1: Any) -> None:
    fake_cluster.create_namespace("gadget")
    before = v1.create_namespaced_pod("gadget", pod_body("early", labels={"app": "x"}))
    rv = before.metadata.resource_version
    v1.patch_namespaced_pod("early", "gadget", {"metadata": {"labels": {"step": "1"}}})
    v1.create_namespaced_pod("gadget", pod_body("other", labels={"app": "y"}))

    def later() -> None:
        time.sleep(0.3)
        v1.delete_namespaced_pod("early", "gadget")

    threading.Thread(target=later).start()
    started = time.monotonic()
    events = [(e["type"], e["object"].metadata.name, e["object"].metadata.labels.get("step"))
              for e in watch.Watch().stream(v1.list_namespaced_pod, "gadget",
                                            label_selector="app=x", resource_version=rv,
                                            timeout_seconds=1)]
    elapsed = time.monotonic() - started
    assert events == [("MODIFIED", "early", "1"), ("DELETED", "early", "1")]
    # Ended by the server at timeoutSeconds (the client sets no timeout of its own; a watch
    # that ignored it would not end at all); how late is up to a loaded machine.
    assert elapsed >= 0.9

    initial = [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(
        v1.list_namespaced_pod, "gadget", timeout_seconds=1)]
    assert initial == [("ADDED", "other")]


def test_watch_field_selector_reports_leaving_objects_as_deleted(fake_cluster: FakeCluster,
                                                                 v1: Any) -> None:
    fake_cluster.create_namespace("gadget")
    pod = v1.create_namespaced_pod("gadget", pod_body("p", labels={"app": "x"}))
    v1.patch_namespaced_pod("p", "gadget", {"metadata": {"labels": {"app": "gone"}}})
    events = [(e["type"], e["object"].metadata.labels["app"]) for e in watch.Watch().stream(
        v1.list_namespaced_pod, "gadget", label_selector="app=x",
        resource_version=pod.metadata.resource_version, timeout_seconds=1)]
    assert events == [("DELETED", "gone")]


def test_watch_expired_resource_version_is_410(fake_cluster: FakeCluster, v1: Any) -> None:
    fake_cluster.create_namespace("gadget")
    old = v1.create_namespaced_pod("gadget", pod_body("p")).metadata.resource_version
    v1.patch_namespaced_pod("p", "gadget", {"metadata": {"labels": {"x": "1"}}})
    fake_cluster.compact_history()
    with pytest.raises(ApiException) as gone:
        list(watch.Watch().stream(v1.list_namespaced_pod, "gadget", resource_version=old,
                                  timeout_seconds=1))
    assert gone.value.status == 410
    assert status_of(gone.value)["reason"] == "Expired"
    assert "too old resource version" in status_of(gone.value)["message"]

    fake_cluster.ctx.watch_expired_as_event = True  # the etcd-backed variant: ERROR event
    with pytest.raises(ApiException) as event:
        list(watch.Watch().stream(v1.list_namespaced_pod, "gadget", resource_version=old,
                                  timeout_seconds=1))
    assert event.value.status == 410 and "Expired: too old resource version" in event.value.reason


def test_watch_bookmarks_and_initial_events(fake_cluster: FakeCluster, v1: Any) -> None:
    fake_cluster.ctx.bookmark_interval = 0.2
    fake_cluster.create_namespace("gadget")
    v1.create_namespaced_pod("gadget", pod_body("p"))
    events = list(watch.Watch().stream(v1.list_namespaced_pod, "gadget", timeout_seconds=1,
                                       allow_watch_bookmarks=True, send_initial_events=True,
                                       resource_version_match="NotOlderThan",
                                       resource_version="0"))
    assert events[0]["type"] == "ADDED" and events[0]["object"].metadata.name == "p"
    end = events[1]["raw_object"]["metadata"]
    assert events[1]["type"] == "BOOKMARK"
    assert end["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert {e["type"] for e in events[2:]} == {"BOOKMARK"}
    assert int(end["resourceVersion"]) == fake_cluster.store.current_rv()


def test_unknown_fields_dry_run_and_delete_collection(fake_cluster: FakeCluster,
                                                      v1: Any) -> None:
    fake_cluster.create_namespace("gadget")
    typo = pod_body("typo")  # the client refuses unknown fields itself: send raw JSON
    typo["spec"]["containers"][0]["imagePullPolicyy"] = "Never"
    pods = "/api/v1/namespaces/gadget/pods"
    code, _, strict = raw(fake_cluster, "POST", pods + "?fieldValidation=Strict", typo)
    assert (code, strict["message"]) == (400, (
        'Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field '
        '"spec.containers[0].imagePullPolicyy"'))
    code, headers, _ = raw(fake_cluster, "POST", pods, typo)
    assert code == 201
    assert headers["Warning"] == r'299 - "unknown field \"spec.containers[0].imagePullPolicyy\""'
    stored = fake_cluster.get_pod("gadget", "typo")
    assert stored is not None and "imagePullPolicyy" not in stored["spec"]["containers"][0]

    dry = v1.create_namespaced_pod("gadget", pod_body("dry"), dry_run="All")
    assert dry.metadata.name == "dry" and fake_cluster.get_pod("gadget", "dry") is None

    for i in range(3):
        fake_cluster.create_target_pod(f"t-{i}", "gadget", labels={"app": "x" if i else "y"})
    v1.delete_collection_namespaced_pod("gadget", label_selector="app=x")
    fake_cluster.wait_for(lambda: sorted(p["metadata"]["name"] for p in fake_cluster.pods(
        "gadget")) == ["t-0", "typo"], what="only unmatched pods left")


def test_request_log_and_strictness(fake_cluster: FakeCluster, v1: Any) -> None:
    fake_cluster.clear_requests()
    v1.list_namespaced_pod("default", label_selector="app=x")
    assert fake_cluster.writes() == []
    (listing,) = fake_cluster.requests("GET", "/api/v1/namespaces/default/pods")
    assert listing.param("labelSelector") == "app=x" and listing.user == "admin"

    pool = urllib3.PoolManager()
    url = fake_cluster.url
    headers = {"Authorization": f"Bearer {fake_cluster.tokens['admin']}"}

    def call(method: str, path: str, body: bytes | None = None,
             content_type: str | None = None) -> tuple[int, dict[str, Any]]:
        h = dict(headers)
        if content_type:
            h["Content-Type"] = content_type
        response = pool.request(method, url + path, body=body, headers=h)
        return response.status, json.loads(response.data)

    assert call("GET", "/api/v1/widgets")[1]["reason"] == "NotFound"
    assert call("FOO", "/api/v1/namespaces/default/pods")[1]["reason"] == "MethodNotAllowed"
    assert call("GET", "/api/v2/pods")[0] == 404
    assert call("POST", "/api/v1/namespaces/default/pods/x", b"{}",
                "application/json")[1]["code"] == 405
    code, bad = call("POST", "/api/v1/namespaces/default/pods", b"{not json",
                     "application/json")
    assert (code, bad["reason"]) == (400, "BadRequest")
    code, media = call("POST", "/api/v1/namespaces/default/pods", b"{}", "text/plain")
    assert (code, media["reason"]) == (415, "UnsupportedMediaType")
    fake_cluster.create_target_pod("t", "default")
    code, _ = call("PATCH", "/api/v1/namespaces/default/pods/t", b'{"metadata":{}}')
    assert code == 415
    code, wrong_type = call("POST", "/api/v1/namespaces/default/pods",
                            json.dumps({"metadata": {"name": "n", "labels": {"a": 1}},
                                        "spec": {"containers": []}}).encode(),
                            "application/json")
    assert code == 400 and "cannot unmarshal number" in wrong_type["message"]
    assert [r.status for r in fake_cluster.writes()] == [405, 400, 415, 415, 400]
    assert [r.status for r in fake_cluster.requests("FOO")] == [405]


def test_namespace_deletion_removes_contents(fake_cluster: FakeCluster, v1: Any) -> None:
    fake_cluster.create_namespace("doomed")
    fake_cluster.create_target_pod("a", "doomed")
    stubborn = ["sh", "-c", 'trap "" TERM; while true; do sleep 0.05; done']
    v1.create_namespaced_pod("doomed", pod_body("runner", node="node-b", command=stubborn,
                                                terminationGracePeriodSeconds=1))
    fake_cluster.wait_for_phase("doomed", "runner", "Running")
    deleted = v1.delete_namespace("doomed")
    assert deleted["kind"] == "Namespace" and deleted["status"]["phase"] == "Terminating"
    with pytest.raises(ApiException) as refused:
        v1.create_namespaced_pod("doomed", pod_body("late"))
    assert status_of(refused.value)["message"] == (
        'pods "late" is forbidden: unable to create new content in namespace doomed because it '
        "is being terminated")
    fake_cluster.wait_for(lambda: fake_cluster.store.get("namespaces", "", "doomed") is None)
    assert fake_cluster.pods("doomed") == [] and fake_cluster.events("doomed") == []


# -- logs through the official client -------------------------------------------------------
def test_follow_log_streams_before_exit(fake_cluster: FakeCluster, v1: Any) -> None:
    fake_cluster.create_namespace("gadget")
    script = "echo one; sleep 0.8; echo two; sleep 0.2; echo err >&2"
    fake_cluster.map_image("ghcr.io/x/ticker:1", ["sh", "-c", script])
    v1.create_namespaced_pod("gadget", pod_body("tick", image="ghcr.io/x/ticker:1",
                                                node="node-a"))
    fake_cluster.wait_for_phase("gadget", "tick", "Running")
    lines, stamps = [], []
    for line in watch.Watch().stream(v1.read_namespaced_pod_log, "tick", "gadget"):
        lines.append(line)
        stamps.append(time.monotonic())
    assert lines == ["one", "two", "err"]
    assert stamps[1] - stamps[0] > 0.5, "first line must arrive before the process ends"
    final = fake_cluster.wait_for_phase("gadget", "tick", "Succeeded")
    assert final["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert v1.read_namespaced_pod_log("tick", "gadget", tail_lines=1) == "err\n"
    assert v1.read_namespaced_pod_log("tick", "gadget", limit_bytes=5) == "one\nt"
    stamped = v1.read_namespaced_pod_log("tick", "gadget", timestamps=True).splitlines()
    assert [s.split(" ", 1)[1] for s in stamped] == ["one", "two", "err"]
    assert stamped[0].split(" ", 1)[0].endswith("Z") and len(stamped[0].split(" ")[0]) == 30


def test_log_errors_match_the_kubelet(fake_cluster: FakeCluster, v1: Any) -> None:
    fake_cluster.create_namespace("gadget")
    body = pod_body("two", node="node-a", command=["sleep", "30"])
    body["spec"]["containers"].append({"name": "side", "image": "busybox",
                                       "command": ["sleep", "30"]})
    v1.create_namespaced_pod("gadget", body)
    with pytest.raises(ApiException) as which:
        v1.read_namespaced_pod_log("two", "gadget")
    assert status_of(which.value)["message"] == (
        "a container name must be specified for pod two, choose one of: [main side]")
    with pytest.raises(ApiException) as invalid:
        v1.read_namespaced_pod_log("two", "gadget", container="nope")
    assert status_of(invalid.value)["message"] == "container nope is not valid for pod two"
    fake_cluster.fail_image_pull(node="node-b")
    v1.create_namespaced_pod("gadget", pod_body("pull", node="node-b", command=["true"]))
    fake_cluster.wait_for_pod("gadget", "pull", lambda p: any(
        cs["state"].get("waiting", {}).get("reason") == "ErrImagePull"
        for cs in p["status"].get("containerStatuses", [])))
    with pytest.raises(ApiException) as waiting:
        v1.read_namespaced_pod_log("pull", "gadget")
    assert waiting.value.status == 400
    assert status_of(waiting.value)["message"] == (
        'container "main" in pod "pull" is waiting to start: image can\'t be pulled')

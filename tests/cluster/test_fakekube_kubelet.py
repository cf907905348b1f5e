"""The process-kubelet and scheduler: phases, exit codes, deadlines, deletion, failures.

Runner pods here are real processes on this machine; assertions read what the official
client (and kubectl) would read, plus the process table for leaks.
"""

from __future__ import annotations

import re
import sys
import time
from typing import Any

import pytest
import urllib3
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from tests.cluster.fakekube import FakeCluster
from tests.cluster.fakekube.runtime import group_alive
from tests.cluster.helpers import kubectl_rows

pytestmark = pytest.mark.cluster
NS = "gadget"
CONTAINER_ID = re.compile(r"^containerd://[0-9a-f]{64}$")


def runner(name: str, *, node: str | None = None, image: str = "busybox:1.36",
           command: list[str] | None = None, args: list[str] | None = None,
           env: list[dict[str, Any]] | None = None, restart: str = "Never",
           **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "runner", "image": image}
    for key, value in (("command", command), ("args", args), ("env", env)):
        if value is not None:
            container[key] = value
    body: dict[str, Any] = {"metadata": {"name": name, "labels": {"app": "runner"}},
                            "spec": {"containers": [container], "restartPolicy": restart, **spec}}
    if node:
        body["spec"]["nodeName"] = node
    return body


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


@pytest.fixture
def cluster(fake_cluster: FakeCluster) -> FakeCluster:
    fake_cluster.create_namespace(NS, privileged=True)
    return fake_cluster


@pytest.fixture
def v1(cluster: FakeCluster) -> Any:
    return cluster.core_v1()


def state(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["status"]["containerStatuses"][0]["state"]


def waiting_reason(pod: dict[str, Any]) -> str | None:
    statuses = pod["status"].get("containerStatuses") or [{}]
    return statuses[0].get("state", {}).get("waiting", {}).get("reason")


def test_phases_pending_running_succeeded(cluster: FakeCluster, v1: Any) -> None:
    created = v1.create_namespaced_pod(NS, runner("ok", node="node-a",
                                                  command=sh("echo hi; sleep 0.5")))
    seen: list[tuple[str, str | None]] = []
    for event in watch.Watch().stream(v1.list_namespaced_pod, NS, timeout_seconds=30,
                                      resource_version=created.metadata.resource_version):
        pod = event["object"]
        statuses = pod.status.container_statuses or []
        detail = None
        if statuses and statuses[0].state.waiting:
            detail = statuses[0].state.waiting.reason
        elif statuses and statuses[0].state.terminated:
            detail = statuses[0].state.terminated.reason
        if not seen or seen[-1] != (pod.status.phase, detail):
            seen.append((pod.status.phase, detail))
        if pod.status.phase == "Succeeded":
            break
    assert seen == [("Pending", "ContainerCreating"), ("Running", None),
                    ("Succeeded", "Completed")]
    final = cluster.get_pod(NS, "ok")
    assert final is not None
    terminated = state(final)["terminated"]
    assert terminated["exitCode"] == 0 and CONTAINER_ID.match(terminated["containerID"])
    conditions = {c["type"]: (c["status"], c.get("reason")) for c in final["status"]["conditions"]}
    assert conditions["Ready"] == ("False", "PodCompleted")
    assert final["status"]["hostIP"] == "172.18.0.3" and final["status"]["podIP"].startswith(
        "10.244.1.")
    reasons = [e["reason"] for e in cluster.events(NS, "ok")]
    assert reasons[:3] == ["Pulled", "Created", "Started"]


def test_exit_code_and_fallback_termination_message(cluster: FakeCluster, v1: Any) -> None:
    body = runner("bad", node="node-b", command=sh("echo starting; echo boom >&2; exit 3"))
    body["spec"]["containers"][0]["terminationMessagePolicy"] = "FallbackToLogsOnError"
    v1.create_namespaced_pod(NS, body)
    pod = cluster.wait_for_phase(NS, "bad", "Failed")
    terminated = state(pod)["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    assert "boom" in terminated["message"]
    rows = kubectl_rows(cluster, "pod", "bad", "-n", NS)
    assert rows is None or rows[0][:3] == ["bad", "0/1", "Error"]


def test_active_deadline_kills_and_fails(cluster: FakeCluster, v1: Any) -> None:
    v1.create_namespaced_pod(NS, runner("slow", node="node-c", command=["sleep", "30"],
                                        activeDeadlineSeconds=1))
    started = time.monotonic()
    # Failed well before the 30 s sleep could end; never before the deadline (no upper bound
    # on how late: a loaded machine is slow to notice).
    pod = cluster.wait_for_phase(NS, "slow", "Failed", timeout=25)
    assert time.monotonic() - started > 0.9
    assert pod["status"]["reason"] == "DeadlineExceeded"
    assert pod["status"]["message"] == ("Pod was active on the node longer than the specified "
                                        "deadline")
    assert state(pod)["terminated"]["exitCode"] == 143
    assert not any(group_alive(g) for g in cluster.kubelet.process_groups())


def test_image_pull_failure_then_recovery(cluster: FakeCluster, v1: Any) -> None:
    cluster.map_image("ghcr.io/x/runner:0.1.0", ["sh", "-c", "echo pulled-ok"])
    cluster.fail_image_pull(node="node-b", message="rpc error: code = Unknown desc = 503")
    v1.create_namespaced_pod(NS, runner("pull", node="node-b", image="ghcr.io/x/runner:0.1.0"))
    pod = cluster.wait_for_pod(NS, "pull", lambda p: waiting_reason(p) == "ImagePullBackOff")
    assert pod["status"]["phase"] == "Pending"
    failed = [e for e in cluster.events(NS, "pull") if e["reason"] == "Failed"]
    assert failed and failed[0]["type"] == "Warning"
    assert "503" in failed[0]["message"] and "ghcr.io/x/runner:0.1.0" in failed[0]["message"]
    rows = kubectl_rows(cluster, "pod", "pull", "-n", NS)
    assert rows is None or rows[0][2] == "ImagePullBackOff"
    cluster.clear_faults()
    cluster.wait_for_phase(NS, "pull", "Succeeded")
    assert v1.read_namespaced_pod_log("pull", NS) == "pulled-ok\n"


def test_unknown_image_and_missing_executable(cluster: FakeCluster, v1: Any) -> None:
    v1.create_namespaced_pod(NS, runner("noimg", node="node-a", image="ghcr.io/x/unknown:9"))
    pod = cluster.wait_for_pod(NS, "noimg", lambda p: waiting_reason(p) == "ErrImagePull")
    message = pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
    assert message.endswith("ghcr.io/x/unknown:9: not found")
    v1.create_namespaced_pod(NS, runner("noexe", node="node-a", command=["no-such-binary"]))
    pod = cluster.wait_for_phase(NS, "noexe", "Failed")
    terminated = state(pod)["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (128, "StartError")
    assert 'exec: "no-such-binary": executable file not found in $PATH' in terminated["message"]


def test_scheduler_honours_affinity_and_taints(cluster: FakeCluster, v1: Any) -> None:
    cluster.taint_node("node-a", "dedicated", "gadget")
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-a"]}]}]}}}
    v1.create_namespaced_pod(NS, runner("pinned", command=["true"], affinity=affinity))
    pod = cluster.wait_for_pod(NS, "pinned", lambda p: any(
        c["type"] == "PodScheduled" for c in p["status"].get("conditions", [])))
    (cond,) = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert (cond["status"], cond["reason"]) == ("False", "Unschedulable")
    assert cond["message"] == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gadget}, "
        "2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are "
        "available: 3 Preemption is not helpful for scheduling.")
    assert pod["status"]["phase"] == "Pending" and "nodeName" not in pod["spec"]
    # The scheduler writes the condition, then the event: wait for the event, then check that
    # it is the only one (retries do not repeat an unchanged FailedScheduling).
    cluster.wait_for(lambda: cluster.events(NS, "pinned"), what="the FailedScheduling event")
    assert [e["reason"] for e in cluster.events(NS, "pinned")] == ["FailedScheduling"]
    tolerations = pod["spec"]["tolerations"] + [
        {"key": "dedicated", "operator": "Equal", "value": "gadget", "effect": "NoSchedule"}]
    v1.patch_namespaced_pod("pinned", NS, {"spec": {"tolerations": tolerations}})
    done = cluster.wait_for_phase(NS, "pinned", "Succeeded")
    assert done["spec"]["nodeName"] == "node-a"


def test_scheduler_spreads_and_reports_injected_refusal(cluster: FakeCluster, v1: Any) -> None:
    for i in range(3):
        v1.create_namespaced_pod(NS, runner(f"spread-{i}", command=["sleep", "5"]))
    pods = [cluster.wait_for_pod(NS, f"spread-{i}", lambda p: bool(p["spec"].get("nodeName")))
            for i in range(3)]
    assert sorted(p["spec"]["nodeName"] for p in pods) == ["node-a", "node-b", "node-c"]
    cluster.fail_scheduling(name_prefix="big-")
    v1.create_namespaced_pod(NS, runner("big-1", command=["true"]))
    pod = cluster.wait_for_pod(NS, "big-1", lambda p: bool(p["status"].get("conditions")))
    assert pod["status"]["conditions"][0]["message"].startswith(
        "0/3 nodes are available: 3 Insufficient cpu.")


def test_kubelet_rejection_and_crash_injection(cluster: FakeCluster, v1: Any) -> None:
    cluster.reject_on_kubelet(node="node-a")
    v1.create_namespaced_pod(NS, runner("rejected", node="node-a", command=["true"]))
    pod = cluster.wait_for_phase(NS, "rejected", "Failed")
    assert pod["status"]["reason"] == "OutOfcpu"
    cluster.crash(node="node-c", exit_code=42, lines=["loading eBPF: permission denied", "bye"])
    v1.create_namespaced_pod(NS, runner("crashy", node="node-c", command=["sleep", "30"]))
    pod = cluster.wait_for_phase(NS, "crashy", "Failed")
    assert state(pod)["terminated"]["exitCode"] == 42
    assert v1.read_namespaced_pod_log("crashy", NS) == "loading eBPF: permission denied\nbye\n"


def test_node_lost(cluster: FakeCluster, v1: Any) -> None:
    v1.create_namespaced_pod(NS, runner("doomed", node="node-b", command=["sleep", "60"]))
    cluster.wait_for_phase(NS, "doomed", "Running")
    groups = cluster.kubelet.process_groups()
    assert groups and all(group_alive(g) for g in groups)
    cluster.lose_node("node-b")
    assert not any(group_alive(g) for g in groups)
    pod = cluster.get_pod(NS, "doomed")
    assert pod is not None
    assert (pod["status"]["phase"], pod["status"]["reason"]) == ("Unknown", "NodeLost")
    rows = kubectl_rows(cluster, "nodes")
    assert rows is None or rows[1][:2] == ["node-b", "NotReady"]
    with pytest.raises(ApiException) as unreachable:
        v1.read_namespaced_pod_log("doomed", NS)
    assert unreachable.value.status == 500
    assert "no route to host" in str(unreachable.value.body)
    v1.delete_namespaced_pod("doomed", NS)
    stuck = cluster.get_pod(NS, "doomed")
    assert stuck is not None and stuck["metadata"]["deletionTimestamp"]
    time.sleep(0.3)
    assert cluster.get_pod(NS, "doomed") is not None, "nobody finalizes on a dead node"
    v1.delete_namespaced_pod("doomed", NS, grace_period_seconds=0)
    assert cluster.get_pod(NS, "doomed") is None
    v1.create_namespaced_pod(NS, runner("after", command=["true"]))
    assert cluster.wait_for_phase(NS, "after", "Succeeded")["spec"]["nodeName"] != "node-b"


def _follow(v1: Any, name: str) -> tuple[list[str], bool]:
    """Read a follow stream with timestamps; return (lines, broke_mid_stream)."""
    response = v1.read_namespaced_pod_log(name, NS, follow=True, timestamps=True,
                                          _preload_content=False)
    lines, buffer = [], b""
    try:
        for chunk in response.stream(amt=None, decode_content=False):
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            lines += [line.decode() for line in complete]
    except urllib3.exceptions.ProtocolError:
        return lines, True
    finally:
        response.release_conn()
    return lines, False


def test_follow_stream_drop_and_reconnect_without_duplicates(cluster: FakeCluster,
                                                             v1: Any) -> None:
    script = "for i in 1 2 3 4 5 6; do echo line-$i; sleep 0.1; done"
    cluster.drop_log_stream(after_lines=2, pod="chatty")
    v1.create_namespaced_pod(NS, runner("chatty", node="node-a", command=sh(script)))
    cluster.wait_for_phase(NS, "chatty", "Running")
    first, broke = _follow(v1, "chatty")
    assert broke and [line.split(" ", 1)[1] for line in first] == ["line-1", "line-2"]
    second, broke_again = _follow(v1, "chatty")
    assert not broke_again
    merged = first + [line for line in second if line.split(" ")[0] > first[-1].split(" ")[0]]
    assert [line.split(" ", 1)[1] for line in merged] == [f"line-{i}" for i in range(1, 7)]

    cluster.drop_log_stream(after_lines=1, pod="eof", mode="eof")
    v1.create_namespaced_pod(NS, runner("eof", node="node-a", command=sh(script)))
    cluster.wait_for_phase(NS, "eof", "Running")
    lines, broke = _follow(v1, "eof")
    assert not broke and len(lines) == 1
    still = cluster.get_pod(NS, "eof")
    assert still is not None and still["status"]["phase"] == "Running"


def test_graceful_delete_sends_sigterm_and_removes_pod(cluster: FakeCluster, v1: Any) -> None:
    script = 'trap "echo got-term; exit 0" TERM; echo ready; while true; do sleep 0.05; done'
    created = v1.create_namespaced_pod(NS, runner("graceful", node="node-c", command=sh(script)))
    cluster.wait_for_pod(NS, "graceful", lambda p: "ready" in cluster.pod_log(NS, "graceful"))
    log = cluster.ctx.logs.get(created.metadata.uid, "runner")
    v1.delete_namespaced_pod("graceful", NS)
    types = []
    for event in watch.Watch().stream(v1.list_namespaced_pod, NS, timeout_seconds=30,
                                      resource_version=created.metadata.resource_version):
        types.append((event["type"], bool(event["object"].metadata.deletion_timestamp)))
        if event["type"] == "DELETED":
            break
    assert types[-1] == ("DELETED", True) and ("MODIFIED", True) in types
    assert log is not None and log.text() == "ready\ngot-term\n"
    assert not any(group_alive(g) for g in cluster.kubelet.process_groups())


def test_grace_period_ends_with_sigkill(cluster: FakeCluster, v1: Any) -> None:
    script = 'trap "" TERM; echo ready; while true; do sleep 0.05; done'
    v1.create_namespaced_pod(NS, runner("stubborn", node="node-a", command=sh(script),
                                        terminationGracePeriodSeconds=1))
    cluster.wait_for_pod(NS, "stubborn", lambda p: "ready" in cluster.pod_log(NS, "stubborn"))
    started = time.monotonic()
    v1.delete_namespaced_pod("stubborn", NS)
    # The loop ignores SIGTERM forever: only the SIGKILL after the grace period removes it.
    cluster.wait_gone(NS, "stubborn", timeout=25)
    assert time.monotonic() - started > 0.9
    assert not any(group_alive(g) for g in cluster.kubelet.process_groups())


def test_env_field_refs_expansion_and_image_table(make_fake_cluster: Any) -> None:
    cluster = make_fake_cluster(nodes=["alpha", "beta", "gamma"], extra_env={"EXTRA": "yes"})
    cluster.create_namespace(NS)
    cluster.map_image("ghcr.io/x/argv:1", [sys.executable, "-c",
                                           "import sys; print(sys.argv[1:])"],
                      env={"IMAGE_ENV": "from-image"})
    v1 = cluster.core_v1()
    env: list[dict[str, Any]] = [
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "GREETING", "value": "hi-$(NODE_NAME)"}]
    v1.create_namespaced_pod(NS, runner("envy", node="beta", env=env, command=sh(
        'echo "$NODE_NAME $POD_NAME $GREETING $EXTRA $HOSTNAME"; echo "$1"'),
        args=["arg0", "$(POD_NAME)-expanded"]))
    cluster.wait_for_phase(NS, "envy", "Succeeded")
    assert cluster.pod_log(NS, "envy") == "beta envy hi-beta yes envy\nenvy-expanded\n"
    v1.create_namespaced_pod(NS, runner("argv", node="gamma", image="ghcr.io/x/argv:1",
                                        args=["x", "y"]))
    cluster.wait_for_phase(NS, "argv", "Succeeded")
    assert cluster.pod_log(NS, "argv") == "['x', 'y']\n"
    cluster.map_image("ghcr.io/x/runner", [sys.executable, "-c",
                                           "import os, sys; print(sys.argv[1:], "
                                           "os.environ['IMAGE_ENV'])"],
                      env={"IMAGE_ENV": "runner-env"}, replace_command=True)
    v1.create_namespaced_pod(NS, runner("mapped", node="alpha", image="ghcr.io/x/runner:0.1.0",
                                        command=["node-runner", "run"], args=["trace_open"]))
    cluster.wait_for_phase(NS, "mapped", "Succeeded")
    assert cluster.pod_log(NS, "mapped") == "['run', 'trace_open'] runner-env\n"
    nodes = {n.metadata.name: n.metadata.labels for n in v1.list_node().items}
    assert sorted(nodes) == ["alpha", "beta", "gamma"]
    assert nodes["beta"]["kubernetes.io/hostname"] == "beta"
    assert nodes["beta"]["kubernetes.io/os"] == "linux"


def test_restart_on_failure_keeps_previous_log(cluster: FakeCluster, v1: Any) -> None:
    v1.create_namespaced_pod(NS, runner("flappy", node="node-b", restart="OnFailure",
                                        command=sh("echo run; exit 1")))
    pod = cluster.wait_for_pod(NS, "flappy", lambda p: (p["status"].get("containerStatuses") or
                                                        [{}])[0].get("restartCount", 0) >= 2)
    status = pod["status"]["containerStatuses"][0]
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert pod["status"]["phase"] == "Running"
    assert v1.read_namespaced_pod_log("flappy", NS, previous=True) == "run\n"


def test_target_pods_with_and_without_hook(cluster: FakeCluster, v1: Any) -> None:
    calls: list[tuple[str, str]] = []

    def hook(event: str, pod: dict[str, Any]) -> dict[str, str] | None:
        calls.append((event, pod["metadata"]["name"]))
        return {"app": "containerd://" + "a" * 64} if event == "start" else None

    plain = cluster.create_target_pod("cart-1", "shop", labels={"app": "cart"},
                                      containers=("app", "istio-proxy"),
                                      owner=("ReplicaSet", "cart-7d4b9"))
    assert plain["status"]["phase"] == "Running"
    ids = [cs["containerID"] for cs in plain["status"]["containerStatuses"]]
    assert len(ids) == 2 and all(CONTAINER_ID.match(i) for i in ids)
    assert plain["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    hooked = cluster.create_target_pod("cart-2", "shop", labels={"app": "cart"}, node="node-c",
                                       runtime=hook)
    assert hooked["status"]["containerStatuses"][0]["containerID"] == "containerd://" + "a" * 64
    assert calls == [("start", "cart-2")]
    assert cluster.kubelet.process_groups() == []
    listed = v1.list_namespaced_pod("shop", label_selector="app=cart")
    assert [p.status.container_statuses[0].ready for p in listed.items] == [True, True]
    v1.delete_namespaced_pod("cart-2", "shop")
    cluster.wait_gone("shop", "cart-2")
    assert calls == [("start", "cart-2"), ("stop", "cart-2")]

    real = cluster.create_target_pod(
        "worker", "shop", node="node-a", run_as_process=True,
        containers=[{"name": "app", "image": "busybox", "command": ["sleep", "30"]}])
    assert real["status"]["phase"] == "Running"
    assert CONTAINER_ID.match(real["status"]["containerStatuses"][0]["containerID"])
    assert len(cluster.kubelet.process_groups()) == 1


def test_no_process_survives_teardown() -> None:
    cluster = FakeCluster().start()
    try:
        cluster.create_namespace(NS)
        v1 = cluster.core_v1()
        v1.create_namespaced_pod(NS, runner("bg", node="node-a",
                                            command=sh("sleep 300 & sleep 300")))
        v1.create_namespaced_pod(NS, runner("fg", node="node-b", command=["sleep", "300"]))
        for name in ("bg", "fg"):
            cluster.wait_for_phase(NS, name, "Running")
        groups = cluster.kubelet.process_groups()
        assert len(groups) == 2 and all(group_alive(g) for g in groups)
    finally:
        cluster.stop()
    assert not any(group_alive(g) for g in groups)
    assert cluster.kubelet.leaked_process_groups() == []

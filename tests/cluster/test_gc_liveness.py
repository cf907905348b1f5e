"""`gc` deletes only sessions that are gone: their client stopped renewing them, or their
deadline passed. A running session is kept (its client renews `kubectl-gadget.io/renewed-at`
on its pods), unless `gc --all` forces; `list` shows gadget, age, last renewal and state.
"""

from __future__ import annotations

import signal
import time

import pytest

from kubectl_gadget.cluster.liveness import RENEW_INTERVAL, STALE_AFTER
from kubectl_gadget.cluster.runner_pod import (
    COMPONENT,
    COMPONENT_LABEL,
    CREATED_AT,
    DEADLINE,
    GADGET,
    MANAGED_BY,
    MANAGER,
    NODE_LABEL,
    RENEWED_AT,
    SESSION_LABEL,
    rfc3339,
)
from tests.cluster.product_fixtures import RUNNER_NAMESPACE, GadgetCluster

pytestmark = pytest.mark.usefixtures("no_runner_leftovers")


def test_running_session_is_kept_renewed_and_only_all_deletes_it(
        gadget_cluster: GadgetCluster) -> None:
    gc = gadget_cluster
    gc.target("cart-a", node="node-a")
    client = gc.run_gadget("-n", "shop", "-l", "app=cart", "--timeout", "90")
    pods = gc.wait_runners_streaming(client.session, ["node-a"])
    name = pods["node-a"]["metadata"]["name"]
    first = pods["node-a"]["metadata"]["annotations"][RENEWED_AT]

    gc.clear_requests()
    kept = gc.command("gc")
    assert kept.returncode == 0, kept.stderr
    assert f"keeping {RUNNER_NAMESPACE}/{name}: its session is running" in kept.stderr
    assert gc.requests("DELETE") == [] and gc.get_pod(RUNNER_NAMESPACE, name) is not None

    listed = gc.command("list")
    row = next(line.split() for line in listed.stdout.splitlines() if name in line)
    assert row[0] == client.session and row[3].endswith("trace_exec"), listed.stdout
    assert row[-2] == "live", listed.stdout

    # The client renews the annotation while the run goes on.
    deadline = time.monotonic() + RENEW_INTERVAL + 10
    renewed = first
    while renewed == first and time.monotonic() < deadline:
        time.sleep(0.5)
        pod = gc.get_pod(RUNNER_NAMESPACE, name)
        assert pod is not None
        renewed = pod["metadata"]["annotations"][RENEWED_AT]
    assert renewed > first, "the client never renewed its pod"
    assert gc.requests("PATCH"), "no renewal request"

    forced = gc.command("gc", "--all")
    assert forced.returncode == 0, forced.stderr
    # The run ships build/gadgets/trace_exec, a local directory: its ConfigMap goes too.
    assert sorted(forced.stdout.splitlines()) == [
        f"deleted configmap {RUNNER_NAMESPACE}/gadget-{client.session}-files",
        f"deleted {RUNNER_NAMESPACE}/{name}"], forced.stdout
    client.signal(signal.SIGINT)
    client.wait(60)
    assert "Traceback" not in client.stderr


def _plant(gc: GadgetCluster, name: str, renewed: float | None, deadline: float) -> str:
    now = time.time()
    notes = {CREATED_AT: rfc3339(now - 600), DEADLINE: rfc3339(deadline),
             GADGET: "trace_exec"}
    if renewed is not None:
        notes[RENEWED_AT] = rfc3339(renewed)
    labels = {MANAGED_BY: MANAGER, COMPONENT_LABEL: COMPONENT, SESSION_LABEL: name[7:15],
              NODE_LABEL: "node-a"}
    gc.create_target_pod(name, RUNNER_NAMESPACE, node="node-a", labels=labels,
                         annotations=notes, image="ghcr.io/kubectl-gadget/node-runner:0.0.9")
    return f"{RUNNER_NAMESPACE}/{name}"


def test_gc_deletes_sessions_that_stopped_renewing_or_passed_their_deadline(
        gadget_cluster: GadgetCluster) -> None:
    gc = gadget_cluster
    now = time.time()
    stale = _plant(gc, "gadget-5ta1e000-x", now - STALE_AFTER - 30, now + 3600)
    expired = _plant(gc, "gadget-dead0000-x", now, now - 1)
    silent = _plant(gc, "gadget-0051e000-x", None, now + 3600)
    live = _plant(gc, "gadget-11fe0000-x", now, now + 3600)

    listed = gc.command("list")
    states = {line.split()[-1]: line.split()[-2] for line in listed.stdout.splitlines()[1:]}
    assert states == {stale: "orphaned", expired: "orphaned", silent: "orphaned",
                      live: "live"}, listed.stdout

    done = gc.command("gc")
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == sorted(
        f"deleted {p}" for p in (stale, expired, silent)), done.stdout
    assert f"keeping {live}: its session is running" in done.stderr
    forced = gc.command("gc", "--all")
    assert forced.stdout.splitlines() == [f"deleted {live}"], forced.stdout


def test_liveness_rules_on_pod_objects() -> None:
    from kubectl_gadget.cluster.liveness import liveness

    now = 1_800_000_000.0

    def pod(renewed: float | None, deadline: float, phase: str = "Running") -> dict:
        notes = {CREATED_AT: rfc3339(now - 600), DEADLINE: rfc3339(deadline)}
        if renewed is not None:
            notes[RENEWED_AT] = rfc3339(renewed)
        return {"metadata": {"annotations": notes}, "status": {"phase": phase}}

    assert not liveness(pod(now - 5, now + 60), now).orphaned
    assert liveness(pod(now - STALE_AFTER - 1, now + 60), now).why.startswith("not renewed")
    assert liveness(pod(now, now - 1), now).why == "deadline passed"
    assert liveness(pod(None, now + 60), now).why == "never renewed"
    assert liveness(pod(now, now + 60, "Failed"), now).why == "runner ended"

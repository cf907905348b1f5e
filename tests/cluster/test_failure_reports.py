"""Failures of single nodes are reported when they happen, and exit codes follow the README.

A runner killed mid-run, a node whose runner pod never starts, a log stream given up on: one
line on stderr at once (while the other nodes keep streaming), and the summary still lists
them. Every node's image pull failing exits 7; Ctrl-C while runner pods are still starting is
a normal stop (0), not "gadget failed (exit code 143)". Log streams dropped again and again,
each time after some progress, are followed to the end: the reconnect budget is per outage.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import time
from typing import Any

import pytest

from kubectl_gadget.cluster.runner_pod import NODE_LABEL
from tests.cluster.product_fixtures import ROOT, RUNNER_NAMESPACE, TRACE_EXEC, GadgetCluster

pytestmark = pytest.mark.usefixtures("no_runner_leftovers")

Event = dict[str, Any]


def _echoed(events: list[Event], prefix: str) -> list[str]:
    out = []
    for e in events:
        words = str(e.get("args", "")).split()
        if e.get("proc.comm") == "echo" and words and words[-1].startswith(prefix):
            out.append(words[-1])
    return out


def test_runner_killed_mid_run_is_reported_at_once(gadget_cluster: GadgetCluster) -> None:
    gc = gadget_cluster
    gc.target("cart-a", node="node-a")
    gc.target("cart-b", node="node-b")
    client = gc.run_gadget("-n", "shop", "-l", "app=cart", "--timeout", "60")
    pods = gc.wait_runners_streaming(client.session, ["node-a", "node-b"])
    victim = pods["node-b"]["metadata"]["name"]
    for pid in gc.runner_pids(victim):
        os.kill(pid, signal.SIGKILL)
    # Reported while the run goes on, not only in the summary at the end.
    client.wait_stderr(r"node node-b: runner ended: gadget failed \(exit code 137\)")
    assert client.proc.poll() is None, client.stderr
    gc.workloads.exec("shop", "cart-a", ["/bin/echo", "still-a"])
    client.wait_events(lambda ev: _echoed(ev, "still-") == ["still-a"], what="node-a's event")
    client.signal(signal.SIGINT)
    assert client.wait(60) == 1, client.stderr
    assert "summary:" in client.stderr and "  node-b: gadget failed (exit code 137)" in \
        client.stderr
    assert "Traceback" not in client.stderr


def test_startup_timeout_is_reported_at_once(gadget_cluster: GadgetCluster) -> None:
    gc = gadget_cluster
    gc.fail_scheduling("Insufficient cpu", labels={NODE_LABEL: "node-a"})
    client = gc.run_gadget("-A", "--node", "node-a,node-b", "--timeout", "60",
                           "--startup-timeout", "2")
    client.wait_stderr(r"node node-a: not started after 2s: unschedulable")
    assert client.proc.poll() is None, client.stderr  # node-b still runs
    client.signal(signal.SIGINT)
    assert client.wait(60) == 1, client.stderr
    assert "  node-a: not started after 2s" in client.stderr.split("summary:", 1)[1]


def test_every_node_image_pull_failed_exits_7(gadget_cluster: GadgetCluster) -> None:
    gc = gadget_cluster
    gc.fail_image_pull(message="pull access denied, repository does not exist")
    client = gc.run_gadget("-A", "--node", "node-a,node-b", "--timeout", "30",
                           "--runner-image", "registry.example/nope/runner:0")
    assert client.wait(60) == 7, client.stderr
    for node in ("node-a", "node-b"):
        assert f"node {node}: image pull failed: pull access denied" in client.stderr
    assert "Traceback" not in client.stderr


def test_ctrl_c_while_runner_pods_start_is_a_normal_stop(gadget_cluster: GadgetCluster) -> None:
    """The runner processes never get ready (they sleep, like a runner still importing), so
    deleting their pods ends them with SIGTERM's 143: that is the user's stop, not a failure."""
    gc = gadget_cluster
    gc.crash(exit_code=1, after_seconds=60, name_prefix="gadget-")
    client = gc.run_gadget("-A", "--node", "node-a,node-b", "--timeout", "60")
    gc.wait_for_phase(RUNNER_NAMESPACE, f"gadget-{client.session}-node-a", "Running")
    gc.wait_for_phase(RUNNER_NAMESPACE, f"gadget-{client.session}-node-b", "Running")
    client.signal(signal.SIGINT)
    assert client.wait(60) == 0, client.stderr
    summary = client.stderr.split("summary:", 1)[1]
    assert "exit code 143" not in client.stderr, client.stderr
    assert summary.count("stopped before it started") == 2, summary


def test_ctrl_c_before_runner_pods_are_scheduled_is_a_normal_stop(
        gadget_cluster: GadgetCluster) -> None:
    gc = gadget_cluster
    gc.fail_scheduling("Insufficient cpu")
    client = gc.run_gadget("-A", "--node", "node-a,node-b", "--timeout", "60")
    client.wait_stderr(r"waiting on 2 node\(s\): unschedulable.*\(node-a, node-b\)$")
    client.signal(signal.SIGINT)
    assert client.wait(60) == 0, client.stderr
    assert client.stderr.split("summary:", 1)[1].count("stopped before it started") == 2


def test_log_stream_dropped_again_and_again_is_followed_to_the_end(
        gadget_cluster: GadgetCluster) -> None:
    """Ten drops, more than one outage's budget, each after some progress: nothing is lost."""
    gc = gadget_cluster
    gc.target("cart-a", node="node-a")
    rules = [gc.drop_log_stream(after_lines=n, mode="abort", node="node-a",
                                name_prefix="gadget-") for n in range(4, 44, 4)]
    client = gc.run_gadget("-n", "shop", "-l", "app=cart", "--timeout", "90")
    gc.wait_runners_streaming(client.session, ["node-a"])
    want = [f"seq-{i:03d}" for i in range(40)]
    for word in want:
        gc.workloads.exec("shop", "cart-a", ["/bin/echo", word])
    client.wait_events(lambda ev: set(want) <= set(_echoed(ev, "seq-")), timeout=60,
                       what="all 40 numbered execs")
    client.signal(signal.SIGINT)
    assert client.wait(60) == 0, client.stderr
    assert sorted(_echoed(client.events(), "seq-")) == want
    assert sum(r.fired for r in rules) == len(rules)
    assert "log stream lost" not in client.stderr


def test_a_node_given_up_on_is_reported_at_once(gadget_cluster: GadgetCluster) -> None:
    gc = gadget_cluster
    gc.target("cart-a", node="node-a")
    gc.target("cart-b", node="node-b")
    gc.drop_log_stream(after_lines=0, times=1000, mode="abort", node="node-a",
                       name_prefix="gadget-")
    client = gc.run_gadget("-n", "shop", "-l", "app=cart", "--timeout", "90")
    client.wait_stderr(r"node node-a: log stream lost: .*no longer following this node",
                       timeout=40)
    assert client.proc.poll() is None, client.stderr  # node-b goes on
    client.signal(signal.SIGINT)
    assert client.wait(60) == 1, client.stderr
    assert "  node-a: log stream lost" in client.stderr.split("summary:", 1)[1]


def test_runner_stderr_in_the_pod_log_is_shown_as_the_node_speaking(
        gadget_cluster: GadgetCluster) -> None:
    """A pod's log carries the runner's stderr between its records: those lines are shown as
    `node X: text`, not counted as malformed records, and no message shows a bytes repr."""
    gc = gadget_cluster
    gc.crash(exit_code=4, lines=["node-runner: mounted bpf on /sys/fs/bpf", "libbpf: oops"],
             node="node-a", name_prefix="gadget-")
    client = gc.run_gadget("-A", "--node", "node-a", "--timeout", "30")
    assert client.wait(60) == 4, client.stderr
    assert "node node-a: mounted bpf on /sys/fs/bpf" in client.stderr, client.stderr
    assert "node node-a: libbpf: oops" in client.stderr, client.stderr
    assert "malformed" not in client.stderr and "b'" not in client.stderr, client.stderr


def test_nodes_without_targets_are_one_line_and_listed_with_v(
        gadget_cluster: GadgetCluster) -> None:
    gc = gadget_cluster
    gc.target("cart-a", node="node-a")
    quiet = gc.run_gadget("-n", "shop", "-l", "app=cart", "--timeout", "2")
    verbose = gc.run_gadget("-n", "shop", "-l", "app=cart", "--timeout", "2", "-v")
    assert quiet.wait(60) == 0 and verbose.wait(60) == 0, (quiet.stderr, verbose.stderr)
    assert "2 node(s) without target pods get no runner (-v lists them)" in quiet.stderr
    assert ": no runner (" not in quiet.stderr, quiet.stderr
    for node in ("node-b", "node-c"):
        assert f"node {node}: no runner (no target pods on this node)" in verbose.stderr
    assert "without target pods get no runner" not in verbose.stderr


def test_on_a_terminal_the_waiting_nodes_are_one_updating_line(
        gadget_cluster: GadgetCluster) -> None:
    """stderr on a pty: the status line is redrawn in place (`\\r` + erase line), never printed
    as plain lines, and every other message clears it first so nothing shares its row."""
    gc = gadget_cluster
    gc.fail_scheduling("Insufficient cpu")
    master, slave = pty.openpty()
    proc = subprocess.Popen(gc.client_argv("run", TRACE_EXEC, "-A", "--node", "node-a,node-b",
                                           "--timeout", "60"),
                            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=slave)
    os.close(slave)
    seen = bytearray()
    try:
        deadline = time.monotonic() + 60
        while seen.count(b"\x1b[Kwaiting on 2 node(s)") < 2 and time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                seen += os.read(master, 65536)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the client and its children closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        assert proc.stdout is not None
        proc.stdout.close()
    text = seen.decode(errors="replace")
    assert "\r\x1b[Kwaiting on 2 node(s): unschedulable" in text, text
    assert not re.search(r"(^|\n)waiting on", text), "no plain waiting lines on a terminal"
    last = text.rindex("waiting on")
    assert "\r\x1b[K" in text[last:] and "summary:" in text[last:], text[last:]
    assert "b'" not in text and "Traceback" not in text

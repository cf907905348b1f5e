"""Every in-tree gadget runs, by name, through the cluster path and with `--local`.

Breadth, not depth: the per-gadget modules prove each gadget's events; this one proves that each
gadget found in `gadgets/` (a directory with a program.bpf.c, so a new gadget is covered without
editing this file) starts on a node and ends cleanly. Cluster: one fake cluster with one node and
one target pod is shared by the module; every gadget's client is started at once (with a short
`--timeout`), and each parametrized test then checks its own client: exit 0, its runner pod
logged the gadget's `schema` record (written only after load and attach, so tracing was
reached), no error record reached the client, and no runner pod of that session is left. Local:
`run NAME --local --timeout 2 -o json` exits 0 with no traceback and prints only JSON, for
every gadget (all started at once, too).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from kubectl_gadget.cluster.runner_pod import SESSION_LABEL
from tests.cluster.container_mode import runner_image
from tests.cluster.fakekube import FakeCluster
from tests.cluster.product_fixtures import (
    ROOT,
    GadgetClient,
    GadgetCluster,
    GadgetClusterFactory,
    managed_pods,
    require_kernel,
)

SOURCES = ROOT / "gadgets"
NAMES = sorted(p.parent.name for p in SOURCES.glob("*/program.bpf.c"))
TIMEOUT = "4"
# Parameters a gadget needs to start at all (none so far; a new one adds its row here).
PARAMS: dict[str, tuple[str, ...]] = {}
# --local runs have no container to select: gadgets that would flood a whole host get a
# filter (trace_malloc traces its own client's and runner's allocations too: pid 1 is quiet).
LOCAL_PARAMS: dict[str, tuple[str, ...]] = {"trace_malloc": ("--pid", "1")}
Runs = tuple[GadgetCluster, dict[str, GadgetClient], dict[str, str]]


def test_the_catalogue_is_found() -> None:
    """Guards the discovery itself: an empty glob would make every test below vanish."""
    assert len(NAMES) >= 24 and "trace_exec" in NAMES, NAMES


@pytest.fixture(scope="module")
def catalogue_runs(request: pytest.FixtureRequest) -> Iterator[Runs]:
    """One fake cluster; every gadget's client started against its one target pod at once
    (runner pods as containers of the runner image in container mode)."""
    require_kernel()
    started: list[FakeCluster] = []

    def make(**options: Any) -> FakeCluster:
        started.append(FakeCluster(**options).start())
        return started[-1]

    factory = GadgetClusterFactory(make, runner_image(request))
    try:
        gc = factory(nodes=("node-a",))
        gc.target("cart-a", node="node-a")
        logs: dict[str, str] = {}
        stop = threading.Event()
        keeper = threading.Thread(target=_keep_logs, args=(gc, logs, stop), daemon=True)
        keeper.start()
        try:
            clients = {name: gc.run_gadget("-n", "shop", "-l", "app=cart", "--timeout", TIMEOUT,
                                           *PARAMS.get(name, ()), gadget=name)
                       for name in NAMES}
            for client in clients.values():
                client.wait(300)
        finally:
            stop.set()
            keeper.join(10)
        yield gc, clients, logs
        assert not managed_pods(gc.cluster), managed_pods(gc.cluster)
    finally:
        factory.close()
        for cluster in reversed(started):
            cluster.stop()


def _keep_logs(gc: GadgetCluster, logs: dict[str, str], stop: threading.Event) -> None:
    """Hold each runner pod's log (by session) from the moment it exists: the kubelet forgets
    a deleted pod's log, but not the log object held here (a snapshot's runner can start,
    write and be deleted between two polls of the text)."""
    held: dict[str, Any] = {}
    while not stop.wait(0.1):
        for pod in gc.runner_pods():
            session = pod["metadata"]["labels"][SESSION_LABEL]
            if session not in held:
                log = gc.cluster.ctx.logs.get(pod["metadata"]["uid"],
                                              pod["spec"]["containers"][0]["name"])
                if log is not None:
                    held[session] = log
    logs.update({session: log.text() for session, log in held.items()})


def _mntns(gc: GadgetCluster) -> str:
    """The target container's mount namespace (for the message of a failed pod check)."""
    pid = gc.workloads.container("shop", "cart-a").pid
    return f"cart-a: pid {pid}, {os.readlink(f'/proc/{pid}/ns/mnt')}"


def _output(stdout: str) -> list[Any]:
    """The rows of `-o json` output: an event per line, or an array (a table) per line."""
    rows: list[Any] = []
    for line in stdout.splitlines():
        if line.strip():
            value = json.loads(line)
            rows.extend(value if isinstance(value, list) else [value])
    return rows


def _records(log: str) -> list[dict[str, Any]]:
    out = []
    for line in log.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_runs_in_the_cluster(name: str,
                             catalogue_runs: Runs
                             ) -> None:
    gc, clients, logs = catalogue_runs
    client = clients[name]
    assert client.wait(5) == 0, client.stderr
    session = client.session
    assert "Traceback" not in client.stderr, client.stderr
    assert not gc.runner_pods(session), f"runner pods of {name} left behind"
    records = _records(logs.get(session, ""))
    kinds = [rec.get("type") for rec in records]
    assert "schema" in kinds, f"{name}'s runner never reached tracing: {records[-5:]}"
    assert "error" not in kinds, [rec for rec in records if rec.get("type") == "error"]
    assert re.search(r"node-a: ok \(\d+ events[,)]", client.stderr), client.stderr
    for rec in _output(client.stdout):  # every line is JSON; each row is of the target pod
        pod = rec.get("k8s", {}).get("podName") if isinstance(rec, dict) else None
        assert pod in (None, "cart-a"), (rec, _mntns(gc))


@pytest.fixture(scope="module")
def local_runs() -> Iterator[dict[str, subprocess.Popen[str]]]:
    """Every gadget run with `--local` at once (each its own process), all waited for."""
    require_kernel()
    procs = {name: subprocess.Popen([sys.executable, "-m", "kubectl_gadget", "run", name,
                                     "--local", "--timeout", "2", "-o", "json",
                                     *PARAMS.get(name, ()), *LOCAL_PARAMS.get(name, ())],
                                    cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL, text=True)
             for name in NAMES}
    try:
        yield procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


@pytest.mark.parametrize("name", NAMES)
def test_runs_locally(name: str, local_runs: dict[str, subprocess.Popen[str]]) -> None:
    try:
        stdout, stderr = local_runs[name].communicate(timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name} --local did not end within 300 s of a 2 s --timeout")
    assert local_runs[name].returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    _output(stdout)

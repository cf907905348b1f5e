"""Fixtures for end-to-end product tests of `kubectl gadget run` against fakekube.

The whole chain runs for real except the API server: the client (`python -m kubectl_gadget`, a
real process) talks HTTP to fakekube, whose process-kubelet runs each runner pod as
`python -m node_runner ...` on this machine (real eBPF), and target pods are real processes in
their own mount namespace and containerd-shaped cgroup (tests/workloads.py), or with
`targets="runc"` real runc containers with containerd's bundle and cgroup layout
(runc_targets.py), so the runner's /proc-based container resolution and the in-kernel
mount-namespace filter run for real.

- `gadget_cluster` / `make_gadget_cluster(nodes=..., targets=...)`: a `GadgetCluster` (fakekube
  + target workloads + runner image mapped + privileged `gadget` namespace); `targets`
  defaults to $KUBECTL_GADGET_TEST_TARGETS ("process" or "runc"; unset: runc in container
  mode, else process).
- `no_runner_leftovers`: teardown check that no pod or ConfigMap labelled
  `app.kubernetes.io/managed-by=kubectl-gadget` remains in any namespace; test modules make it
  autouse with ``pytestmark = pytest.mark.usefixtures("no_runner_leftovers")``.
- `GadgetClient`: one client process, its stdout parsed as JSON events (flattened to dotted
  keys) and its stderr collected, both readable while it runs.

Container mode (`KUBECTL_GADGET_TEST_CONTAINERS=1`, container_mode.py): runner pods are runc
containers of the runner image, built, pushed and pulled once per session; targets are runc too.

Traps avoided: a fixed `sleep` before generating events (we wait until every runner pod's log
shows its `schema` record, which the runner writes only after load and attach), and a client
or workload process outliving its test (every one is killed in teardown, and fakekube's stop
fails the test if a runner process group survived).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from kubectl_gadget.cluster.runner_pod import DEFAULT_IMAGE, MANAGED_BY, MANAGER, SESSION_LABEL
from tests.cluster.container_mode import container_mode, runner_image
from tests.cluster.fakekube import FakeCluster, NodeSpec
from tests.cluster.runc_targets import RuncWorkloads, runc_available
from tests.runner_image import UnpackedImage
from tests.workloads import ContainerWorkload, sleeping_container

ROOT = Path(__file__).resolve().parents[2]
GADGETS = ROOT / "build" / "gadgets"
TRACE_EXEC = str(GADGETS / "trace_exec")
RUNNER_NAMESPACE = "gadget"
TARGETS_ENV = "KUBECTL_GADGET_TEST_TARGETS"  # default of `targets`: "process" or "runc"
Obj = dict[str, Any]


def require_kernel() -> None:
    """Skip (with the reason) when real eBPF cannot run here."""
    if os.geteuid() != 0:
        pytest.skip("end-to-end cluster tests load eBPF programs: they need root")
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        pytest.skip("end-to-end cluster tests need a kernel with BTF (/sys/kernel/btf/vmlinux)")
    if not (GADGETS / "trace_exec" / "program.bpf.o").exists():
        pytest.skip("build/gadgets/trace_exec is not built: run `make gadgets`")


def flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"k8s": {"node": "a"}}` -> `{"k8s.node": "a"}` (the JSON output nests dotted names)."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def managed_pods(cluster: FakeCluster) -> list[str]:
    """namespace/name of every pod labelled as ours, in any namespace."""
    return [f"{p['metadata']['namespace']}/{p['metadata']['name']}"
            for p in cluster.pods(None, {MANAGED_BY: MANAGER})]


def managed_configmaps(cluster: FakeCluster) -> list[str]:
    """namespace/name of every ConfigMap labelled as ours (a shipped gadget directory's)."""
    return [f"{c['metadata']['namespace']}/{c['metadata']['name']}"
            for c in cluster.store.list("configmaps")[0]
            if (c["metadata"].get("labels") or {}).get(MANAGED_BY) == MANAGER]


class Workloads:
    """The target runtime hook: each target container is a real sleeping "container"."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_pod: dict[tuple[str, str], dict[str, ContainerWorkload]] = {}
        self._stacks: dict[tuple[str, str], contextlib.ExitStack] = {}

    def start(self, pod: Obj) -> dict[str, str]:
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        stack = contextlib.ExitStack()
        ids: dict[str, str] = {}
        containers: dict[str, ContainerWorkload] = {}
        try:
            for c in pod["spec"]["containers"]:
                cid = secrets.token_hex(32)
                containers[c["name"]] = stack.enter_context(
                    sleeping_container(container_id=cid, pod_uid=meta["uid"]))
                ids[c["name"]] = f"containerd://{cid}"
        except BaseException:
            stack.close()
            raise
        with self._lock:
            self.by_pod[key] = containers
            self._stacks[key] = stack
        return ids

    def stop(self, pod: Obj) -> None:
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        with self._lock:
            self.by_pod.pop(key, None)
            stack = self._stacks.pop(key, None)
        if stack is not None:
            stack.close()

    def container(self, namespace: str, pod: str, container: str = "app") -> ContainerWorkload:
        with self._lock:
            return self.by_pod[(namespace, pod)][container]

    def exec(self, namespace: str, pod: str, argv: Sequence[str],
             container: str = "app") -> None:
        self.container(namespace, pod, container).exec(list(argv))

    def close(self) -> None:
        with self._lock:
            stacks, self._stacks = list(self._stacks.values()), {}
            self.by_pod.clear()
        for stack in stacks:
            stack.close()


def target_runtime(targets: str | None) -> Workloads | RuncWorkloads:
    """The hook backing target pods: "process" (Workloads) or "runc" (RuncWorkloads)."""
    kind = targets or os.environ.get(TARGETS_ENV) or ("runc" if container_mode() else "process")
    if kind == "runc":
        if not runc_available():
            pytest.skip("target pods as runc containers need runc, which is not installed")
        return RuncWorkloads()
    if kind != "process":
        raise ValueError(f"targets={kind!r}: expected 'process' or 'runc'")
    return Workloads()


class GadgetClient:
    """One `python -m kubectl_gadget ...` process; stdout/stderr read by threads as it runs."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     env=dict(env or os.environ))
        self.started = time.monotonic()
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self._cond = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout_lines),
                             daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr_lines),
                             daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, pipe: Any, sink: list[str]) -> None:
        with pipe:
            for raw in iter(pipe.readline, b""):
                with self._cond:
                    sink.append(raw.decode(errors="replace").rstrip("\n"))
                    self._cond.notify_all()

    # -- reading ---------------------------------------------------------------------------
    @property
    def stderr(self) -> str:
        with self._cond:
            return "\n".join(self.stderr_lines)

    @property
    def stdout(self) -> str:
        with self._cond:
            return "\n".join(self.stdout_lines)

    def events(self) -> list[dict[str, Any]]:
        """Every stdout line as a flattened JSON object (fails on a non-JSON line)."""
        with self._cond:
            lines = list(self.stdout_lines)
        out = []
        for line in lines:
            try:
                out.append(flatten(json.loads(line)))
            except ValueError:
                pytest.fail(f"stdout line is not JSON: {line!r}\nstderr:\n{self.stderr}")
        return out

    def wait_stderr(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = regex.search("\n".join(self.stderr_lines))
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._alive_readers()):
                    pytest.fail(f"stderr never matched {pattern!r} (rc={self.proc.poll()}):\n"
                                f"{chr(10).join(self.stderr_lines)}")
                self._cond.wait(min(left, 0.2))

    def wait_events(self, predicate: Callable[[list[dict[str, Any]]], bool],
                    timeout: float = 60.0, what: str = "events") -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            events = self.events()
            if predicate(events):
                return events
            if time.monotonic() > deadline or self.proc.poll() is not None:
                if predicate(self.events()):
                    return self.events()
                pytest.fail(f"timed out waiting for {what} (rc={self.proc.poll()}); "
                            f"{len(events)} events; stderr:\n{self.stderr}")
            time.sleep(0.1)

    def _alive_readers(self) -> bool:
        return any(r.is_alive() for r in self._readers)

    @property
    def session(self) -> str:
        return self.wait_stderr(r"session ([0-9a-f]+): starting").group(1)

    # -- ending ----------------------------------------------------------------------------
    def wait(self, timeout: float = 60.0) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"client did not exit within {timeout}s; stderr:\n{self.stderr}")
        for reader in self._readers:
            reader.join(5)
        return rc

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        for reader in self._readers:
            reader.join(5)


class GadgetCluster:
    """fakekube with real target workloads, the runner image mapped and a `gadget` namespace."""

    def __init__(self, cluster: FakeCluster, workloads: Workloads | RuncWorkloads,
                 image: UnpackedImage | None = None) -> None:
        self.cluster, self.workloads = cluster, workloads
        self.clients: list[GadgetClient] = []
        if image is not None:  # container mode
            cluster.map_oci_image(DEFAULT_IMAGE, str(image.rootfs), image.config)
        else:
            cluster.map_image(DEFAULT_IMAGE, [sys.executable, "-m", "node_runner"],
                              cwd=str(ROOT))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cluster, name)

    def target(self, name: str, namespace: str = "shop", node: str = "node-a",
               labels: Mapping[str, str] | None = None, **kwargs: Any) -> Obj:
        return self.cluster.create_target_pod(name, namespace, node=node,
                                              labels=labels or {"app": "cart"}, **kwargs)

    def client_argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "kubectl_gadget", *args,
                "--kubeconfig", str(self.cluster.kubeconfig_path)]

    def start(self, *args: str) -> GadgetClient:
        """Start `kubectl gadget ARGS --kubeconfig ...` (no --kubeconfig for `gc`/`list` args
        is needed: every subcommand accepts it)."""
        client = GadgetClient(self.client_argv(*args))
        self.clients.append(client)
        return client

    def run_gadget(self, *args: str, gadget: str = TRACE_EXEC) -> GadgetClient:
        return self.start("run", gadget, "-o", "json", *args)

    def command(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """A short client command (gc, list), run to completion."""
        return subprocess.run(self.client_argv(*args), cwd=ROOT, capture_output=True,
                              text=True, timeout=timeout, check=False)

    def runner_pods(self, session: str | None = None) -> list[Obj]:
        labels = {MANAGED_BY: MANAGER}
        if session:
            labels[SESSION_LABEL] = session
        return self.cluster.pods(RUNNER_NAMESPACE, labels)

    def wait_runners_streaming(self, session: str, nodes: Sequence[str],
                               timeout: float = 60.0) -> dict[str, Obj]:
        """Wait until a runner pod of `session` runs on each of `nodes` and its log shows
        the `schema` record (written after the gadget is loaded and attached)."""
        def ready() -> dict[str, Obj] | None:
            found = {}
            for pod in self.runner_pods(session):
                node = pod["spec"].get("nodeName") or ""
                log = self.cluster.pod_log(RUNNER_NAMESPACE, pod["metadata"]["name"])
                if node in nodes and '"type": "schema"' in log.replace('":"', '": "'):
                    found[node] = pod
            return found if set(found) == set(nodes) else None

        return self.cluster.wait_for(ready, timeout, f"runners of {session} on {nodes}")

    def runner_pids(self, pod_name: str) -> list[int]:
        """Live processes of a runner pod (found by the HOSTNAME the kubelet gives them)."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as file:
                    env = file.read().split(b"\0")
                with open(f"/proc/{entry}/stat", "rb") as file:
                    state = file.read().rsplit(b")", 1)[-1].split()[0]
            except OSError:
                continue
            if f"HOSTNAME={pod_name}".encode() in env and state not in (b"Z", b"X"):
                pids.append(int(entry))
        return pids

    def close(self) -> None:
        for client in self.clients:
            client.kill()


class GadgetClusterFactory:
    """`make_gadget_cluster(nodes=..., **fakekube options)`; remembers what it made."""

    def __init__(self, make_fake_cluster: Callable[..., FakeCluster],
                 image: UnpackedImage | None = None) -> None:
        self._make_fake_cluster = make_fake_cluster
        self.image = image  # container mode: runner pods run from this image
        self.made: list[GadgetCluster] = []

    def __call__(self, nodes: Sequence[str | NodeSpec] = ("node-a", "node-b", "node-c"),
                 privileged_namespace: bool = True, targets: str | None = None,
                 **options: Any) -> GadgetCluster:
        """`privileged_namespace=False` creates `gadget` without the PSA enforce label;
        `targets`: "process" or "runc" (default: $KUBECTL_GADGET_TEST_TARGETS, else process)."""
        runtime = target_runtime(targets)
        try:
            cluster = self._make_fake_cluster(nodes=list(nodes), target_runtime=runtime,
                                              **options)
            cluster.create_namespace(RUNNER_NAMESPACE, privileged=privileged_namespace)
            self.made.append(GadgetCluster(cluster, runtime, self.image))
        except BaseException:
            runtime.close()
            raise
        return self.made[-1]

    def close(self) -> None:
        for made in self.made:
            made.close()
        for made in self.made:
            made.workloads.close()


@pytest.fixture
def make_gadget_cluster(make_fake_cluster: Callable[..., FakeCluster],
                        request: pytest.FixtureRequest) -> Iterator[GadgetClusterFactory]:
    require_kernel()
    factory = GadgetClusterFactory(make_fake_cluster, runner_image(request))
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def gadget_cluster(make_gadget_cluster: GadgetClusterFactory) -> GadgetCluster:
    return make_gadget_cluster()


@pytest.fixture
def no_runner_leftovers(make_gadget_cluster: GadgetClusterFactory) -> Iterator[None]:
    """After the test: no pod with our managed-by label remains in any namespace.

    It depends on the factory, so it is torn down before it, while the clusters still run.
    """
    yield
    leftovers = {made.cluster.url: managed_pods(made.cluster) + managed_configmaps(made.cluster)
                 for made in make_gadget_cluster.made}
    leftovers = {url: pods for url, pods in leftovers.items() if pods}
    assert not leftovers, f"objects with our labels left behind: {leftovers}"

"""``FakeCluster``: the API server, the process-kubelet and the test-facing helpers, wired.

A test gets a URL and a kubeconfig that both the official client and ``kubectl`` accept,
creates namespaces and target pods, maps images to local commands, injects failures (see
:class:`~.injection.FaultInjection`), reads the request log, and on exit every process,
thread and socket is gone — ``stop`` raises if a process group survived or a harness
component crashed, so leaks and harness bugs fail the test instead of hiding.
"""

from __future__ import annotations

import base64
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from . import services, validation
from .admission import ENFORCE_LABEL, Admission
from .apiserver import FakeApiServer, RecordedRequest
from .context import ApiContext
from .faults import Faults
from .injection import FaultInjection
from .kubelet import Kubelet, NodeSpec
from .logs import LogStore
from .runtime import ImageEntry, ImageTable, OciImage
from .storage import Store
from .targets import HookLike, Owner, as_runtime, build_pod, start_target

Obj = dict[str, Any]
T = TypeVar("T")
DEFAULT_NODES = ("node-a", "node-b", "node-c")
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class HarnessError(AssertionError):
    """The harness itself misbehaved (leaked processes, crashed handler)."""


class FakeCluster(FaultInjection):
    """Fake API server + kubelet on 127.0.0.1. Use as a context manager."""

    def __init__(self, nodes: Sequence[NodeSpec | str] = DEFAULT_NODES,
                 images: Mapping[str, Sequence[str] | ImageEntry] | None = None, *,
                 workdir: str | os.PathLike[str] | None = None,
                 extra_env: Mapping[str, str] | None = None,
                 target_runtime: HookLike | None = None, tls: bool = False,
                 service_cidr: str = services.DEFAULT_SERVICE_CIDR,
                 **kubelet_options: Any) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="fakekube-")
        self.workdir = Path(workdir) if workdir else Path(self._tmp.name)
        self.ctx = ApiContext(Store(), LogStore(), Admission(), Faults(),
                              service_cidr=service_cidr)
        self.images = ImageTable(images)
        self.api = FakeApiServer(self.ctx, tls=tls)
        self.kubelet = Kubelet(self.ctx, nodes, self.images, extra_env=extra_env,
                               workdir=str(self.workdir), **kubelet_options)
        self.target_runtime = as_runtime(target_runtime)
        self.tokens: dict[str, str] = {}
        self.kubeconfig_path = self.workdir / "kubeconfig"
        self._next_node = 0

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> FakeCluster:
        self.api.start()
        for name in SYSTEM_NAMESPACES:
            self.create_namespace(name)
        # The API server's own service, first address of the service range.
        self.create_service("kubernetes", "default", [{"name": "https", "port": 443,
                                                       "targetPort": 6443}],
                            labels={"component": "apiserver", "provider": "kubernetes"})
        self.kubelet.start()
        self.add_user("admin")
        self.write_kubeconfig(self.kubeconfig_path)
        return self

    def stop(self, check: bool = True) -> None:
        self.kubelet.stop()
        self.api.stop()
        leaked = self.kubelet.leaked_process_groups()
        errors = self.api.internal_errors + self.kubelet.errors
        self._tmp.cleanup()
        if check and leaked:
            raise HarnessError(f"process groups still alive after stop: {leaked}")
        if check and errors:
            raise HarnessError("fakekube internal errors:\n" + "\n".join(errors))

    def __enter__(self) -> FakeCluster:
        return self.start()

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.stop(check=exc_type is None)

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def store(self) -> Store:
        return self.ctx.store

    @property
    def nodes(self) -> list[str]:
        return list(self.kubelet.nodes)

    # -- credentials and clients ---------------------------------------------------------
    def add_user(self, user: str) -> str:
        token = f"fakekube-{user}-token"
        self.ctx.admission.add_user(token, user)
        self.tokens[user] = token
        return token

    def write_kubeconfig(self, path: str | os.PathLike[str] | None = None, user: str = "admin",
                         namespace: str = "default") -> Path:
        target = Path(path) if path else self.workdir / f"kubeconfig-{user}"
        token = self.tokens.get(user) or self.add_user(user)
        config = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "fakekube", "cluster": self._cluster_entry()}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "fakekube", "context": {"cluster": "fakekube", "user": user,
                                                          "namespace": namespace}}],
            "current-context": "fakekube",
        }
        target.write_text(yaml.safe_dump(config))
        return target

    def _cluster_entry(self) -> Obj:
        entry: Obj = {"server": self.url}
        if self.api.cert is not None:
            entry["certificate-authority-data"] = base64.b64encode(self.api.cert.cert_pem).decode()
        return entry

    def core_v1(self, user: str = "admin") -> Any:
        """A ``CoreV1Api`` bound to this cluster (global client config untouched)."""
        from kubernetes import client, config

        path = self.kubeconfig_path if user == "admin" else self.write_kubeconfig(user=user)
        return client.CoreV1Api(config.new_client_from_config(config_file=str(path)))

    def kubectl(self, *args: str, user: str = "admin", timeout: float = 30,
                check: bool = False) -> subprocess.CompletedProcess[str]:
        path = self.kubeconfig_path if user == "admin" else self.write_kubeconfig(user=user)
        return subprocess.run(self.kubectl_argv(*args, kubeconfig=path), capture_output=True,
                              text=True, timeout=timeout, check=check,
                              env=self.kubectl_env())

    def kubectl_argv(self, *args: str, kubeconfig: Path | None = None) -> list[str]:
        return ["kubectl", "--kubeconfig", str(kubeconfig or self.kubeconfig_path),
                "--cache-dir", str(self.workdir / "kube-cache"), *args]

    def kubectl_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        env["HOME"] = str(self.workdir)
        return env

    # -- objects -------------------------------------------------------------------------
    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None,
                         privileged: bool = False) -> Obj:
        """Create (or return) a namespace; ``privileged`` adds the PSA enforce label."""
        existing = self.store.get("namespaces", "", name)
        if existing is not None:
            return existing
        ns: Obj = {"metadata": {"name": name, "labels": dict(labels or {})}}
        if privileged:
            ns["metadata"]["labels"][ENFORCE_LABEL] = "privileged"
        validation.validate_namespace(ns)
        validation.default_namespace(ns)
        return self.store.create("namespaces", ns)

    def create_target_pod(self, name: str, namespace: str = "default", *,
                          labels: Mapping[str, str] | None = None, node: str | None = None,
                          containers: Sequence[str | Obj] = ("app",),
                          image: str = "registry.example/shop/app:1.0",
                          owner: Owner | None = None,
                          annotations: Mapping[str, str] | None = None,
                          runtime: HookLike | None = None,
                          run_as_process: bool = False, pod_ip: str | None = None,
                          host_network: bool = False, volumes: Sequence[Obj] = ()) -> Obj:
        """A Running workload pod on ``node`` (round-robin by default); see targets.py.
        ``pod_ip``: the address the network plugin gives it (default: the node's next one);
        ``host_network``: a hostNetwork pod, whose pod IP is the node's; ``volumes``: the
        pod's volumes (its containers' ``volumeMounts`` name them)."""
        if node is None:
            node = self.nodes[self._next_node % len(self.nodes)]
            self._next_node += 1
        self.create_namespace(namespace)
        pod = build_pod(name, namespace, node, labels=labels, containers=containers,
                        image=image, owner=owner, annotations=annotations,
                        target=not run_as_process)
        if host_network:
            pod["spec"]["hostNetwork"] = True
        if volumes:
            pod["spec"]["volumes"] = [dict(v) for v in volumes]
        stored = self.store.create("pods", pod)
        if run_as_process:
            return self.wait_for_pod(namespace, name,
                                     lambda p: p["status"].get("phase") != "Pending")
        hook = as_runtime(runtime) if runtime is not None else self.target_runtime
        return start_target(self.kubelet, stored, hook, pod_ip)

    def create_service(self, name: str, namespace: str = "default",
                       ports: Sequence[Obj] = ({"port": 80},), *,
                       cluster_ip: str | None = None, labels: Mapping[str, str] | None = None,
                       selector: Mapping[str, str] | None = None) -> Obj:
        """A ClusterIP service, allocated and checked as a create through the API would be."""
        self.create_namespace(namespace)
        svc: Obj = {"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": name, "namespace": namespace,
                                 "labels": dict(labels or {})},
                    "spec": {"ports": [dict(p) for p in ports], "selector": dict(selector or {})}}
        if cluster_ip is not None:
            svc["spec"]["clusterIP"] = cluster_ip
        validation.validate_generic("Service", svc)
        services.default_service(svc)
        services.validate_service(svc)
        with self.store.lock:
            services.allocate_cluster_ip(svc, self.ctx.service_cidr,
                                         services.taken_ips(self.store.list("services")[0]))
            return self.store.create("services", svc)

    def map_image(self, image: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
                  cwd: str | None = None, replace_command: bool = False) -> None:
        """Running ``image`` (a container without ``command``) runs ``argv + args``.

        ``replace_command=True`` also maps containers that have a ``command``:
        ``argv + command[1:] + args``. Lookups match exact, normalized
        (``busybox`` = ``docker.io/library/busybox:latest``) or a tagless repository key.
        """
        self.images.add(image, ImageEntry(tuple(argv), dict(env or {}), cwd, replace_command))

    def map_oci_image(self, image: str, rootfs: str, config: Mapping[str, Any]) -> None:
        """Containers of ``image`` run as real OCI containers (runc) from an unpacked image:
        ``rootfs`` and its image ``config`` (entry point, env), translated from the pod spec
        by ``oci_spec.runtime_config``."""
        self.images.add(image, ImageEntry((), {}, None, False, OciImage(rootfs, config)))

    def get_pod(self, namespace: str, name: str) -> Obj | None:
        return self.store.get("pods", namespace, name)

    def pods(self, namespace: str | None = None,
             labels: Mapping[str, str] | None = None) -> list[Obj]:
        items, _ = self.store.list("pods", namespace)
        want = dict(labels or {})
        return [p for p in items
                if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in want.items())]

    def events(self, namespace: str, pod: str | None = None) -> list[Obj]:
        """Events in the order they were recorded."""
        items, _ = self.store.list("events", namespace)
        items.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
        return [e for e in items if pod is None or e["involvedObject"]["name"] == pod]

    def pod_log(self, namespace: str, name: str, container: str | None = None) -> str:
        pod = self.get_pod(namespace, name)
        assert pod is not None, f"no pod {namespace}/{name}"
        container = container or pod["spec"]["containers"][0]["name"]
        log = self.ctx.logs.get(pod["metadata"]["uid"], container)
        return log.text() if log is not None else ""

    # -- waiting -------------------------------------------------------------------------
    def wait_for(self, probe: Callable[[], T | None], timeout: float = 30.0,
                 what: str = "condition") -> T:
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.02)

    def wait_for_pod(self, namespace: str, name: str, predicate: Callable[[Obj], bool],
                     timeout: float = 30.0) -> Obj:
        def probe() -> Obj | None:
            pod = self.get_pod(namespace, name)
            return pod if pod is not None and predicate(pod) else None

        return self.wait_for(probe, timeout, f"pod {namespace}/{name}")

    def wait_for_phase(self, namespace: str, name: str, *phases: str,
                       timeout: float = 30.0) -> Obj:
        return self.wait_for_pod(namespace, name,
                                 lambda p: p.get("status", {}).get("phase") in phases, timeout)

    def wait_gone(self, namespace: str, name: str, timeout: float = 30.0) -> None:
        self.wait_for(lambda: self.get_pod(namespace, name) is None, timeout,
                      f"pod {namespace}/{name} to disappear")

    # -- request log ---------------------------------------------------------------------
    def requests(self, method: str | None = None,
                 path_prefix: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.api.recorded()
                if (method is None or r.method == method)
                and (path_prefix is None or r.path.startswith(path_prefix))]

    def writes(self) -> list[RecordedRequest]:
        return [r for r in self.api.recorded() if r.is_write]

    def clear_requests(self) -> None:
        self.api.clear_requests()

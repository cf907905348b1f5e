"""Which pod or service owns an IP address: one list and watch of each per session.

`EndpointOwners` is the table the endpoint operator (`operators.kubeip`) reads per event. It
is created for every cluster run but costs nothing until a datasource with endpoints asks for
it (`start`) and the session hands it the API connection (`connect`): then one thread per
resource lists pods and services in all namespaces and follows them with a watch from that
list's version (relisting only when the server says the version is too old). Pods on the host
network are left out (their address is the node's, shared by every such pod), and so are
finished pods (their address may already belong to another). A refusal (RBAC) or a missing
resource is one warning line and that resource stays unresolved; the run goes on. `stop` ends
both watches at once and joins their threads. The trap avoided: an API call per event, or a
watch thread outliving its session.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Iterable
from typing import Any

from kubectl_gadget.cluster.kube import Kube, KubeError, WatchStream
from kubectl_gadget.operators.kubeip import Owner

RESOURCES = ("pods", "services")
KINDS = {"pods": "pod", "services": "svc"}
WATCH_SECONDS = 300
PERMANENT = (401, 403, 404)  # errors a retry would only repeat
Diag = Callable[[str], None]


def _normal(ip: Any) -> str | None:
    try:
        return str(ipaddress.ip_address(str(ip)))
    except ValueError:
        return None


def owned_ips(resource: str, obj: dict[str, Any]) -> list[str]:
    """The addresses `obj` (a pod or a service) owns, as text in the canonical form."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if resource == "pods":
        if spec.get("hostNetwork") or status.get("phase") in ("Succeeded", "Failed"):
            return []
        raw = [p.get("ip") for p in status.get("podIPs") or []] or [status.get("podIP")]
    else:
        raw = list(spec.get("clusterIPs") or []) or [spec.get("clusterIP")]
    return [ip for ip in map(_normal, (r for r in raw if r and r != "None")) if ip]


class AddressIndex:
    """Addresses of one resource's objects; written by one thread, read by any."""

    def __init__(self, resource: str) -> None:
        self.resource, self.kind = resource, KINDS[resource]
        self.by_ip: dict[str, Owner] = {}
        self._ips: dict[tuple[str, str], list[str]] = {}

    def replace(self, items: Iterable[dict[str, Any]]) -> None:
        """A fresh list: readers see the old table until the new one is complete."""
        fresh = AddressIndex(self.resource)
        for obj in items:
            fresh.update(obj)
        self.by_ip, self._ips = fresh.by_ip, fresh._ips

    def update(self, obj: dict[str, Any]) -> None:
        key = _key(obj)
        meta = obj.get("metadata") or {}
        labels = ",".join(f"{k}={v}" for k, v in sorted((meta.get("labels") or {}).items()))
        owner = Owner(self.kind, key[0], key[1], labels)
        ips = owned_ips(self.resource, obj)
        for ip in ips:
            self.by_ip[ip] = owner
        self._forget(key, set(ips))
        if ips:
            self._ips[key] = ips

    def delete(self, obj: dict[str, Any]) -> None:
        self._forget(_key(obj), set())

    def _forget(self, key: tuple[str, str], keep: set[str]) -> None:
        for ip in self._ips.pop(key, []):
            owner = self.by_ip.get(ip)
            if ip not in keep and owner is not None and (owner.namespace, owner.name) == key:
                del self.by_ip[ip]  # unless another object took the address since


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class EndpointOwners:
    def __init__(self, diag: Diag) -> None:
        self.diag = diag
        self._indexes = {r: AddressIndex(r) for r in RESOURCES}
        self._pods, self._services = self._indexes["pods"], self._indexes["services"]
        self._lock = threading.Lock()
        self._kube: Kube | None = None
        self._wanted = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._streams: dict[str, WatchStream] = {}

    def lookup(self, ip: str) -> Owner | None:
        owner = self._pods.by_ip.get(ip) or self._services.by_ip.get(ip)
        if owner is None and ip.startswith("::ffff:") and "." in ip:  # IPv4 peer, IPv6 socket
            return self.lookup(ip[7:])
        return owner

    def start(self) -> None:
        """A datasource needs owners: follow the API once it is connected."""
        with self._lock:
            self._wanted = True
            self._spawn()

    def connect(self, kube: Kube) -> None:
        with self._lock:
            self._kube = kube
            self._spawn()

    def _spawn(self) -> None:
        if self._threads or not self._wanted or self._kube is None or self._stop.is_set():
            return
        for resource in RESOURCES:
            thread = threading.Thread(target=self._follow, args=(self._kube, resource),
                                      name=f"owners-{resource}", daemon=True)
            self._threads.append(thread)
            thread.start()

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def stop(self, timeout: float = 10.0) -> None:
        """End both watches now and wait for their threads."""
        with self._lock:
            self._stop.set()
            streams = list(self._streams.values())
        for stream in streams:
            stream.close()
        for thread in self._threads:
            thread.join(timeout)

    def _follow(self, kube: Kube, resource: str) -> None:
        index, warned = self._indexes[resource], False
        while not self._stop.is_set():
            try:
                items, version = kube.list_all(resource)
                index.replace(items)
                while not self._stop.is_set():
                    version = self._watch(kube, resource, index, version)
            except KubeError as exc:
                if self._stop.is_set():
                    return
                if exc.status in PERMANENT:
                    self.diag(f"warning: endpoint addresses are not resolved to {resource}: "
                              f"{exc} (needs list and watch on {resource} in all namespaces)")
                    return
                if exc.status != 410 and not warned:  # 410: the version is too old, relist
                    warned = True
                    self.diag(f"warning: {exc}; retrying")
                self._stop.wait(1.0)

    def _watch(self, kube: Kube, resource: str, index: AddressIndex, version: str) -> str:
        stream = kube.open_watch(resource, version, WATCH_SECONDS)
        with self._lock:
            self._streams[resource] = stream
            if self._stop.is_set():
                stream.close()
        for kind, obj in stream:
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            if kind == "DELETED":
                index.delete(obj)
            elif kind in ("ADDED", "MODIFIED"):
                index.update(obj)
        return version

"""The one module that talks to the Kubernetes API (through the official `kubernetes` client).

Every call the tool makes goes through `Kube`, which returns plain dicts (the API's JSON) and
raises `KubeError` subclasses with one-line messages: what was being done, then the API's own
reason ("creating pod gadget-x in namespace gadget: forbidden: violates PodSecurity ...").
The trap avoided: `ApiException` (with a multi-line HTTP dump) or urllib3 retry errors reaching
the user, and model objects (snake_case, None-filled) leaking into the rest of the code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from kubectl_gadget.cluster.logstream import StatusError, open_log, status_message
from kubectl_gadget.errors import GadgetError

# A followed log may stay silent for long (a quiet gadget); a read timeout ends it anyway.
FOLLOW_READ_TIMEOUT = 24 * 3600
LOG_SETTLE = 0.01  # after a small read of a log, wait for more (one read for many lines)


class KubeError(GadgetError):
    """An API call failed; `status` is the HTTP code (0 when the server was not reached)."""

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class Forbidden(KubeError):
    pass


class NotFound(KubeError):
    pass


@dataclass(frozen=True)
class KubeConfig:
    """Where and as whom to talk to the API server: the kubeconfig plus kubectl's global
    flags (`--server`, `--token`, `--as`, `--as-group`, `--request-timeout`,
    `--insecure-skip-tls-verify`), which override it as they do for kubectl."""

    kubeconfig: str | None = None
    context: str | None = None
    server: str | None = None
    token: str | None = None
    impersonate: str | None = None
    impersonate_groups: tuple[str, ...] = ()
    request_timeout: float | None = 30.0  # None: no timeout (kubectl's "0")
    insecure_skip_tls_verify: bool = False

    @classmethod
    def pop(cls, flags: dict[str, Any]) -> KubeConfig:
        """Take the kube flags (see `cluster.cli.kube_options`) out of a command's kwargs."""
        timeout = flags.pop("request_timeout", None)
        return cls(flags.pop("kubeconfig", None), flags.pop("context", None),
                   flags.pop("server", None) or None, flags.pop("token", None) or None,
                   flags.pop("as_user", None) or None, tuple(flags.pop("as_group", ()) or ()),
                   30.0 if timeout is None else (timeout or None),
                   bool(flags.pop("insecure_skip_tls_verify", False)))


def _status_error(status: int, message: str, reason: str, doing: str) -> KubeError:
    cls = Forbidden if status == 403 else NotFound if status == 404 else KubeError
    return cls(f"{doing}: {message}", status, reason)


def _translate(exc: Exception, doing: str) -> KubeError:
    if isinstance(exc, ApiException):
        message, reason = status_message(exc.body, str(exc.reason or ""))
        return _status_error(int(exc.status or 0), message, reason, doing)
    if isinstance(exc, StatusError):
        return _status_error(exc.status, *exc.message(), doing)
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return KubeError(f"{doing}: cannot reach the API server ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200]})")
    return KubeError(f"{doing}: {exc}")


def _override(conf: client.Configuration, cfg: KubeConfig) -> None:
    conf.retries = 0
    if cfg.server:
        conf.host = cfg.server
    if cfg.token:
        conf.api_key = {"authorization": f"Bearer {cfg.token}"}
        conf.api_key_prefix = {}
        conf.cert_file = conf.key_file = None  # kubectl: a token replaces client certificates
    if cfg.insecure_skip_tls_verify:
        conf.verify_ssl = False
        conf.ssl_ca_cert = None


class _GroupHeaders:
    """The official client's pool manager, sending one ``Impersonate-Group`` line per group.

    kubectl sends a header line per ``--as-group`` and the API server reads every line; the
    client's default headers are a plain dict (one value per name), so the lines are added
    here, on the way to urllib3, which sends each value of a ``HTTPHeaderDict`` on its own.
    """

    def __init__(self, pool: Any, groups: tuple[str, ...]) -> None:
        self._pool, self._groups = pool, groups

    def request(self, method: str, url: str, headers: Any = None, **kwargs: Any) -> Any:
        merged = urllib3.HTTPHeaderDict(headers or {})
        merged.discard("Impersonate-Group")
        for group in self._groups:
            merged.add("Impersonate-Group", group)
        return self._pool.request(method, url, headers=merged, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


class Kube:
    """A connection to one cluster (kubeconfig + context)."""

    def __init__(self, cfg: KubeConfig) -> None:
        conf = client.Configuration()
        current: dict[str, Any] | None = None
        try:
            config.load_kube_config(config_file=cfg.kubeconfig, context=cfg.context,
                                    client_configuration=conf)
            _contexts, current = config.list_kube_config_contexts(config_file=cfg.kubeconfig)
            if cfg.context:
                current = next((c for c in _contexts if c["name"] == cfg.context), current)
        except (ConfigException, OSError, TypeError) as exc:
            if not (cfg.server and cfg.token):  # kubectl --server --token needs no kubeconfig
                raise KubeError(f"loading kubeconfig: {exc}") from None
        _override(conf, cfg)
        api_client = client.ApiClient(conf)
        if cfg.impersonate:
            api_client.set_default_header("Impersonate-User", cfg.impersonate)
        if cfg.impersonate_groups:
            rest = api_client.rest_client
            rest.pool_manager = _GroupHeaders(rest.pool_manager, cfg.impersonate_groups)  # type: ignore[assignment]
        self.timeout = cfg.request_timeout
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.namespace = str((current or {}).get("context", {}).get("namespace") or "default")
        self.server = api_client.configuration.host

    def _call(self, doing: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            resp = fn(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
            return json.loads(resp.data or b"{}")
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _translate(exc, doing) from None

    def list_pods(self, namespace: str | None, label_selector: str = "",
                  field_selector: str = "") -> list[dict[str, Any]]:
        where = f"in namespace {namespace}" if namespace else "in all namespaces"
        kwargs = {"label_selector": label_selector, "field_selector": field_selector}
        if namespace:
            data = self._call(f"listing pods {where}", self.core.list_namespaced_pod,
                              namespace, **kwargs)
        else:
            data = self._call(f"listing pods {where}",
                              self.core.list_pod_for_all_namespaces, **kwargs)
        return list(data.get("items") or [])

    def list_nodes(self) -> list[dict[str, Any]]:
        return list(self._call("listing nodes", self.core.list_node).get("items") or [])

    def list_namespaces(self) -> list[dict[str, Any]]:
        return list(self._call("listing namespaces", self.core.list_namespace).get("items") or [])

    def get_namespace(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self._call(f"reading namespace {name}", self.core.read_namespace, name))
        except NotFound:
            return None

    def create_pod(self, namespace: str, body: Mapping[str, Any],
                   dry_run: bool = False) -> dict[str, Any]:
        name = body.get("metadata", {}).get("name", "")
        kwargs = {"dry_run": "All"} if dry_run else {}
        doing = f"{'checking' if dry_run else 'creating'} pod {name} in namespace {namespace}"
        return dict(self._call(doing, self.core.create_namespaced_pod, namespace, body,
                               **kwargs))

    def create_configmap(self, namespace: str, body: Mapping[str, Any],
                         dry_run: bool = False) -> dict[str, Any]:
        name = body.get("metadata", {}).get("name", "")
        kwargs = {"dry_run": "All"} if dry_run else {}
        doing = f"{'checking' if dry_run else 'creating'} configmap {name} in namespace " \
            f"{namespace}"
        return dict(self._call(doing, self.core.create_namespaced_config_map, namespace, body,
                               **kwargs))

    def delete_configmap(self, namespace: str, name: str, dry_run: bool = False) -> bool:
        """Delete a ConfigMap; False when it does not exist (a dry run checks the right to)."""
        kwargs = {"dry_run": "All"} if dry_run else {}
        try:
            self._call(f"deleting configmap {namespace}/{name}",
                       self.core.delete_namespaced_config_map, name, namespace, **kwargs)
            return True
        except NotFound:
            return False

    def list_configmaps(self, namespace: str | None,
                        label_selector: str = "") -> list[dict[str, Any]]:
        where = f"in namespace {namespace}" if namespace else "in all namespaces"
        if namespace:
            data = self._call(f"listing configmaps {where}",
                              self.core.list_namespaced_config_map, namespace,
                              label_selector=label_selector)
        else:
            data = self._call(f"listing configmaps {where}",
                              self.core.list_config_map_for_all_namespaces,
                              label_selector=label_selector)
        return list(data.get("items") or [])

    def read_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(self._call(f"reading pod {namespace}/{name}",
                                   self.core.read_namespaced_pod, name, namespace))
        except NotFound:
            return None

    def annotate_pod(self, namespace: str, name: str, annotations: Mapping[str, str]) -> bool:
        """Merge `annotations` into a pod's; False when the pod is gone."""
        try:
            self._call(f"annotating pod {namespace}/{name}", self.core.patch_namespaced_pod,
                       name, namespace, {"metadata": {"annotations": dict(annotations)}})
            return True
        except NotFound:
            return False

    def delete_pod(self, namespace: str, name: str, grace_seconds: int | None = None) -> bool:
        kwargs = {} if grace_seconds is None else {"grace_period_seconds": grace_seconds}
        try:
            self._call(f"deleting pod {namespace}/{name}", self.core.delete_namespaced_pod,
                       name, namespace, **kwargs)
            return True
        except NotFound:
            return False

    def watch_pods(self, namespace: str | None, label_selector: str = "",
                   field_selector: str = "", timeout_seconds: int = 60,
                   resource_version: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """(event type, pod dict) until the server closes the watch after the timeout."""
        w = watch.Watch()
        kwargs: dict[str, Any] = {"label_selector": label_selector,
                                  "field_selector": field_selector,
                                  "timeout_seconds": timeout_seconds,
                                  "_request_timeout": timeout_seconds + 10}
        if resource_version:
            kwargs["resource_version"] = resource_version
        fn = self.core.list_namespaced_pod if namespace else self.core.list_pod_for_all_namespaces
        args = (namespace,) if namespace else ()
        try:
            for event in w.stream(fn, *args, **kwargs):
                obj = event.get("raw_object") or {}
                yield str(event.get("type")), obj
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _translate(exc, "watching pods") from None
        finally:
            w.stop()

    def _all_namespaces(self, resource: str) -> Any:
        fns = {"pods": self.core.list_pod_for_all_namespaces,
               "services": self.core.list_service_for_all_namespaces}
        return fns[resource]

    def list_all(self, resource: str) -> tuple[list[dict[str, Any]], str]:
        """Every object of `resource` ("pods", "services") in all namespaces, and the
        resourceVersion to watch from."""
        data = self._call(f"listing {resource} in all namespaces", self._all_namespaces(resource))
        return list(data.get("items") or []), str(data.get("metadata", {}).get("resourceVersion")
                                                 or "")

    def open_watch(self, resource: str, resource_version: str,
                   timeout_seconds: int = 300) -> WatchStream:
        """A watch of `resource` in all namespaces from `resource_version` (see WatchStream)."""
        doing = f"watching {resource} in all namespaces"
        try:
            resp = self._all_namespaces(resource)(
                watch=True, resource_version=resource_version, timeout_seconds=timeout_seconds,
                allow_watch_bookmarks=True, _preload_content=False,
                _request_timeout=(self.timeout, timeout_seconds + 10))
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _translate(exc, doing) from None
        return WatchStream(resp, doing)

    def follow_log(self, namespace: str, name: str, follow: bool = True) -> Iterator[bytes]:
        """Raw blocks of a pod's log (not cut at lines), following it until the container
        ends; read in large blocks (`logstream`) unless the kubeconfig names a proxy."""
        doing = f"reading the log of pod {namespace}/{name}"
        try:
            stream = open_log(self.api_client, namespace, name, follow, 10, FOLLOW_READ_TIMEOUT)
        except (StatusError, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _translate(exc, doing) from None
        if stream is None:
            yield from self._follow_log_client(namespace, name, follow)
            return
        try:
            yield from stream.chunks(settle=LOG_SETTLE)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _translate(exc, f"following the log of pod {namespace}/{name}") from None
        finally:
            stream.close()

    def _follow_log_client(self, namespace: str, name: str, follow: bool) -> Iterator[bytes]:
        """The same through the official client: one transfer chunk per read."""
        try:
            resp: Any = self.core.read_namespaced_pod_log(
                name, namespace, follow=follow, _preload_content=False,
                _request_timeout=(10, FOLLOW_READ_TIMEOUT))
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _translate(exc, f"reading the log of pod {namespace}/{name}") from None
        try:
            while True:
                chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(65536)
                if not chunk:
                    return
                yield chunk
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _translate(exc, f"following the log of pod {namespace}/{name}") from None
        finally:
            resp.release_conn()


class WatchStream:
    """One watch request: iterating gives (event type, object) until the server ends the
    watch; `close`, from any thread, ends it at once (a blocked read returns). An ERROR event
    raises KubeError (status 410 when the version is too old: list again)."""

    def __init__(self, resp: Any, doing: str) -> None:
        self._resp, self._doing, self._closed = resp, doing, False

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        buf = b""
        try:
            while not self._closed:
                chunk = self._resp.read1(65536)
                if not chunk:
                    return
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield self._event(line)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            if not self._closed:
                raise _translate(exc, self._doing) from None
        finally:
            self.close()
            self._resp.release_conn()

    def _event(self, line: bytes) -> tuple[str, dict[str, Any]]:
        event = json.loads(line)
        kind, obj = str(event.get("type")), event.get("object") or {}
        if kind == "ERROR":
            raise KubeError(f"{self._doing}: {obj.get('message') or obj.get('reason')}",
                            int(obj.get("code") or 0), str(obj.get("reason") or ""))
        return kind, obj

    def close(self) -> None:
        """End the watch (thread-safe); the iterating thread releases the connection."""
        if self._closed:
            return
        self._closed = True
        try:
            self._resp.shutdown()
        except (AttributeError, OSError):
            pass

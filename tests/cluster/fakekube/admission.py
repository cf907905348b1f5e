"""Authentication, RBAC-like refusals and Pod Security admission, all on demand.

Nothing is refused unless a test asks: tokens map to users, ``deny`` rules produce the exact
403 text RBAC produces (``User "u" cannot create resource "pods" in API group "" in the
namespace "gadget"``), and Pod Security evaluates the namespace's
``pod-security.kubernetes.io/enforce`` label (or a cluster default) with real check names and
message shapes. The trap avoided: product code that matches on refusal text must be tested
against the text a real cluster sends.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from .errors import ApiError, forbidden, unauthorized

Obj = dict[str, Any]
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
ENFORCE_VERSION_LABEL = "pod-security.kubernetes.io/enforce-version"
LEVELS = ("privileged", "baseline", "restricted")
_BASELINE_CAPS = frozenset(
    "AUDIT_WRITE CHOWN DAC_OVERRIDE FOWNER FSETID KILL MKNOD NET_BIND_SERVICE SETFCAP SETGID "
    "SETPCAP SETUID SYS_CHROOT".split()
)


@dataclass(frozen=True)
class DenyRule:
    """Refuse matching requests with 403. ``None`` fields match anything."""

    verb: str | None = None
    resource: str | None = None  # "pods", "pods/log", "namespaces", ...
    namespace: str | None = None
    user: str | None = None
    group: str = ""

    def matches(self, user: str, verb: str, resource: str, namespace: str, group: str) -> bool:
        return (
            (self.verb is None or self.verb == verb)
            and (self.resource is None or self.resource == resource)
            and (self.namespace is None or self.namespace == namespace)
            and (self.user is None or self.user == user)
            and self.group == group
        )


class Admission:
    """Request authentication, authorization and pod admission policy."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.tokens: dict[str, str] = {}
        self.allow_anonymous = True
        self._rules: list[DenyRule] = []
        self.pod_security_default: str | None = None

    def add_user(self, token: str, user: str) -> None:
        with self._lock:
            self.tokens[token] = user

    def deny(self, rule: DenyRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear_denials(self) -> None:
        with self._lock:
            self._rules.clear()

    def authenticate(self, authorization: str | None, impersonate: str | None = None) -> str:
        """Bearer token -> user; no credentials -> system:anonymous (if allowed).

        ``Impersonate-User`` (``kubectl --as``) wins, since kubectl sends no bearer token
        to a plain-http server and impersonation is then the only way to carry an identity.
        """
        if not authorization:
            if not self.allow_anonymous:
                raise unauthorized()
            user: str | None = "system:anonymous"
        else:
            scheme, _, token = authorization.partition(" ")
            with self._lock:
                user = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
            if user is None:
                raise unauthorized()
        assert user is not None
        return impersonate or user

    def allowed(self, user: str, verb: str, resource: str, namespace: str, group: str = "") -> bool:
        with self._lock:
            rules = list(self._rules)
        return not any(r.matches(user, verb, resource, namespace, group) for r in rules)

    def authorize(
        self, user: str, verb: str, resource: str, namespace: str, name: str | None,
        group: str = "",
    ) -> None:
        if self.allowed(user, verb, resource, namespace, group):
            return
        scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
        base = resource.split("/")[0]
        raise forbidden(
            base,
            name,
            f'User "{user}" cannot {verb} resource "{resource}" in API group "{group}" {scope}',
            group,
        )

    def admit_pod(self, pod: Obj, namespace: Obj) -> None:
        """Pod Security admission on create: 403 with the real violation message."""
        labels = namespace.get("metadata", {}).get("labels") or {}
        level = labels.get(ENFORCE_LABEL, self.pod_security_default)
        if level is None or level == "privileged":
            return
        if level not in LEVELS:
            level = "restricted"  # an invalid label value fails closed, as the real plugin does
        violations = pod_security_violations(pod, level)
        if violations:
            version = labels.get(ENFORCE_VERSION_LABEL, "latest")
            detail = ", ".join(f"{reason} ({text})" for reason, text in violations)
            raise forbidden(
                "pods",
                pod["metadata"]["name"],
                f'violates PodSecurity "{level}:{version}": {detail}',
            )


def _quote(items: list[str]) -> str:
    return ", ".join(f'"{item}"' for item in items)


def _plural(word: str, items: list[str]) -> str:
    return f"{word}{'s' if len(items) != 1 else ''} {_quote(items)}"


def _containers(pod: Obj) -> list[Obj]:
    spec = pod.get("spec") or {}
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def pod_security_violations(pod: Obj, level: str) -> list[tuple[str, str]]:
    """(reason, detail) pairs in the order the real checks run (by check id)."""
    spec = pod.get("spec") or {}
    pod_sc = spec.get("securityContext") or {}
    containers = _containers(pod)
    restricted = level == "restricted"
    found: list[tuple[str, str]] = []

    def sc(c: Obj) -> Obj:
        return c.get("securityContext") or {}

    if restricted:
        bad = [c["name"] for c in containers if sc(c).get("allowPrivilegeEscalation") is not False]
        if bad:
            found.append(("allowPrivilegeEscalation != false",
                          f"{_plural('container', bad)} must set "
                          "securityContext.allowPrivilegeEscalation=false"))
    added: dict[str, list[str]] = {}
    for c in containers:
        for cap in (sc(c).get("capabilities") or {}).get("add") or []:
            allowed = {"NET_BIND_SERVICE"} if restricted else _BASELINE_CAPS
            if cap not in allowed:
                added.setdefault(c["name"], []).append(cap)
    caps = sorted({cap for caps in added.values() for cap in caps})
    if restricted:
        no_drop = [c["name"] for c in containers
                   if "ALL" not in ((sc(c).get("capabilities") or {}).get("drop") or [])]
        parts = []
        if no_drop:
            parts.append(f'{_plural("container", no_drop)} must set '
                         'securityContext.capabilities.drop=["ALL"]')
        if added:
            parts.append(f"{_plural('container', list(added))} must not include {_quote(caps)} "
                         "in securityContext.capabilities.add")
        if parts:
            found.append(("unrestricted capabilities", "; ".join(parts)))
    elif added:
        found.append(("non-default capabilities",
                      f"{_plural('container', list(added))} must not include {_quote(caps)} in "
                      "securityContext.capabilities.add"))
    host = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    if host:
        found.append(("host namespaces", ", ".join(host)))
    volumes = spec.get("volumes") or []
    host_paths = [v["name"] for v in volumes if "hostPath" in v]
    if host_paths and not restricted:
        found.append(("hostPath volumes", _plural("volume", host_paths)))
    ports = [(c["name"], p["hostPort"]) for c in containers for p in c.get("ports") or []
             if p.get("hostPort")]
    if ports:
        names = sorted({name for name, _ in ports})
        found.append(("hostPort", f"{_plural('container', names)} "
                      f"{'uses' if len(names) == 1 else 'use'} "
                      f"{'hostPort' if len(ports) == 1 else 'hostPorts'} "
                      + ", ".join(str(p) for _, p in ports)))
    privileged = [c["name"] for c in containers if sc(c).get("privileged")]
    if privileged:
        found.append(("privileged", f"{_plural('container', privileged)} must not set "
                      "securityContext.privileged=true"))
    if restricted:
        if host_paths:
            found.append(("restricted volume types",
                          f"{_plural('volume', host_paths)} "
                          f"{'uses' if len(host_paths) == 1 else 'use'} restricted volume type "
                          '"hostPath"'))
        if not pod_sc.get("runAsNonRoot") and not all(sc(c).get("runAsNonRoot")
                                                       for c in containers):
            bad = [c["name"] for c in containers if not sc(c).get("runAsNonRoot")]
            found.append(("runAsNonRoot != true",
                          f"pod or {_plural('container', bad)} must set "
                          "securityContext.runAsNonRoot=true"))
        ok_types = ("RuntimeDefault", "Localhost")
        pod_ok = (pod_sc.get("seccompProfile") or {}).get("type") in ok_types
        bad = [c["name"] for c in containers
               if (sc(c).get("seccompProfile") or {}).get("type") not in ok_types]
        if not pod_ok and bad:
            found.append(("seccompProfile",
                          f"pod or {_plural('container', bad)} must set "
                          'securityContext.seccompProfile.type to "RuntimeDefault" or '
                          '"Localhost"'))
    return found


def terminating_namespace(resource: str, name: str, namespace: str) -> ApiError:
    return forbidden(
        resource, name,
        f"unable to create new content in namespace {namespace} because it is being terminated",
    )

"""The runner pod manifest: one short-lived, pinned, least-privileged pod per node.

Built from plain values (session, node plan, settings) into a dict the API accepts as is, so
it can be checked against golden YAML. Every privilege and mount is listed below with why it
is there; `--privileged` replaces the capability list with `privileged: true`.

Capabilities (added after dropping ALL):
- BPF: create maps and load programs (kernels >= 5.8).
- PERFMON: attach tracepoints and perf events; let programs read kernel memory (>= 5.8).
- SYS_ADMIN: bpf() on kernels older than 5.8, and mounting tracefs when the node lacks it.
- SYS_RESOURCE: raise RLIMIT_MEMLOCK, which kernels older than 5.11 charge maps against.
- SYS_PTRACE: read /proc/<pid>/ns/mnt of other containers' processes (their mount namespace
  ids are what the in-kernel filter keys on).
- DAC_READ_SEARCH: read the container runtime's state files for names of new containers.
- NET_ADMIN: add and remove the clsact qdisc and filter of a tc program in a target's netns.
- NET_RAW: open the raw AF_PACKET socket a socket-filter program is attached to.
- SYSLOG: read kernel symbol addresses in /proc/kallsyms (without it every address reads as 0
  and kernel stacks of profiling gadgets cannot be named).
Host access: hostPID (the host's /proc, to map containers to mount namespaces); seccomp and
AppArmor unconfined (the default profiles refuse bpf() and perf_event_open()); read-only host
mounts of the runtime state directories under /host; tracefs and debugfs from the host
(read-write: attaching a tracepoint writes to tracefs). No service-account token: the runner
never calls the API. A gadget directory of the client's machine comes as a ConfigMap volume,
read-only (gadget_files). Lifetime: `restartPolicy: Never` (a failing probe never runs twice) and
`activeDeadlineSeconds`, so a pod outlives a SIGKILLed client by at most its deadline.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from node_runner import __version__

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "kubectl-gadget"
SESSION_LABEL = "kubectl-gadget.io/session"
NODE_LABEL = "kubectl-gadget.io/node"
COMPONENT_LABEL = "app.kubernetes.io/component"
COMPONENT = "runner"
FILES_COMPONENT = "gadget-files"  # the ConfigMap of a shipped gadget directory (gadget_files)
CREATED_AT = "kubectl-gadget.io/created-at"
DEADLINE = "kubectl-gadget.io/deadline"
RENEWED_AT = "kubectl-gadget.io/renewed-at"  # the client's liveness signal (cluster/liveness.py)
CLIENT_VERSION = "kubectl-gadget.io/client-version"
GADGET = "kubectl-gadget.io/gadget"
DEFAULT_IMAGE = f"ghcr.io/kubectl-gadget/node-runner:{__version__}"
DEFAULT_NAMESPACE = "gadget"
CAPABILITIES = ("BPF", "PERFMON", "SYS_ADMIN", "SYS_RESOURCE", "SYS_PTRACE", "DAC_READ_SEARCH",
                "NET_ADMIN", "NET_RAW", "SYSLOG")
HOST_ROOT = "/host"
# (volume name, host path, mount path, read-only)
HOST_MOUNTS = (
    ("tracefs", "/sys/kernel/tracing", "/sys/kernel/tracing", False),
    ("debugfs", "/sys/kernel/debug", "/sys/kernel/debug", False),
    ("containerd-state", "/run/containerd", f"{HOST_ROOT}/run/containerd", True),
    ("containers-run", "/run/containers", f"{HOST_ROOT}/run/containers", True),
    ("docker-containers", "/var/lib/docker/containers",
     f"{HOST_ROOT}/var/lib/docker/containers", True),
)


@dataclass(frozen=True)
class RunnerSettings:
    namespace: str = DEFAULT_NAMESPACE
    image: str = DEFAULT_IMAGE
    pull_policy: str = "IfNotPresent"
    pull_secrets: tuple[str, ...] = ()
    privileged: bool = False
    tolerate_taints: bool = True
    deadline_seconds: int = 3600
    grace_seconds: int = 30
    extra_labels: tuple[tuple[str, str], ...] = field(default=())


def label_value(text: str) -> str:
    """A valid label value (<= 63 chars of [A-Za-z0-9-_.], alphanumeric at both ends)."""
    value = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:63].strip("-_.")
    return value or "x"


def pod_name(session: str, node: str) -> str:
    base = re.sub(r"[^a-z0-9-]", "-", node.lower()).strip("-") or "node"
    name = f"gadget-{session}-{base}"
    if len(name) > 63:
        digest = hashlib.sha256(node.encode()).hexdigest()[:8]
        name = f"gadget-{session}-{base[:63 - len(session) - 17]}-{digest}"
    return name


def configmap_name(session: str) -> str:
    """The ConfigMap holding a shipped gadget directory's files for `session`."""
    return f"gadget-{session}-files"


def runner_margin(deadline_seconds: int) -> int:
    """How much earlier than the pod's deadline the runner stops by itself: so its own
    deadline, which drains and writes `end`, wins the race against the kubelet's kill."""
    return min(30, max(1, deadline_seconds // 10))


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _security(settings: RunnerSettings) -> dict[str, Any]:
    if settings.privileged:
        return {"privileged": True}
    return {
        "privileged": False,
        "capabilities": {"drop": ["ALL"], "add": list(CAPABILITIES)},
        "seccompProfile": {"type": "Unconfined"},
        "appArmorProfile": {"type": "Unconfined"},
    }


def runner_pod(settings: RunnerSettings, session: str, node: str, args: list[str],
               gadget: str, now: float,
               volumes: tuple[tuple[dict[str, Any], dict[str, Any]], ...] = ()
               ) -> dict[str, Any]:
    """The manifest of the runner pod of `session` on `node`, running `node-runner ARGS`;
    `volumes` adds (volume, volumeMount) pairs (a shipped gadget's ConfigMap)."""
    labels = {MANAGED_BY: MANAGER, COMPONENT_LABEL: COMPONENT, SESSION_LABEL: session,
              NODE_LABEL: label_value(node), **dict(settings.extra_labels)}
    deadline = now + settings.deadline_seconds
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "activeDeadlineSeconds": settings.deadline_seconds,
        "terminationGracePeriodSeconds": settings.grace_seconds,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostPID": True,
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [
                {"key": "metadata.name", "operator": "In", "values": [node]}]}]}}},
        "containers": [{
            "name": "runner",
            "image": settings.image,
            "imagePullPolicy": settings.pull_policy,
            "args": ["run", *args, "--deadline",
                     str(int(deadline) - runner_margin(settings.deadline_seconds))],
            "securityContext": _security(settings),
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                          "limits": {"memory": "1Gi"}},
            "volumeMounts": [{"name": n, "mountPath": m, "readOnly": ro}
                             for n, _h, m, ro in HOST_MOUNTS] + [m for _v, m in volumes],
        }],
        "volumes": [{"name": n, "hostPath": {"path": h}} for n, h, _m, _ro in HOST_MOUNTS]
        + [v for v, _m in volumes],
    }
    if settings.tolerate_taints:
        spec["tolerations"] = [{"operator": "Exists"}]
    if settings.pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in settings.pull_secrets]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(session, node),
            "namespace": settings.namespace,
            "labels": labels,
            "annotations": {CREATED_AT: rfc3339(now), DEADLINE: rfc3339(deadline),
                            RENEWED_AT: rfc3339(now), CLIENT_VERSION: __version__,
                            GADGET: gadget},
        },
        "spec": spec,
    }


def metadata_arg(containers: dict[str, dict[str, Any]]) -> str:
    return json.dumps(containers, sort_keys=True, separators=(",", ":"))

"""Failure injection and policy switches of :class:`~.cluster.FakeCluster`, as a mixin.

Every method takes the same pod-matching keywords (``node``, ``pod`` for an exact name,
``name_prefix``, ``namespace``, ``labels``) so a test says where a failure happens in one
vocabulary, whatever component (scheduler, kubelet, log server, admission) acts on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .admission import DenyRule
from .faults import (
    CrashFault,
    ImagePullFault,
    LogDropFault,
    PodMatch,
    RejectFault,
    ScheduleFault,
)
from .timeutil import rfc3339

if TYPE_CHECKING:
    from .context import ApiContext
    from .kubelet import Kubelet

Obj = dict[str, Any]


def pod_match(node: str | None = None, pod: str | None = None, name_prefix: str | None = None,
              namespace: str | None = None,
              labels: Mapping[str, str] | None = None) -> PodMatch:
    return PodMatch(node=node, name=pod, name_prefix=name_prefix, namespace=namespace,
                    labels=dict(labels) if labels is not None else None)


class FaultInjection:
    ctx: ApiContext
    kubelet: Kubelet

    # -- kubelet and scheduler faults --------------------------------------------------------
    def fail_image_pull(self, *, image: str | None = None, message: str | None = None,
                        **match: Any) -> ImagePullFault:
        """Pods matching (and ``image`` if given) fail with ErrImagePull/ImagePullBackOff."""
        rule = ImagePullFault(pod_match(**match), image, message)
        with self.ctx.faults.lock:
            self.ctx.faults.image_pull.append(rule)
        return rule

    def crash(self, exit_code: int = 1, lines: tuple[str, ...] | list[str] = (),
              after_seconds: float = 0.0, container: str | None = None,
              **match: Any) -> CrashFault:
        """Matching containers print ``lines`` on stderr and exit with ``exit_code``."""
        rule = CrashFault(pod_match(**match), exit_code, tuple(lines), after_seconds, container)
        with self.ctx.faults.lock:
            self.ctx.faults.crash.append(rule)
        return rule

    def reject_on_kubelet(self, reason: str = "OutOfcpu", message: str | None = None,
                          **match: Any) -> RejectFault:
        """The kubelet refuses matching pods at admission (phase Failed, given reason)."""
        text = message or f"Pod was rejected: Node didn't have enough resource: {reason}"
        rule = RejectFault(pod_match(**match), reason, text)
        with self.ctx.faults.lock:
            self.ctx.faults.reject.append(rule)
        return rule

    def fail_scheduling(self, reason: str = "Insufficient cpu", **match: Any) -> ScheduleFault:
        """No node fits matching unbound pods (PodScheduled=False, Unschedulable)."""
        rule = ScheduleFault(pod_match(**match), reason)
        with self.ctx.faults.lock:
            self.ctx.faults.schedule.append(rule)
        self.kubelet.kick()
        return rule

    def drop_log_stream(self, after_lines: int = 0, times: int = 1, mode: str = "abort",
                        container: str | None = None, **match: Any) -> LogDropFault:
        """Cut ``times`` follow-log streams of matching pods after ``after_lines`` lines."""
        if mode not in ("abort", "eof"):
            raise ValueError("mode must be 'abort' or 'eof'")
        rule = LogDropFault(pod_match(**match), after_lines, times, mode, container)
        with self.ctx.faults.lock:
            self.ctx.faults.log_drops.append(rule)
        return rule

    def clear_faults(self) -> None:
        self.ctx.faults.clear()
        self.kubelet.kick()

    def lose_node(self, name: str, pod_phase: str = "Unknown") -> None:
        """Kill the node: processes die, node NotReady/unreachable, its pods NodeLost."""
        self.kubelet.lose_node(name, pod_phase)

    # -- node changes ------------------------------------------------------------------------
    def _mutate_node(self, name: str, fn: Any) -> Obj:
        node = self.ctx.store.mutate("nodes", "", name, fn)
        if node is None:
            raise KeyError(f"no node {name}")
        self.kubelet.kick()
        return node

    def taint_node(self, name: str, key: str, value: str = "",
                   effect: str = "NoSchedule") -> Obj:
        def add(node: Obj) -> Obj:
            taint: Obj = {"key": key, "effect": effect}
            if value:
                taint["value"] = value
            if effect == "NoExecute":
                taint["timeAdded"] = rfc3339()
            node["spec"].setdefault("taints", []).append(taint)
            return node

        return self._mutate_node(name, add)

    def untaint_node(self, name: str, key: str) -> Obj:
        def remove(node: Obj) -> Obj:
            node["spec"]["taints"] = [t for t in node["spec"].get("taints") or []
                                      if t["key"] != key]
            return node

        return self._mutate_node(name, remove)

    def cordon(self, name: str) -> Obj:
        def mark(node: Obj) -> Obj:
            node["spec"]["unschedulable"] = True
            node["spec"].setdefault("taints", []).append(
                {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule",
                 "timeAdded": rfc3339()})
            return node

        return self._mutate_node(name, mark)

    def uncordon(self, name: str) -> Obj:
        def clear(node: Obj) -> Obj:
            node["spec"].pop("unschedulable", None)
            node["spec"]["taints"] = [t for t in node["spec"].get("taints") or []
                                      if t["key"] != "node.kubernetes.io/unschedulable"]
            return node

        return self._mutate_node(name, clear)

    # -- API policy ------------------------------------------------------------------------
    def deny(self, verb: str | None = None, resource: str | None = None,
             namespace: str | None = None, user: str | None = None,
             group: str = "") -> DenyRule:
        """RBAC-like refusal: matching requests get the real 403 'cannot VERB resource' text."""
        rule = DenyRule(verb, resource, namespace, user, group)
        self.ctx.admission.deny(rule)
        return rule

    def clear_denials(self) -> None:
        self.ctx.admission.clear_denials()

    def enforce_pod_security(self, level: str | None = "baseline") -> None:
        """Pod Security level for namespaces without the enforce label (None disables)."""
        self.ctx.admission.pod_security_default = level

    def compact_history(self, keep: int = 0) -> int:
        """Forget watch history so older resourceVersions get 410 Expired."""
        return self.ctx.store.compact(keep)

"""A trivial scheduler: filters like kube-scheduler's, picks the least-loaded fitting node.

Filters: node unschedulable (cordon), nodeSelector and required node affinity (including
``matchFields`` on ``metadata.name``), untolerated NoSchedule/NoExecute taints, and injected
"Insufficient cpu"-style refusals. When nothing fits, the message has the real shape —
``0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, ...`` — since
the product reports it to users as the reason a runner never starts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

Obj = dict[str, Any]


def _expr_matches(expr: Obj, value: str | None) -> bool:
    op, values = expr.get("operator"), expr.get("values") or []
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and values:
        try:
            have, want = int(value), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def node_affinity_matches(pod: Obj, node: Obj) -> bool:
    spec = pod.get("spec") or {}
    labels = node["metadata"].get("labels") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if not required:
        return True
    for term in required.get("nodeSelectorTerms") or []:
        exprs = term.get("matchExpressions") or []
        fields = term.get("matchFields") or []
        if not exprs and not fields:
            continue
        if all(_expr_matches(e, labels.get(e["key"])) for e in exprs) and all(
            _expr_matches(f, node["metadata"]["name"] if f["key"] == "metadata.name" else None)
            for f in fields
        ):
            return True
    return False


def tolerates(tolerations: Iterable[Obj], taint: Obj) -> bool:
    for tol in tolerations:
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        if tol.get("operator") == "Exists":
            if not tol.get("key") or tol["key"] == taint.get("key"):
                return True
        elif tol.get("key") == taint.get("key") and (tol.get("value") or "") == (
            taint.get("value") or ""
        ):
            return True
    return False


def untolerated_taint(pod: Obj, node: Obj, effects: tuple[str, ...]) -> Obj | None:
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in effects and not tolerates(tolerations, taint):
            return taint
    return None


def _reject_reason(pod: Obj, node: Obj) -> str | None:
    if (node.get("spec") or {}).get("unschedulable"):
        cordon = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
        if not tolerates((pod.get("spec") or {}).get("tolerations") or [], cordon):
            return "node(s) were unschedulable"
    if not node_affinity_matches(pod, node):
        return "node(s) didn't match Pod's node affinity/selector"
    taint = untolerated_taint(pod, node, ("NoSchedule", "NoExecute"))
    if taint is not None:
        return f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"
    return None


def schedule(pod: Obj, nodes: list[Obj], load: Counter[str],
             forced_reason: str | None = None) -> tuple[str | None, str]:
    """Return (node name, "") or (None, the FailedScheduling message)."""
    reasons: Counter[str] = Counter()
    fitting: list[str] = []
    for node in nodes:
        reason = forced_reason or _reject_reason(pod, node)
        if reason is None:
            fitting.append(node["metadata"]["name"])
        else:
            reasons[reason] += 1
    if fitting:
        return min(fitting, key=lambda name: (load[name], name)), ""
    total = len(nodes)
    detail = ", ".join(sorted(f"{count} {reason}" for reason, count in reasons.items()))
    message = f"0/{total} nodes are available"
    if detail:
        message += f": {detail}"
    message += (f". preemption: 0/{total} nodes are available: {total} Preemption is not "
                "helpful for scheduling.")
    return None, message

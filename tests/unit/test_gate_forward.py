"""`-o json` on a cluster with a target gate: nested events are forwarded as the runner wrote
them when the gate shows their container, and take the decoding path otherwise; either way the
output is exactly what the decoding path prints for the same events.
"""

from __future__ import annotations

import io
import json
from typing import Any

from kubectl_gadget.cluster.follow import TargetGate
from kubectl_gadget.cluster.targets import TargetContainer
from kubectl_gadget.pipeline import Operators, Pipeline
from kubectl_gadget.session import Session
from tests import stream_mutations as M

ENRICH = ["k8s.node", "k8s.namespace", "k8s.podName", "k8s.containerName", "k8s.podLabels",
          "k8s.owner.kind", "k8s.owner.name", "runtime.containerId"]
FIELDS = [{"name": n, "type": "u32" if n == "pid" else "string", "tags": [], "annotations": {}}
          for n in ["pid", "comm", *ENRICH]]
KNOWN = TargetContainer("shop", "cart-1", "uid-1", "cart", "a" * 64, "containerd",
                        (("app", "cart"),), "ReplicaSet", "cart-5d")
LATE = TargetContainer("shop", "cart-2", "uid-2", "cart", "b" * 64, "containerd",
                       (("app", "cart"),), "ReplicaSet", "cart-5d")


def _line(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _data(comm: str, cid: str, pod: str) -> dict[str, Any]:
    data: dict[str, Any] = {"pid": 7, "comm": comm}
    data.update({n: "" for n in ENRICH})
    data.update({"k8s.node": "n1", "runtime.containerId": cid, "k8s.podName": pod})
    if pod:
        data.update({"k8s.namespace": "shop", "k8s.containerName": "cart",
                     "k8s.podLabels": "app=cart", "k8s.owner.kind": "ReplicaSet",
                     "k8s.owner.name": "cart-5d"})
    return data


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in flat.items():
        *parents, leaf = name.split(".")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return out


def _stream(nested: bool) -> list[bytes]:
    events = [_data("shown", KNOWN.container_id, "cart-1"),  # a target the runner named
              _data("unnamed", KNOWN.container_id, ""),  # a target the runner could not name
              _data("late", LATE.container_id, ""),  # held until its pod is reported
              _data("stranger", "c" * 64, ""),  # never a target: held, then dropped
              _data("shown-too", KNOWN.container_id, "cart-1")]
    hello = {"type": "hello", "protocol": 1, "runner": "t", "node": "n1",
             "data": "nested" if nested else ""}
    lines = [_line(hello), _line({"type": "schema", "ds": M.DS, "fields": FIELDS})]
    lines += [_line({"type": "event", "ds": M.DS, "data": _nest(d) if nested else d})
              for d in events]
    if nested:  # data that is no object is a malformed record, as on the decoding path
        lines.append(b'{"type":"event","ds":"exec","data":[1,2]}')
    return [*lines, M.end(len(lines) - 2)]


def _run(nested: bool) -> tuple[list[dict[str, Any]], list[str], int]:
    out = io.StringIO()
    diag: list[str] = []
    gate = TargetGate([KNOWN], hold_seconds=3600)
    pipeline = Pipeline(Operators(mode="json"), out, diag.append, gate=gate)
    pipeline.prepare(M.DS, FIELDS)
    assert pipeline.can_forward()
    pipeline.forward = nested
    node = M.MemoryNode("n1", b"\n".join(_stream(nested)) + b"\n")
    session = Session([node], pipeline, timeout=None, diag=diag.append)
    session.run()
    gate.allow([LATE])  # its pod reported after its first event
    pipeline.flush()
    gate.hold_seconds = 0
    pipeline.flush()
    return [json.loads(x) for x in out.getvalue().splitlines()], diag, gate.dropped


def test_gated_forwarding_prints_what_the_decoding_path_prints() -> None:
    decoded, _diag, dropped = _run(nested=False)
    forwarded, diag, forwarded_dropped = _run(nested=True)
    assert forwarded == decoded
    assert [r["comm"] for r in forwarded] == ["shown", "unnamed", "shown-too", "late"]
    unnamed = forwarded[1]
    assert unnamed["k8s"]["podName"] == "cart-1" and unnamed["k8s"]["owner"]["name"] == "cart-5d"
    assert forwarded[3]["k8s"]["podName"] == "cart-2"
    assert dropped == forwarded_dropped == 1
    assert sum("skipping a malformed record (event data is not an object)" in d
               for d in diag) == 1, diag


def test_a_container_named_from_runtime_state_gets_labels_and_owner_from_the_api() -> None:
    """A target the runner was not told about (its pod started during the run) is named by
    the runner from the runtime's state: namespace, pod and container, but no pod labels or
    owner. Forwarded or decoded, the printed event has those from the API."""
    for nested in (False, True):
        data = _data("runtime-named", LATE.container_id, "cart-2")
        data.update({"k8s.podLabels": "", "k8s.owner.kind": "", "k8s.owner.name": ""})
        hello = {"type": "hello", "protocol": 1, "runner": "t", "node": "n1",
                 "data": "nested" if nested else ""}
        lines = [_line(hello), _line({"type": "schema", "ds": M.DS, "fields": FIELDS}),
                 _line({"type": "event", "ds": M.DS, "data": _nest(data) if nested else data})]
        out = io.StringIO()
        gate = TargetGate([KNOWN], hold_seconds=3600)
        gate.allow([LATE])  # reported by the pod watch, not told to the runner
        pipeline = Pipeline(Operators(mode="json"), out, lambda _m: None, gate=gate)
        pipeline.prepare(M.DS, FIELDS)
        pipeline.forward = nested
        node = M.MemoryNode("n1", b"\n".join([*lines, M.end(1)]) + b"\n")
        Session([node], pipeline, timeout=None, diag=lambda _m: None).run()
        pipeline.flush()
        (event,) = [json.loads(x) for x in out.getvalue().splitlines()]
        assert event["k8s"]["podName"] == "cart-2", (nested, event)
        assert event["k8s"]["podLabels"] == "app=cart", (nested, event)
        assert event["k8s"]["owner"] == {"kind": "ReplicaSet", "name": "cart-5d"}, (nested, event)

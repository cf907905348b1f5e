"""A synthetic node runner for the fan-out benchmark: the runner protocol without eBPF.

Run by the fake kubelet in place of the runner image, with the runner pod's args
(`run --gadget G --node N --container-id ID --k8s-metadata JSON --timeout T ...`, unknown
flags ignored; `--nested-data` nests the event data as the runner does). It prints `hello`,
one `schema` (the fields in the JSON file named by $BENCH_SCHEMA, which the benchmark computes
the way the client expects them), then:
- "tick" events (comm `tick`) at $BENCH_RATE per second until the file $BENCH_GO exists;
- then $BENCH_COUNT "burst" events (comm `burst`) as fast as it can, in writes of
  $BENCH_BATCH lines;
- then `end` (reason `finished`). SIGTERM/SIGINT or --timeout end it early (reason `signal` /
  `timeout`), like the real runner.
Every event carries the node (`k8s.node`) and the first target container's id and pod
metadata, so the client's target gate admits it and the benchmark can tell nodes apart. Lines
are rendered from a template built once: the benchmark must measure the client, not this.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

_INT_TYPES = {"u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64"}
_SENTINEL = 987654321987  # replaced by the event's sequence number


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("command", nargs="?")
    p.add_argument("--gadget", default="trace_exec")
    p.add_argument("--node", default=os.uname().nodename)
    p.add_argument("--timeout", type=float, default=None)
    p.add_argument("--container-id", action="append", default=[])
    p.add_argument("--k8s-metadata", default="{}")
    p.add_argument("--nested-data", action="store_true")
    args, _unknown = p.parse_known_args(argv)
    return args


def _template(fields: list[dict], args: argparse.Namespace, ds: str, comm: str) -> tuple[str, str]:
    cid = args.container_id[0] if args.container_id else ""
    meta = json.loads(args.k8s_metadata).get(cid, {})
    labels = ",".join(f"{k}={v}" for k, v in sorted(meta.get("pod_labels", {}).items()))
    known = {
        "comm": comm, "proc.comm": comm, "pcomm": "sh", "proc.parent.comm": "sh",
        "file": "/usr/bin/true", "args": "/usr/bin/true --bench",
        "timestamp": "2026-01-01T00:00:00.000000000Z", "k8s.node": args.node,
        "k8s.namespace": meta.get("namespace", ""), "k8s.podName": meta.get("pod_name", ""),
        "k8s.containerName": meta.get("container_name", ""), "k8s.podLabels": labels,
        "k8s.owner.kind": meta.get("owner_kind", ""), "k8s.owner.name": meta.get("owner_name", ""),
        "runtime.containerId": cid, "runtime.containerName": meta.get("container_name", ""),
        "runtime.runtimeName": "containerd", "pid": _SENTINEL, "proc.pid": _SENTINEL,
    }
    data = {}
    for f in fields:
        name = f["name"]
        data[name] = known.get(name, 0 if f.get("type") in _INT_TYPES else "")
    if args.nested_data:
        data = _nest(data)
    text = json.dumps({"type": "event", "ds": ds, "data": data}, separators=(",", ":"))
    head, found, tail = text.partition(str(_SENTINEL))
    if not found or f'comm":"{comm}"' not in text:
        raise SystemExit(f"synthetic runner: the schema of {ds!r} has no pid or comm field")
    return head, tail + "\n"


def _nest(flat: dict) -> dict:
    """`a.b` -> {"a": {"b": ...}}, in field order, as the runner's --nested-data writes it."""
    out: dict = {}
    for name, value in flat.items():
        *parents, leaf = name.split(".")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return out


class _Stop:
    reason = ""

    def handler(self, signum: int, _frame: object) -> None:
        self.reason = "signal"


def main() -> int:
    args = _args(sys.argv[1:])
    with open(os.environ["BENCH_SCHEMA"]) as f:
        schema = json.load(f)
    ds, fields = schema["ds"], schema["fields"]
    go_path = os.environ.get("BENCH_GO", "")
    rate = float(os.environ.get("BENCH_RATE", "50"))
    count = int(os.environ.get("BENCH_COUNT", "0"))
    batch = int(os.environ.get("BENCH_BATCH", "256"))
    stop = _Stop()
    signal.signal(signal.SIGTERM, stop.handler)
    signal.signal(signal.SIGINT, stop.handler)
    out = sys.stdout
    deadline = time.monotonic() + args.timeout if args.timeout else None
    gadget_name = os.path.basename(args.gadget.rstrip("/"))
    hello = {"type": "hello", "protocol": 1, "runner": "bench", "node": args.node,
             "gadget": {"name": gadget_name, "ref": args.gadget, "digest": ""},
             "boot_to_wall_ns": time.time_ns() - time.monotonic_ns(),
             "data": "nested" if args.nested_data else ""}
    out.write(json.dumps(hello) + "\n")
    out.write(json.dumps({"type": "schema", "ds": ds, "kind": "stream",
                          "annotations": {}, "fields": fields}) + "\n")
    out.flush()
    tick_head, tick_tail = _template(fields, args, ds, "tick")
    burst_head, burst_tail = _template(fields, args, ds, "burst")
    seq, sent = 0, 0
    period = 1.0 / rate if rate > 0 else 0.1

    def timed_out() -> bool:
        return deadline is not None and time.monotonic() >= deadline

    try:
        while not stop.reason and not (go_path and os.path.exists(go_path)):
            if timed_out():
                stop.reason = "timeout"
                break
            if rate > 0:
                seq += 1
                out.write(f"{tick_head}{seq}{tick_tail}")
                out.flush()
                sent += 1
            time.sleep(period)
        left = count if not stop.reason else 0
        while left > 0 and not stop.reason:
            n = min(batch, left)
            out.write("".join(f"{burst_head}{seq + i + 1}{burst_tail}" for i in range(n)))
            out.flush()
            seq, left, sent = seq + n, left - n, sent + n
            if timed_out():
                stop.reason = "timeout"
        end = {"type": "end", "reason": stop.reason or "finished", "events": sent, "lost": 0,
               "dropped": 0, "exit_code": 0}
        out.write(json.dumps(end) + "\n")
        out.flush()
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

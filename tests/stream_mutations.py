"""Runner streams for fuzzing the client: good protocol lines, and seeded ways to break them.

`good_stream` is what a well-behaved runner writes (hello, schema, events with a marker in
`comm`, end). `mutated_stream` interleaves it with broken lines drawn from a seeded generator:
wrong types in known keys, malformed schemas, truncations, byte flips, deep nesting, non-finite
numbers, unknown record types, events of unannounced datasources, garbage bytes. Every good
event line of the stream is kept unchanged, so a reader that isolates bad lines must deliver
all of its markers.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator

DS = "exec"
FIELDS = [
    {"name": "pid", "type": "u32", "tags": ["type:gadget_pid"], "annotations": {}},
    {"name": "comm", "type": "string", "tags": [], "annotations": {}},
    {"name": "ratio", "type": "f64", "tags": [], "annotations": {}},
    {"name": "k8s.node", "type": "string", "tags": [], "annotations": {}},
]


def _line(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def event(node: str, marker: str, pid: int = 1) -> bytes:
    return _line({"type": "event", "ds": DS,
                  "data": {"pid": pid, "comm": marker, "ratio": 0.5, "k8s.node": node}})


def markers_of(node: str, count: int) -> list[str]:
    return [f"m-{node}-{i}" for i in range(count)]


def head(node: str) -> list[bytes]:
    return [_line({"type": "hello", "protocol": 1, "runner": "fuzz", "node": node,
                   "gadget": {"name": "fuzz", "ref": "fuzz", "digest": ""},
                   "boot_to_wall_ns": 0}),
            _line({"type": "schema", "ds": DS, "kind": "stream", "annotations": {},
                   "fields": FIELDS})]


def end(events: int) -> bytes:
    return _line({"type": "end", "reason": "finished", "events": events, "lost": 0,
                  "dropped": 0, "exit_code": 0})


def good_stream(node: str, markers: list[str]) -> list[bytes]:
    return [*head(node), *(event(node, m, i + 1) for i, m in enumerate(markers)),
            end(len(markers))]


_BAD_VALUES: list[object] = ["7", None, [], {}, -1, 1.5, True, "", [1], {"a": 1}]


def _wrong_type(rng: random.Random, node: str) -> bytes:
    kind, key = rng.choice([("lost", "count"), ("lost", "ds"), ("event", "ds"),
                            ("event", "data"), ("hello", "protocol"), ("end", "exit_code"),
                            ("end", "events"), ("schema", "fields"), ("schema", "ds"),
                            ("error", "message"), ("warning", "message"), ("array", "data")])
    rec: dict[str, object] = {"type": kind, "ds": DS, "count": 1, "data": {"pid": 1},
                              "protocol": 1, "exit_code": 0, "events": 0, "fields": FIELDS,
                              "message": "m"}
    rec[key] = rng.choice(_BAD_VALUES)
    return _line(rec)


def _bad_schema(rng: random.Random, node: str) -> bytes:
    field = dict(rng.choice(FIELDS))
    field[rng.choice(["name", "type", "tags", "annotations"])] = rng.choice(_BAD_VALUES[:6])
    return _line({"type": "schema", "ds": DS, "kind": "stream", "fields": [field]})


def _truncated(rng: random.Random, node: str) -> bytes:
    line = event(node, "never-complete")
    return line[: rng.randrange(1, len(line) - 1)]


def _flipped(rng: random.Random, node: str) -> bytes:
    line = bytearray(event(node, "flipped"))
    for _ in range(rng.randint(1, 4)):
        line[rng.randrange(len(line))] = rng.choice(b'{}[]":,\\\x00\xff0e-')
    return bytes(line).replace(b"\n", b" ")


def _deep(rng: random.Random, node: str) -> bytes:
    depth = rng.choice([500, 1000, 5000])
    return (b'{"type":"event","ds":"' + DS.encode() + b'","data":{"x":' + b"[" * depth
            + b"]" * depth + b"}}")


def _non_finite(rng: random.Random, node: str) -> bytes:
    token = rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e400"])
    return event(node, "nonfinite").replace(b'"ratio":0.5', b'"ratio":' + token)


def _lost_overflow(rng: random.Random, node: str) -> bytes:
    return b'{"type":"lost","ds":"' + DS.encode() + b'","count":' + rng.choice(
        [b"1e400", b"NaN", b"-Infinity", b"1" + b"0" * 400]) + b"}"


def _unknown_type(rng: random.Random, node: str) -> bytes:
    return _line({"type": rng.choice(["progress", "metric", ""]), "value": rng.random()})


def _unannounced(rng: random.Random, node: str) -> bytes:
    return _line({"type": "event", "ds": rng.choice(["other", "", "exec2"]), "data": {"pid": 3}})


def _garbage(rng: random.Random, node: str) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.randint(1, 80))).replace(b"\n", b"")


MUTATORS: list[Callable[[random.Random, str], bytes]] = [
    _wrong_type, _bad_schema, _truncated, _flipped, _deep, _non_finite, _lost_overflow,
    _unknown_type, _unannounced, _garbage,
]


def mutated_stream(node: str, markers: list[str], seed: int, bad_lines: int) -> list[bytes]:
    """The good stream of `node` with `bad_lines` broken lines inserted at seeded places
    (never before the schema, so every marker event stays deliverable)."""
    rng = random.Random(seed)
    lines = good_stream(node, markers)
    body = lines[2:-1]
    for _ in range(bad_lines):
        body.insert(rng.randint(0, len(body)), rng.choice(MUTATORS)(rng, node))
    return [*lines[:2], *body, lines[-1]]


class MemoryNode:
    """A node (the client's Node interface) whose runner output is a byte string, handed
    over in chunks cut at seeded random places, as pipes and HTTP streams cut it."""

    def __init__(self, name: str, data: bytes, seed: int = 0) -> None:
        self.name, self._data, self._rng = name, data, random.Random(seed)

    def start(self) -> None:
        pass

    def chunks(self) -> Iterator[bytes]:
        pos = 0
        while pos < len(self._data):
            step = self._rng.choice([1, 7, 64, 300, 4096, 1 << 16])
            yield self._data[pos:pos + step]
            pos += step

    def stop(self, graceful: bool = True) -> None:
        pass

    def wait(self, timeout: float = 10.0) -> tuple[int, str]:
        return 0, ""

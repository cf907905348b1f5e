"""What the client does with records that are valid JSON but not what it expects.

Non-finite numbers reach `-o json` as null; events of a datasource no schema announced are
counted and reported; the runner's `end.events` is compared with what arrived; a schema whose
fields cannot be shown is reported for its node while the other nodes go on.
"""

from __future__ import annotations

import io
import json

from kubectl_gadget.pipeline import Operators, Pipeline
from kubectl_gadget.session import Session
from tests import stream_mutations as M


def run(streams: dict[str, list[bytes]], mode: str = "json") -> tuple[int, list[str], list[str]]:
    out = io.StringIO()
    diag: list[str] = []
    pipeline = Pipeline(Operators(mode=mode), out, diag.append)
    nodes = [M.MemoryNode(n, b"\n".join(lines) + b"\n") for n, lines in streams.items()]
    rc = Session(nodes, pipeline, timeout=None, diag=diag.append).run()
    return rc, out.getvalue().splitlines(), diag


def _reject(token: str) -> None:
    raise AssertionError(f"non-strict JSON in the output: {token}")


def test_nan_and_infinity_are_written_as_null() -> None:
    lines = M.good_stream("n1", ["a", "b", "c"])
    lines[2] = lines[2].replace(b'"ratio":0.5', b'"ratio":NaN')
    lines[3] = lines[3].replace(b'"ratio":0.5', b'"ratio":-Infinity')
    lines[4] = lines[4].replace(b'"ratio":0.5', b'"ratio":1e999')
    rc, out, diag = run({"n1": lines})
    rows = [json.loads(line, parse_constant=_reject) for line in out]
    assert [(r["comm"], r["ratio"]) for r in rows] == [("a", None), ("b", None), ("c", None)]
    assert rc == 0, diag


def test_events_without_a_schema_are_counted_and_reported() -> None:
    lines = M.good_stream("n1", ["a"])
    stray = b'{"type":"event","ds":"other","data":{"pid":1}}'
    lines[2:2] = [stray, stray]
    early = M.event("n1", "early")
    rc, out, diag = run({"n1": [lines[0], early, *lines[1:-1], M.end(4)]})
    assert [json.loads(x)["comm"] for x in out] == ["a"]
    assert "node n1: events of datasource 'other' arrive without a schema; skipping them" in diag
    assert "node n1: 2 event(s) of datasource 'other' skipped: no schema announced" in diag
    assert "node n1: 1 event(s) of datasource 'exec' skipped: no schema announced" in diag
    assert rc == 0


def test_end_events_is_compared_with_what_arrived() -> None:
    lines = M.good_stream("n1", ["a", "b"])
    lines[-1] = M.end(5)
    rc, out, diag = run({"n1": lines, "n2": M.good_stream("n2", ["c"])})
    assert "node n1: the runner reported 5 event(s), 2 arrived" in diag
    assert not [d for d in diag if d.startswith("node n2:")], diag
    assert sorted(json.loads(x)["comm"] for x in out) == ["a", "b", "c"]


def test_a_schema_that_cannot_be_shown_is_reported_and_the_others_go_on() -> None:
    clash = (b'{"type":"schema","ds":"x","fields":[{"name":"proc","type":"u32"},'
             b'{"name":"proc.comm","type":"string"}]}')
    bad = M.good_stream("n1", ["a"])
    bad.insert(2, clash)
    rc, out, diag = run({"n1": bad, "n2": M.good_stream("n2", ["b"])})
    assert sorted(json.loads(x)["comm"] for x in out) == ["a", "b"]
    assert any("schema of datasource 'x' rejected" in d and d.startswith("node n1:")
               for d in diag), diag


def test_runner_log_lines_in_a_pod_log_are_shown_not_counted_as_malformed() -> None:
    """A pod's log mixes the runner's stderr with its records: a line that is no JSON object
    is the runner speaking (shown as `node X: text`, control characters escaped); a broken
    JSON object is still a malformed record, counted and described without Python reprs."""
    lines = M.good_stream("n1", ["a", "b"])
    lines[1:1] = [b"node-runner: mounted bpf on /sys/fs/bpf", b"libbpf: \x1b[31mred\xff"]
    lines[-1:-1] = [b'{"type":"event","ds":"exec","data":{"pid":', b"  "]
    rc, out, diag = run({"n1": lines})
    assert [json.loads(x)["comm"] for x in out] == ["a", "b"]
    assert "node n1: mounted bpf on /sys/fs/bpf" in diag, diag
    assert "node n1: libbpf: \\x1b[31mred\ufffd" in diag, diag
    assert "node n1: 1 malformed record(s) skipped" in diag, diag
    malformed = [d for d in diag if "skipping a malformed record" in d]
    assert len(malformed) == 1 and malformed[0].endswith(': {"type":"event","ds":"exec",'
                                                         '"data":{"pid":'), malformed
    assert not [d for d in diag if "b'" in d or 'b"' in d], diag
    assert rc == 0, diag  # malformed records are reported; the run itself went well

"""Fuzzing the client from mutated runner streams: three nodes, one misbehaves.

Each case runs a real `Session` (merger threads, pipeline, formatter) over three nodes whose
runner output is served from memory in chunks cut at random places; node-b's stream carries
broken lines from tests/stream_mutations.py. Whatever node-b sends, the run must not raise,
stdout must stay strict JSON (one object per line, no NaN), every marker event of every node
(node-b's good lines included) must arrive, and node-b's problems must be reported on the
diagnostic stream. The number of cases is bounded by time: KUBECTL_GADGET_FUZZ_SECONDS (a few
seconds in `make test`, minutes in `make fuzz`).
"""

from __future__ import annotations

import io
import json
import os
import time

import pytest

from kubectl_gadget.pipeline import Operators, Pipeline
from kubectl_gadget.session import Session
from tests import stream_mutations as M

NODES = ("node-a", "node-b", "node-c")
BAD = "node-b"
FUZZ_SECONDS = float(os.environ.get("KUBECTL_GADGET_FUZZ_SECONDS", "3"))


def _strict(token: str) -> None:
    raise ValueError(f"non-strict JSON token {token}")


def run_case(seed: int, mode: str = "json", bad_lines: int = 30, events: int = 40,
             forward: bool = False) -> tuple[int, list[str], list[str], dict[str, list[str]]]:
    markers = {n: M.markers_of(n, events) for n in NODES}
    streams = {n: M.good_stream(n, markers[n]) for n in NODES}
    streams[BAD] = M.mutated_stream(BAD, markers[BAD], seed, bad_lines)
    if forward:  # runners that nest their data: events are forwarded, not decoded
        for lines in streams.values():
            lines[0] = lines[0][:-1] + b',"data":"nested"}'
    out: io.StringIO = io.StringIO()
    diag: list[str] = []
    pipeline = Pipeline(Operators(mode=mode), out, diag.append)
    pipeline.forward = forward
    nodes = [M.MemoryNode(n, b"\n".join(streams[n]) + b"\n", seed + i)
             for i, n in enumerate(NODES)]
    rc = Session(nodes, pipeline, timeout=None, diag=diag.append).run()
    return rc, out.getvalue().splitlines(), diag, markers


def check_case(seed: int) -> None:
    rc, lines, diag, markers = run_case(seed, forward=seed % 2 == 1)
    comms = set()
    for line in lines:
        obj = json.loads(line, parse_constant=_strict)
        rows = obj if isinstance(obj, list) else [obj]  # an `array` record prints a list
        assert all(isinstance(r, dict) for r in rows), line
        comms.update(r.get("comm") for r in rows)
    for node, wanted in markers.items():
        missing = [m for m in wanted if m not in comms]
        assert not missing, f"seed {seed}: {len(missing)} events of {node} lost: {missing[:3]}"
    assert any(d.startswith(f"node {BAD}: ") for d in diag), f"seed {seed}: nothing reported"
    assert not [d for d in diag if d.startswith(("node node-a:", "node node-c:"))], diag
    assert rc in (0, 1)


def test_one_misbehaving_node_does_not_cost_the_others_any_event() -> None:
    deadline = time.monotonic() + FUZZ_SECONDS
    seed = int(os.environ.get("KUBECTL_GADGET_FUZZ_SEED", "1"))
    cases = 0
    while cases < 3 or time.monotonic() < deadline:
        check_case(seed + cases)
        cases += 1


def test_bad_records_are_counted_and_the_summary_names_them() -> None:
    rc, _lines, diag, _markers = run_case(7, bad_lines=50)
    summary = [d for d in diag if d.startswith(f"node {BAD}: ") and "malformed record(s)" in d]
    assert len(summary) == 1, diag
    assert rc in (0, 1)


@pytest.mark.parametrize("mode", ["columns", "jsonpretty", "yaml"])
def test_every_output_mode_survives_a_mutated_stream(mode: str) -> None:
    rc, lines, _diag, markers = run_case(11, mode=mode)
    text = "\n".join(lines)
    for node, wanted in markers.items():
        assert all(m in text for m in wanted), node
    assert rc in (0, 1)

"""The client's array path: three nodes' arrays combined per interval, sorted, capped, shown.

Protocol lines go through the real `Pipeline` (combiner, sort, formatters, array view) as the
session hands them over; only the clock is fixed. Goldens (tests/unit/golden/arrays/) hold the
top-like redraw on a terminal, the piped tables, the JSON arrays with histogram buckets and
the histogram chart; regenerate with UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from kubectl_gadget.array_flags import ArrayFlags, check_array_flags, parse_interval
from kubectl_gadget.errors import UsageError
from kubectl_gadget.operators import FieldSchema
from kubectl_gadget.operators.combine import Combiner
from kubectl_gadget.operators.sort import parse_sort
from kubectl_gadget.output.arrays import CLEAR, ArrayView
from kubectl_gadget.output.histogram import buckets, chart
from kubectl_gadget.pipeline import Operators, Pipeline
from node_runner.gadget.spec import load_spec
from tests import golden
from tests.conftest import TEST_GADGETS_SRC, compile_gadget

GOLDEN = Path(__file__).parent / "golden" / "arrays"
FIELDS: list[FieldSchema] = [
    {"name": "comm", "type": "string", "tags": ["type:gadget_comm"], "annotations": {}},
    {"name": "opens", "type": "u64", "tags": ["type:gadget_counter__u64"],
     "annotations": {"columns.alignment": "right"}},
    {"name": "k8s.node", "type": "string", "tags": [], "annotations": {}},
]
HIST: list[FieldSchema] = [
    {"name": "disk", "type": "string", "tags": [], "annotations": {}},
    {"name": "usecs", "type": "array", "tags": ["type:gadget_histogram_slot__u32"],
     "annotations": {}},
]
NOON = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _line(rec: dict[str, Any]) -> bytes:
    return json.dumps(rec).encode()


def _hello(node: str, protocol: int = 1) -> bytes:
    return _line({"type": "hello", "protocol": protocol, "protocol_minor": 1, "node": node})


def _array(node: str, fetch: int, rows: list[dict[str, Any]], ds: str = "opens") -> bytes:
    return _line({"type": "array", "ds": ds, "node": node, "fetch": fetch, "data": rows})


def _pipeline(out: io.StringIO, *, mode: str = "columns", sort: str = "",
              max_entries: int | None = None, fields: list[FieldSchema] = FIELDS,
              ds: str = "opens", annotations: dict[str, str] | None = None,
              diag: list[str] | None = None) -> Pipeline:
    ops = Operators(mode=mode, sort=parse_sort(sort) if sort else (), max_entries=max_entries,
                    map_fetch_interval=2.0)
    p = Pipeline(ops, out, (diag if diag is not None else []).append)
    p.view = ArrayView(out, tty=out.isatty(), interval=2.0, clock=lambda: NOON)
    p.prepare(ds, fields, "array", annotations)
    return p


def _three_nodes(p: Pipeline) -> None:
    """Two intervals of three nodes; node-c's second array comes only after node-a's third."""
    for node in ("node-a", "node-b", "node-c"):
        _feed(p, node, [_hello(node)])
    _feed(p, "node-a", [_array("node-a", 1, [{"comm": "cat", "opens": 3}])])
    _feed(p, "node-b", [_array("node-b", 1, [{"comm": "nginx", "opens": 40},
                                            {"comm": "cat", "opens": 1}])])
    _feed(p, "node-c", [_array("node-c", 1, [{"comm": "redis", "opens": 7}])])
    _feed(p, "node-a", [_array("node-a", 2, [{"comm": "cat", "opens": 5}])])
    _feed(p, "node-b", [_array("node-b", 2, [])])
    _feed(p, "node-a", [_array("node-a", 3, [{"comm": "ls", "opens": 9}])])  # c is late
    _feed(p, "node-c", [_line({"type": "end", "reason": "signal", "exit_code": 0})])
    p.finish()


def _feed(p: Pipeline, node: str, lines: list[bytes]) -> None:
    p.feed(node, b"\n".join(lines) + b"\n")


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def test_three_nodes_piped_sorted_and_capped() -> None:
    out = io.StringIO()
    _three_nodes(_pipeline(out, sort="-opens,comm", max_entries=3))
    text = out.getvalue()
    tables = text.split("\n\n")
    # interval 1: all three nodes in one table (K8S.NODE first), top 3 by opens
    assert [ln.split()[1] for ln in tables[0].splitlines()[1:]] == ["nginx", "redis", "cat"]
    assert CLEAR not in text
    golden.check_golden(GOLDEN / "piped.txt", text)


def test_three_nodes_redraw_on_a_terminal() -> None:
    out = Tty()
    _three_nodes(_pipeline(out, sort="-opens", max_entries=2))
    text = out.getvalue()
    assert text.count(CLEAR) == 3 and text.startswith(CLEAR)
    assert "22:13:20  opens  every 2s  3 nodes  2 rows" in text
    golden.check_golden(GOLDEN / "redraw.txt", text.replace(CLEAR, "<clear>"))


def test_default_sort_comes_from_the_gadget_annotation() -> None:
    out = io.StringIO()
    p = _pipeline(out, annotations={"cli.default-sort": "-opens"})
    _feed(p, "n", [_hello("n"), _array("n", 1, [{"comm": "a", "opens": 1},
                                                {"comm": "b", "opens": 9}])])
    assert [ln.split()[1] for ln in out.getvalue().splitlines()[1:3]] == ["b", "a"]
    out = io.StringIO()
    p = _pipeline(out, sort="comm", annotations={"cli.default-sort": "-opens"})
    _feed(p, "n", [_hello("n"), _array("n", 1, [{"comm": "b", "opens": 1},
                                                {"comm": "a", "opens": 9}])])
    assert [ln.split()[1] for ln in out.getvalue().splitlines()[1:3]] == ["a", "b"]


def test_a_late_node_does_not_hold_the_table_forever() -> None:
    now = [0.0]
    c = Combiner(2.0, clock=lambda: now[0])
    for node in ("a", "b"):
        c.node_started(node)
    assert c.add("ds", "a", [{"x": 1}]) == []
    now[0] = 0.9
    assert c.due() == []
    now[0] = 1.0
    (table,) = c.due()
    assert (table.nodes, table.rows) == (("a",), [{"x": 1, "k8s.node": "a"}])


def test_json_prints_one_array_per_interval_with_histogram_buckets() -> None:
    out = io.StringIO()
    p = _pipeline(out, mode="json", fields=HIST, ds="lat")
    slots = [0] * 27
    slots[2], slots[5] = 4, 1
    _feed(p, "n", [_hello("n"), _array("n", 1, [{"disk": "sda", "usecs": slots}], ds="lat"),
                  _array("n", 2, [], ds="lat")])
    p.finish()
    first, second = out.getvalue().splitlines()
    assert json.loads(first)[0]["usecs"][2] == {"le": 7, "count": 4}
    assert len(json.loads(first)[0]["usecs"]) == 6 and json.loads(second) == []
    golden.check_golden(GOLDEN / "histogram.json", out.getvalue())


def test_columns_draw_the_histogram_chart() -> None:
    out = io.StringIO()
    p = _pipeline(out, fields=HIST, ds="lat")
    slots = [0] * 27
    slots[0], slots[13], slots[16] = 1, 3, 2
    _feed(p, "n", [_hello("n"), _array("n", 1, [{"disk": "sda", "usecs": slots}], ds="lat")])
    text = out.getvalue()
    assert "[0," not in text  # the slot list is not a column
    assert " 8192 -> 16383  : 3        |****************************************|" in text
    golden.check_golden(GOLDEN / "histogram.txt", text)


def test_the_chart_is_headed_by_the_fields_unit() -> None:
    fields = [HIST[0], {**HIST[1], "name": "latency", "annotations": {"metrics.unit": "usecs"}}]
    out = io.StringIO()
    p = _pipeline(out, fields=fields, ds="lat")
    slots = [0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    _feed(p, "n", [_hello("n"), _array("n", 1, [{"disk": "sda", "latency": slots}], ds="lat")])
    lines = out.getvalue().splitlines()
    head = next(line for line in lines if "distribution" in line)
    assert head.split(" : ")[0].strip() == "latency (usecs)"
    bars = [line for line in lines if line.endswith("|")]
    assert len(bars) == 18 and {line.index(" : ") for line in bars} == {head.index(" : ")}


def test_histogram_shapes() -> None:
    assert buckets([0, 2, 0, 0]) == [{"le": 1, "count": 0}, {"le": 3, "count": 2}]
    assert buckets([0, 0]) == []
    assert chart("ms", [0, 0]) == "ms: (no values)\n"


def test_an_unknown_major_protocol_is_refused_in_one_line() -> None:
    diag: list[str] = []
    out = io.StringIO()
    p = _pipeline(out, diag=diag)
    _feed(p, "n", [_hello("n", protocol=2), _array("n", 1, [{"comm": "a", "opens": 1}])])
    assert p.fatal and len(diag) == 1 and "protocol 2" in diag[0]
    assert out.getvalue() == ""
    assert p.nodes["n"].end is not None and p.nodes["n"].end["exit_code"] == 1
    # Another node still speaks our protocol: its tables are shown and the run goes on; a
    # second hello of a node is a broken record, not a new protocol.
    p.node_expected("m")
    _feed(p, "m", [_hello("m"), _hello("m", protocol=2),
                   _array("m", 1, [{"comm": "b", "opens": 2}])])
    assert not p.fatal and len(diag) == 2 and "second hello" in diag[1]
    assert out.getvalue().splitlines()[1].split()[1:3] == ["b", "2"]


def test_array_flags(tmp_path: Path) -> None:
    assert parse_interval("500ms") == 0.5 and parse_interval("2") == 2.0
    assert parse_interval("1m") == 60.0
    for bad in ("0", "1x", "-1s", ""):
        with pytest.raises(UsageError):
            parse_interval(bad)
    flags = ArrayFlags.pop({"map_fetch_interval": "250ms", "map_fetch_count": 3,
                            "sampling_frequency": 99})
    assert flags.runner_args() == ["--map-fetch-interval", "0.25", "--map-fetch-count", "3",
                                   "--sampling-frequency", "99"]
    tracer = load_spec(str(compile_gadget(TEST_GADGETS_SRC / "variant", tmp_path / "variant")))
    with pytest.raises(UsageError, match=r"--sort, --map-fetch-interval apply only to array "
                       r"datasources .* gadget variant has: variant \(stream\)"):
        check_array_flags(tracer, ["--sort", "--map-fetch-interval"])
    check_array_flags(tracer, [])

"""Tests for the output formatters: golden files per mode, alignment, nesting, diagnostics.

Golden files live in tests/unit/golden/output/. Regenerate them with
``UPDATE_GOLDEN=1 python -m pytest tests/unit/test_output.py`` and review the diff; a missing
golden file fails the test instead of being created silently.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from kubectl_gadget.errors import GadgetError, UsageError
from kubectl_gadget.operators import FieldSchema
from kubectl_gadget.operators.fields import Column, column_spec, parse_fields
from kubectl_gadget.output import (
    ColumnsFormatter,
    Formatter,
    cell_renderer,
    describe_record,
    fit,
    make_formatter,
    nesting_plan,
    parse_output_mode,
)
from tests import golden

GOLDEN_DIR = Path(__file__).parent / "golden" / "output"


def field(name: str, ftype: str, **annotations: str) -> FieldSchema:
    return {"name": name, "type": ftype, "annotations": dict(annotations)}


HIDDEN = {"columns.hidden": "true"}
FIELDS: list[FieldSchema] = [
    field("timestamp_raw", "u64", **HIDDEN),
    field("timestamp", "string", **HIDDEN),
    field("mntns_id", "u64", **HIDDEN, **{"json.skip": "true"}),
    field("k8s.node", "string", **{"columns.width": "10"}),
    field("k8s.namespace", "string", **{"columns.width": "9"}),
    field("k8s.podName", "string", **{"columns.width": "14", "columns.ellipsis": "middle"}),
    field("pid", "u32"),
    field("comm", "string", **{"columns.maxwidth": "10"}),
    field("flags", "u32", **{"columns.hex": "true", "columns.width": "8"}),
    field("fd", "u32", **{"columns.width": "3"}),
    field("error_raw", "s32", **HIDDEN),
    field("error", "enum", **{"columns.width": "7"}),
    field("success", "bool"),
    field("fname", "string", **{"columns.width": "24", "columns.ellipsis": "start"}),
]

_K8S = {"k8s.node": "worker-1", "k8s.namespace": "shop"}
EVENTS: list[dict[str, Any]] = [
    {
        "timestamp_raw": 1_000_000_000,
        "timestamp": "2025-11-22T06:33:20.000000001Z",
        "mntns_id": 4026532881,
        **_K8S,
        "k8s.podName": "cart-7d9f8b6c5-x2x4z",
        "pid": 4242,
        "comm": "cat",
        "flags": 0x80000,
        "fd": 3,
        "error_raw": 0,
        "error": "",
        "success": True,
        "fname": "/var/lib/kubelet/pods/0123/volumes/config.yaml",
    },
    {
        "timestamp_raw": 2_000_000_000,
        "timestamp": "2025-11-22T06:33:21.000000002Z",
        "mntns_id": 4026531840,
        "k8s.node": "",
        "k8s.namespace": "",
        "k8s.podName": "",
        "pid": 1,
        "comm": "systemd",
        "flags": 0,
        "fd": 4294967294,
        "error_raw": -2,
        "error": "ENOENT",
        "success": False,
        "fname": "/etc/missing",
    },
    {  # keys missing, a control character and a newline trying to forge a line
        **_K8S,
        "pid": 77,
        "comm": "\x1b[31mevil",
        "fname": "/tmp/a\nworker-1  shop",
    },
    {**_K8S, "pid": 4294967295, "comm": "ñandú-the-long-comm", "fname": "/ñ"},
]
NOTICES: list[dict[str, Any]] = [
    {"type": "lost", "ds": "open", "count": 123},
    {"type": "warning", "message": "ring buffer nearly full"},
]


def check_golden(name: str, actual: str) -> None:
    golden.check_golden(GOLDEN_DIR / name, actual)


def run(mode: str, fields_spec: str | None = None) -> tuple[str, list[str]]:
    out = io.StringIO()
    diag: list[str] = []
    formatter = make_formatter(mode, FIELDS, parse_fields(fields_spec), out=out, diag=diag.append)
    for i, event in enumerate(EVENTS):
        formatter.event(event)
        if i < len(NOTICES):
            formatter.notice(NOTICES[i], "worker-1")
    formatter.notice({"type": "end", "reason": "timeout"}, "worker-1")
    return out.getvalue(), diag


# --- goldens -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "golden"),
    [
        ("columns", "columns.txt"),
        ("json", "json.txt"),
        ("jsonpretty", "jsonpretty.txt"),
        ("yaml", "yaml.txt"),
    ],
)
def test_golden_per_mode(mode: str, golden: str) -> None:
    text, diag = run(mode)
    check_golden(golden, text)
    assert diag == [
        "node worker-1: lost 123 events (datasource open)",
        "node worker-1: warning: ring buffer nearly full",
    ]


def test_golden_columns_arrays() -> None:
    out = io.StringIO()
    formatter = make_formatter(
        "columns", FIELDS, parse_fields("pid,comm,fname"), out=out, diag=print
    )
    formatter.array(EVENTS[:2])
    formatter.array(EVENTS[2:])
    check_golden("columns_array.txt", out.getvalue())


def test_golden_json_arrays() -> None:
    out = io.StringIO()
    formatter = make_formatter("json", FIELDS, parse_fields("pid,k8s.node"), out=out, diag=print)
    formatter.array(EVENTS[:2])
    formatter.array([])
    check_golden("json_array.txt", out.getvalue())


def test_check_golden_fails_when_the_golden_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UPDATE_GOLDEN", raising=False)
    with pytest.raises(pytest.fail.Exception, match="is missing"):
        check_golden("no-such-golden.txt", "x")
    assert not (GOLDEN_DIR / "no-such-golden.txt").exists()


# --- columns -----------------------------------------------------------------------------


def test_columns_output_is_one_line_per_event_with_fixed_positions() -> None:
    text, _ = run("columns")
    lines = text.splitlines()
    assert len(lines) == 1 + len(EVENTS)
    # String columns are cut to their width, so the separators before the first number
    # column (the k8s.* strings, then PID) are at the same place on every line.
    widths = [10, 9, 14]
    separators = [sum(widths[: i + 1]) + 2 * i for i in range(len(widths))]
    for line in lines:
        assert [line[at : at + 2] for at in separators] == ["  "] * len(widths), line
    assert "\x1b" not in text and "\\x1b[31m" in text


@pytest.mark.parametrize(
    ("text", "width", "ellipsis", "expected"),
    [
        ("abcdefgh", 8, "end", "abcdefgh"),
        ("abcdefgh", 5, "end", "abcd…"),
        ("abcdefgh", 5, "start", "…efgh"),
        ("abcdefgh", 5, "middle", "ab…gh"),
        ("abcdefgh", 6, "middle", "abc…gh"),
        ("abcdefgh", 5, "none", "abcde"),
        ("abcdefgh", 1, "end", "…"),
        ("abcdefgh", 1, "start", "…"),
        ("abcdefgh", 1, "middle", "…"),
    ],
)
def test_fit(text: str, width: int, ellipsis: str, expected: str) -> None:
    assert fit(text, width, ellipsis) == expected


@given(
    text=st.text(max_size=40),
    width=st.integers(1, 30),
    ellipsis=st.sampled_from(["end", "start", "middle", "none"]),
)
def test_fit_never_exceeds_the_width_and_keeps_short_text(
    text: str, width: int, ellipsis: str
) -> None:
    result = fit(text, width, ellipsis)
    assert len(result) == min(len(text), width)
    if len(text) <= width:
        assert result == text


def spec(ftype: str, **annotations: str) -> Column:
    return column_spec({"name": "x", "type": ftype, "annotations": dict(annotations)})


@given(value=st.one_of(st.none(), st.text(max_size=40)))
def test_string_cells_are_exactly_the_column_width(value: str | None) -> None:
    for column in (spec("string"), spec("string", **{"columns.alignment": "right"})):
        assert len(cell_renderer(column)(value)) == column.width


def test_cell_rendering_by_type() -> None:
    assert cell_renderer(spec("u32"))(42) == "     42"
    assert cell_renderer(spec("u32"))(None) == "       "
    assert cell_renderer(spec("bool"))(True) == "true "
    assert cell_renderer(spec("u32", **{"columns.hex": "true"}))(255) == "   0xff"
    assert cell_renderer(spec("s32", **{"columns.hex": "true"}))(-255) == "  -0xff"
    assert cell_renderer(spec("string"))("a\tb") == "a\\tb".ljust(16)


def test_numbers_overflow_instead_of_being_cut() -> None:
    assert cell_renderer(spec("u32"))(1234567890123) == "1234567890123"


def test_header_comes_once_before_the_first_event_or_when_asked() -> None:
    out = io.StringIO()
    formatter = make_formatter("columns", FIELDS, parse_fields("pid,comm"), out=out, diag=print)
    assert out.getvalue() == ""
    assert isinstance(formatter, ColumnsFormatter)
    formatter.header()
    formatter.event({"pid": 1, "comm": "a"})
    formatter.event({"pid": 2, "comm": "b"})
    assert out.getvalue() == "    PID  COMM\n      1  a\n      2  b\n"


# --- json / yaml -------------------------------------------------------------------------


def test_json_lines_nest_dotted_keys_and_leave_out_missing_keys() -> None:
    text, _ = run("json")
    objects = [json.loads(line) for line in text.splitlines()]
    assert len(objects) == len(EVENTS)
    assert objects[0]["k8s"] == {
        "node": "worker-1",
        "namespace": "shop",
        "podName": "cart-7d9f8b6c5-x2x4z",
    }
    assert "mntns_id" not in objects[0]  # json.skip
    assert objects[0]["timestamp_raw"] == 1_000_000_000  # hidden column, still in JSON
    assert "fd" not in objects[2] and objects[2]["fname"] == "/tmp/a\nworker-1  shop"


def test_json_respects_field_selection() -> None:
    text, _ = run("json", "comm,k8s.node")
    assert json.loads(text.splitlines()[0]) == {"comm": "cat", "k8s": {"node": "worker-1"}}
    text, _ = run("json", "-timestamp,-timestamp_raw,-k8s.podName,+mntns_id")
    first = json.loads(text.splitlines()[0])
    assert first["mntns_id"] == 4026532881 and "timestamp" not in first
    assert set(first["k8s"]) == {"node", "namespace"}


def test_all_structured_modes_carry_the_same_objects() -> None:
    expected = [json.loads(line) for line in run("json")[0].splitlines()]
    pretty = run("jsonpretty")[0]
    decoder = json.JSONDecoder()
    pretty_objects, pos = [], 0
    while pos < len(pretty):
        obj, pos = decoder.raw_decode(pretty, pos)
        pretty_objects.append(obj)
        pos += 1  # the newline after each object
    assert pretty_objects == expected
    assert list(yaml.safe_load_all(run("yaml")[0])) == expected


def test_nesting_plan_rejects_a_field_that_is_also_a_parent() -> None:
    assert nesting_plan(["a", "b.c.d"]) == [("a", (), "a"), ("b.c.d", ("b", "c"), "d")]
    with pytest.raises(GadgetError, match="field 'proc' is also the parent"):
        nesting_plan(["proc.comm", "proc"])


# --- diagnostics and modes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "node", "expected"),
    [
        ({"type": "lost", "ds": "o", "count": 123}, "w", "node w: lost 123 events (datasource o)"),
        ({"type": "lost", "count": 1}, None, "lost 1 event"),
        ({"type": "lost", "count": 5, "node": "n2"}, None, "node n2: lost 5 events"),
        ({"type": "warning", "message": "slow"}, "w", "node w: warning: slow"),
        ({"type": "error", "code": "verifier", "message": "loading program 'x': bad"}, "w",
         "node w: error [verifier]: loading program 'x': bad"),
        ({"type": "event", "data": {}}, "w", None),
        ({"type": "end"}, "w", None),
        ({"type": "future-type"}, "w", None),
    ],
)  # fmt: skip
def test_describe_record(record: dict[str, Any], node: str | None, expected: str | None) -> None:
    assert describe_record(record, node) == expected


@pytest.mark.parametrize("mode", ["columns", "json", "jsonpretty", "yaml"])
def test_notices_never_reach_stdout(mode: str) -> None:
    out = io.StringIO()
    diag: list[str] = []
    formatter: Formatter = make_formatter(mode, FIELDS, out=out, diag=diag.append)
    formatter.notice({"type": "error", "code": "permission", "message": "not root"}, "w")
    formatter.notice({"type": "lost", "count": 2}, "w")
    formatter.flush()
    assert out.getvalue() == ""
    assert diag == ["node w: error [permission]: not root", "node w: lost 2 events"]


def test_output_mode_is_validated() -> None:
    assert parse_output_mode("jsonpretty") == "jsonpretty"
    with pytest.raises(
        UsageError, match="invalid output mode 'table': choose one of columns, json"
    ):
        make_formatter("table", FIELDS, out=io.StringIO(), diag=print)


def test_unknown_selected_field_is_a_usage_error_in_every_mode() -> None:
    for mode in ("columns", "json"):
        with pytest.raises(UsageError, match="did you mean: comm"):
            make_formatter(mode, FIELDS, parse_fields("comn"), out=io.StringIO(), diag=print)

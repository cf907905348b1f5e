"""Tests for --sort and --max-entries on array batches."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubectl_gadget.errors import UsageError
from kubectl_gadget.operators import FieldSchema
from kubectl_gadget.operators.sort import SortKey, check_max_entries, compile_sort, parse_sort

FIELDS: list[FieldSchema] = [
    {"name": "pid", "type": "u32", "annotations": {}},
    {"name": "comm", "type": "string", "annotations": {}},
    {"name": "cpu", "type": "f64", "annotations": {}},
    {"name": "args", "type": "array", "annotations": {}},
]


def sort(spec: str, rows: list[dict[str, Any]], max_entries: int | None = None) -> list[Any]:
    return compile_sort(parse_sort(spec), FIELDS, max_entries)(rows)


def test_parse_sort_keys() -> None:
    assert parse_sort("pid, -comm,+cpu") == [
        SortKey("pid"),
        SortKey("comm", descending=True),
        SortKey("cpu"),
    ]


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [("", "empty value"), ("pid,,comm", "empty item"), ("-", "names no field")],
)
def test_parse_errors(spec: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        parse_sort(spec)


def test_numbers_sort_numerically() -> None:
    rows = [{"pid": 10}, {"pid": 9}, {"pid": 100}]
    assert sort("pid", rows) == [{"pid": 9}, {"pid": 10}, {"pid": 100}]
    assert sort("-pid", rows) == [{"pid": 100}, {"pid": 10}, {"pid": 9}]


def test_multiple_keys_with_mixed_directions() -> None:
    rows = [
        {"comm": "b", "pid": 1},
        {"comm": "a", "pid": 1},
        {"comm": "a", "pid": 2},
        {"comm": "b", "pid": 3},
    ]
    assert sort("comm,-pid", rows) == [
        {"comm": "a", "pid": 2},
        {"comm": "a", "pid": 1},
        {"comm": "b", "pid": 3},
        {"comm": "b", "pid": 1},
    ]


def test_sort_is_stable_in_both_directions() -> None:
    rows = [{"pid": 1, "n": i} for i in range(5)]
    assert [r["n"] for r in sort("pid", rows)] == list(range(5))
    assert [r["n"] for r in sort("-pid", rows)] == list(range(5))


@pytest.mark.parametrize("spec", ["pid", "-pid"])
def test_missing_or_mistyped_values_sort_last_in_both_directions(spec: str) -> None:
    rows: list[dict[str, Any]] = [{"pid": None}, {"pid": 2}, {}, {"pid": "x"}, {"pid": 1}]
    result = sort(spec, rows)
    present = [{"pid": 1}, {"pid": 2}]
    assert result[:2] == (present if spec == "pid" else present[::-1])
    assert result[2:] == [{"pid": None}, {}, {"pid": "x"}]


def test_max_entries_limits_after_sorting() -> None:
    rows = [{"cpu": 0.5}, {"cpu": 2.5}, {"cpu": 1.5}]
    assert sort("-cpu", rows, max_entries=2) == [{"cpu": 2.5}, {"cpu": 1.5}]
    assert sort("-cpu", rows, max_entries=0) == [{"cpu": 2.5}, {"cpu": 1.5}, {"cpu": 0.5}]
    assert compile_sort([], FIELDS, 1)(rows) == [{"cpu": 0.5}]


def test_input_batch_is_not_mutated() -> None:
    rows = [{"pid": 2}, {"pid": 1}]
    sort("pid", rows, max_entries=1)
    assert rows == [{"pid": 2}, {"pid": 1}]


def test_check_max_entries() -> None:
    assert check_max_entries(None) is None
    assert check_max_entries(0) is None
    assert check_max_entries(5) == 5
    with pytest.raises(UsageError, match="invalid --max-entries -1"):
        check_max_entries(-1)


def test_unknown_field_suggests_close_matches() -> None:
    with pytest.raises(
        UsageError, match=r"invalid --sort: unknown field 'cmm' \(did you mean: comm\?\)"
    ):
        compile_sort(parse_sort("-cmm"), FIELDS)


def test_opaque_field_cannot_be_sorted() -> None:
    with pytest.raises(UsageError, match="args is array, which cannot be sorted"):
        compile_sort(parse_sort("args"), FIELDS)


_ROW = st.fixed_dictionaries(
    {"pid": st.integers(0, 5), "comm": st.sampled_from(["a", "b", "c"]), "i": st.integers()}
)


@given(rows=st.lists(_ROW, max_size=30), limit=st.integers(0, 10))
def test_agrees_with_a_single_tuple_key_sort(rows: list[dict[str, Any]], limit: int) -> None:
    expected = sorted(rows, key=lambda r: (-r["pid"], r["comm"]))
    if limit:
        expected = expected[:limit]
    assert sort("-pid,comm", rows, max_entries=limit) == expected

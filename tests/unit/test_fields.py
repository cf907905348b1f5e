"""Tests for --fields selection and the column specs read from field annotations."""

from __future__ import annotations

import pytest

from kubectl_gadget.errors import GadgetError, UsageError
from kubectl_gadget.operators import FieldSchema
from kubectl_gadget.operators.fields import (
    Column,
    FieldSelection,
    column_spec,
    parse_fields,
    resolve_columns,
    select_fields,
)

FIELDS: list[FieldSchema] = [
    {"name": "timestamp_raw", "type": "u64", "annotations": {"columns.hidden": "true"}},
    {"name": "timestamp", "type": "string", "annotations": {"columns.hidden": "true"}},
    {"name": "pid", "type": "u32", "annotations": {}},
    {"name": "comm", "type": "string", "annotations": {}},
    {
        "name": "mntns_id",
        "type": "u64",
        "annotations": {"json.skip": "true", "columns.hidden": "true"},
    },
    {"name": "k8s.node", "type": "string", "annotations": {}},
    {"name": "secret", "type": "string", "annotations": {"json.skip": "true"}},
]


def names(fields: list[FieldSchema]) -> list[str]:
    return [f["name"] for f in fields]


def field(ftype: str, name: str = "x", **annotations: str) -> FieldSchema:
    return {"name": name, "type": ftype, "annotations": dict(annotations)}


# --- parsing -----------------------------------------------------------------------------


def test_parse_none_means_defaults() -> None:
    assert parse_fields(None) == FieldSelection()
    assert parse_fields(None).is_default


def test_parse_explicit_list() -> None:
    assert parse_fields(" comm , pid ") == FieldSelection(explicit=("comm", "pid"))
    assert not parse_fields("pid").is_default


def test_parse_modifiers() -> None:
    assert parse_fields("+timestamp,-comm,+ k8s.node") == FieldSelection(
        add=("timestamp", "k8s.node"), remove=("comm",)
    )


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("", "empty value"),
        ("pid,,comm", "empty item"),
        ("pid,+comm", "not both"),
        ("-pid,comm", "not both"),
        ("+,-pid", "names no field"),
    ],
)
def test_parse_errors(spec: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment) as info:
        parse_fields(spec)
    assert str(info.value).startswith("invalid --fields")


# --- selection ---------------------------------------------------------------------------


def test_default_columns_leave_out_hidden_fields() -> None:
    assert names(select_fields(FieldSelection(), FIELDS)) == ["pid", "comm", "k8s.node", "secret"]


def test_default_json_fields_keep_hidden_but_not_json_skip() -> None:
    assert names(select_fields(FieldSelection(), FIELDS, "json")) == [
        "timestamp_raw",
        "timestamp",
        "pid",
        "comm",
        "k8s.node",
    ]


def test_explicit_list_is_exact_ordered_and_may_name_hidden_fields() -> None:
    selection = parse_fields("k8s.node,timestamp,pid,pid")
    expected = ["k8s.node", "timestamp", "pid"]
    assert names(select_fields(selection, FIELDS, "columns")) == expected
    assert names(select_fields(selection, FIELDS, "json")) == expected


def test_modifiers_add_at_the_end_and_remove() -> None:
    selection = parse_fields("+timestamp,-comm,+pid")
    assert names(select_fields(selection, FIELDS)) == ["pid", "k8s.node", "secret", "timestamp"]
    assert names(select_fields(parse_fields("+secret"), FIELDS, "json"))[-1] == "secret"


@pytest.mark.parametrize("spec", ["pdi", "+pdi", "-pdi", "comm,pdi"])
def test_unknown_field_suggests_close_matches(spec: str) -> None:
    with pytest.raises(UsageError, match=r"unknown field 'pdi' \(did you mean: pid\?\)"):
        select_fields(parse_fields(spec), FIELDS)


def test_unknown_field_without_close_match_lists_fields() -> None:
    with pytest.raises(UsageError, match="available: timestamp_raw, timestamp, pid"):
        select_fields(parse_fields("zzzzzz"), FIELDS)


# --- column specs ------------------------------------------------------------------------


def test_header_is_upper_cased_with_dots_kept() -> None:
    assert column_spec(field("string", "k8s.node")).header == "K8S.NODE"


@pytest.mark.parametrize(
    ("ftype", "width"),
    [
        ("bool", 5),
        ("u8", 4),
        ("s16", 6),
        ("u32", 7),
        ("s64", 12),
        ("f64", 10),
        ("enum", 10),
        ("string", 16),
        ("bytes", 16),
    ],
)
def test_default_width_by_type(ftype: str, width: int) -> None:
    assert column_spec(field(ftype)).width == width


def test_default_width_grows_to_fit_the_header_but_explicit_width_wins() -> None:
    assert column_spec(field("s32", "error_raw")).width == len("ERROR_RAW")
    assert column_spec(field("s32", "error_raw", **{"columns.width": "4"})).width == 4


@pytest.mark.parametrize(
    ("annotations", "width"),
    [
        ({"columns.width": "32"}, 32),
        ({"columns.width": "32", "columns.maxwidth": "20"}, 20),
        ({"columns.width": "3", "columns.minwidth": "8"}, 8),
        ({"columns.minwidth": "30"}, 30),
        ({"columns.maxwidth": "6"}, 6),
        ({"columns.width": "0"}, 1),
    ],
)
def test_width_annotations_and_clamping(annotations: dict[str, str], width: int) -> None:
    assert column_spec(field("string", **annotations)).width == width


def test_alignment_defaults_numbers_right_others_left_and_annotation_overrides() -> None:
    assert column_spec(field("u32")).alignment == "right"
    assert column_spec(field("f32")).alignment == "right"
    assert column_spec(field("string")).alignment == "left"
    assert column_spec(field("bool")).alignment == "left"
    assert column_spec(field("u32", **{"columns.alignment": "LEFT"})).alignment == "left"
    assert column_spec(field("string", **{"columns.alignment": "right"})).alignment == "right"


def test_ellipsis_and_hex_annotations() -> None:
    assert column_spec(field("string")).ellipsis == "end"
    for mode in ("start", "middle", "none", "end"):
        assert column_spec(field("string", **{"columns.ellipsis": mode})).ellipsis == mode
    assert column_spec(field("u64", **{"columns.hex": "true"})).hex
    assert not column_spec(field("u64")).hex
    assert not column_spec(field("string", **{"columns.hex": "true"})).hex


def test_field_without_annotations_key() -> None:
    assert column_spec({"name": "pid", "type": "u32"}) == Column(
        name="pid", header="PID", type="u32", width=7, alignment="right", ellipsis="end", hex=False
    )


@pytest.mark.parametrize(
    ("annotations", "fragment"),
    [
        ({"columns.width": "wide"}, "columns.width='wide' is not a non-negative integer"),
        ({"columns.maxwidth": "-3"}, "columns.maxwidth='-3'"),
        ({"columns.minwidth": "9", "columns.maxwidth": "4"}, "larger than columns.maxwidth=4"),
        ({"columns.alignment": "center"}, "columns.alignment='center' is not one of left, right"),
        ({"columns.ellipsis": "both"}, "columns.ellipsis='both'"),
    ],
)
def test_malformed_annotations_are_gadget_errors_not_usage_errors(
    annotations: dict[str, str], fragment: str
) -> None:
    with pytest.raises(GadgetError) as info:
        column_spec(field("string", "fname", **annotations))
    assert not isinstance(info.value, UsageError)
    assert "field fname" in str(info.value) and fragment in str(info.value)


def test_resolve_columns_combines_selection_and_specs() -> None:
    columns = resolve_columns(parse_fields("comm,timestamp_raw"), FIELDS)
    assert [(c.header, c.width, c.alignment) for c in columns] == [
        ("COMM", 16, "left"),
        ("TIMESTAMP_RAW", 13, "right"),
    ]

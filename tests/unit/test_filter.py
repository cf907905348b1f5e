"""Tests for the --filter operator: syntax, typed comparison, and one clear error per bad input."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubectl_gadget.errors import GadgetError, UsageError
from kubectl_gadget.operators import FieldSchema
from kubectl_gadget.operators.filter import Condition, Op, compile_filters, parse_filters

FIELDS: list[FieldSchema] = [
    {"name": "pid", "type": "u32", "annotations": {}},
    {"name": "ppid", "type": "u32", "annotations": {}},
    {"name": "delta", "type": "s64", "annotations": {}},
    {"name": "ratio", "type": "f64", "annotations": {}},
    {"name": "comm", "type": "string", "annotations": {}},
    {"name": "error", "type": "enum", "annotations": {}},
    {"name": "success", "type": "bool", "annotations": {}},
    {"name": "args", "type": "array", "annotations": {}},
    {"name": "k8s.namespace", "type": "string", "annotations": {}},
]


def build(expr: str) -> Callable[[dict[str, Any]], bool]:
    return compile_filters(parse_filters(expr), FIELDS)


# --- syntax ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "field", "op", "value"),
    [
        ("pid==42", "pid", Op.EQ, "42"),
        ("pid!=42", "pid", Op.NE, "42"),
        ("pid<42", "pid", Op.LT, "42"),
        ("pid<=42", "pid", Op.LE, "42"),
        ("pid>42", "pid", Op.GT, "42"),
        ("pid>=42", "pid", Op.GE, "42"),
        ("comm~^ca", "comm", Op.MATCH, "^ca"),
        ("comm!~^ca", "comm", Op.NOT_MATCH, "^ca"),
        ("  pid  >=  42  ", "pid", Op.GE, "42"),
        ("k8s.namespace!=", "k8s.namespace", Op.NE, ""),
        ("comm==a=b", "comm", Op.EQ, "a=b"),
        ("comm===", "comm", Op.EQ, "="),
    ],
)
def test_parse_single_condition(expr: str, field: str, op: Op, value: str) -> None:
    assert parse_filters(expr) == [Condition(field=field, op=op, value=value, text=expr.strip())]


def test_parse_splits_on_commas_and_keeps_order() -> None:
    conditions = parse_filters("comm==cat,pid>=1000,error!=")
    assert [(c.field, c.op, c.value) for c in conditions] == [
        ("comm", Op.EQ, "cat"),
        ("pid", Op.GE, "1000"),
        ("error", Op.NE, ""),
    ]


def test_escaped_comma_is_part_of_the_value_and_other_backslashes_stay() -> None:
    (condition,) = parse_filters(r"comm~^a{1\,3}\d$")
    assert condition.value == r"^a{1,3}\d$"
    predicate = compile_filters([condition], FIELDS)
    assert predicate({"comm": "aa7"})
    assert not predicate({"comm": "aaaa7"})


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("", "empty expression"),
        ("   ", "empty expression"),
        ("pid==1,,comm==a", "empty condition"),
        ("pid==1,", "empty condition"),
        ("pid", "expected FIELD OP VALUE"),
        ("pid 42", "expected FIELD OP VALUE"),
        ("pid=42", "use '=='"),
        ("==42", "missing field name"),
        ("p-id==42", "is not a field name"),
        ("comm~(unclosed", "bad regular expression"),
        ("comm!~[z-a]", "bad regular expression"),
    ],
)
def test_syntax_errors_are_usage_errors_naming_the_expression(expr: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_filters(expr)
    message = str(info.value)
    assert fragment in message
    assert message.startswith("invalid filter ")
    assert "\n" not in message
    assert info.value.exit_code == 2


# --- typed comparison --------------------------------------------------------------------


def test_integers_compare_numerically_not_as_strings() -> None:
    predicate = build("pid<10")
    assert predicate({"pid": 9})
    assert not predicate({"pid": 10})
    assert not predicate({"pid": 100})
    assert build("pid>9")({"pid": 10})  # as strings, "10" > "9" would be False


def test_integer_values_accept_hex_and_negative() -> None:
    assert build("pid==0x2a")({"pid": 42})
    assert build("delta<-5")({"delta": -6})
    assert not build("delta<-5")({"delta": -5})


def test_floats_compare_numerically() -> None:
    assert build("ratio>=0.5")({"ratio": 0.75})
    assert not build("ratio>=0.5")({"ratio": 0.25})
    assert build("ratio>1")({"ratio": 2})


def test_bool_accepts_true_false_in_any_case() -> None:
    assert build("success==TRUE")({"success": True})
    assert build("success!=true")({"success": False})
    assert not build("success==true")({"success": False})


def test_bool_field_does_not_match_an_integer_and_int_field_not_a_bool() -> None:
    assert not build("success==true")({"success": 1})
    assert not build("pid==1")({"pid": True})


def test_strings_and_enums_compare_as_strings() -> None:
    assert build("comm==cat")({"comm": "cat"})
    assert not build("comm==cat")({"comm": "cats"})
    assert build("comm<d")({"comm": "cat"})
    assert build("error==ENOENT")({"error": "ENOENT"})
    assert build("pid==42")({"pid": 42}) and not build("comm==42")({"comm": 42})


def test_empty_value_selects_non_empty_strings() -> None:
    predicate = build("k8s.namespace!=")
    assert predicate({"k8s.namespace": "shop"})
    assert not predicate({"k8s.namespace": ""})


def test_regex_searches_anywhere_unless_anchored() -> None:
    assert build("comm~at")({"comm": "cat"})
    assert not build("comm~^at")({"comm": "cat"})
    assert build("comm!~^at")({"comm": "cat"})
    assert not build("comm!~at")({"comm": "cat"})


def test_missing_key_or_wrong_type_never_matches() -> None:
    for expr in ("pid==1", "pid!=1", "comm~x", "comm!~x", "comm!=x", "success!=true"):
        predicate = build(expr)
        assert not predicate({}), expr
        assert not predicate({"pid": None, "comm": None, "success": None}), expr
    assert not build("pid<5")({"pid": "3"})


def test_conditions_are_anded() -> None:
    for expr in ("pid>1,comm==cat", "pid>1,comm==cat,ppid==7"):
        predicate = build(expr)
        assert predicate({"pid": 2, "comm": "cat", "ppid": 7})
        assert not predicate({"pid": 2, "comm": "dog", "ppid": 7})
        assert not predicate({"pid": 1, "comm": "cat", "ppid": 7})
    assert not build("pid>1,comm==cat,ppid==7")({"pid": 2, "comm": "cat", "ppid": 8})


def test_no_conditions_match_everything() -> None:
    assert compile_filters([], FIELDS)({})


# --- schema errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "fragments"),
    [
        ("pdi==1", ["'pdi==1'", "unknown field 'pdi'", "did you mean", "pid"]),
        ("zzz==1", ["unknown field 'zzz'", "available: pid, ppid"]),
        ("pid==abc", ["'pid==abc'", "'abc' is not an integer", "pid is u32"]),
        ("pid==", ["'' is not an integer"]),
        ("pid==1.5", ["'1.5' is not an integer"]),
        ("ratio<fast", ["'fast' is not a number", "ratio is f64"]),
        ("success==yes", ["'yes' is not true or false"]),
        ("success<true", ["only == and != apply"]),
        ("pid~^4", ["'~' needs a string field", "pid is u32"]),
        ("success!~t", ["'!~' needs a string field"]),
        ("args==x", ["args is array", "do not support"]),
    ],
)
def test_schema_errors_are_usage_errors_with_helpful_messages(
    expr: str, fragments: list[str]
) -> None:
    conditions = parse_filters(expr)
    with pytest.raises(UsageError) as info:
        compile_filters(conditions, FIELDS)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    assert "\n" not in message


def test_usage_error_is_a_gadget_error_with_exit_code_2() -> None:
    assert issubclass(UsageError, GadgetError)
    assert UsageError.exit_code == 2 and GadgetError.exit_code == 1


# --- properties --------------------------------------------------------------------------

_COMPARATORS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_INTS = st.integers(min_value=-(2**63), max_value=2**64 - 1)


@given(value=_INTS, bound=_INTS, op=st.sampled_from(sorted(_COMPARATORS)))
def test_integer_filter_agrees_with_python(value: int, bound: int, op: str) -> None:
    predicate = build(f"delta{op}{bound}")
    assert predicate({"delta": value}) == _COMPARATORS[op](value, bound)


@given(value=_INTS, bound=st.integers(min_value=0, max_value=2**64 - 1))
def test_hex_spelling_equals_decimal_spelling(value: int, bound: int) -> None:
    assert build(f"pid<={hex(bound)}")({"pid": value}) == (value <= bound)


_SAFE_TEXT = st.text(
    alphabet=st.characters(blacklist_characters=",\\", blacklist_categories=("Cs", "Z", "Cc")),
    max_size=12,
)


# A bound starting with "=" would turn "<" into "<=": that is the syntax, not a bug.
@given(
    value=_SAFE_TEXT,
    bound=_SAFE_TEXT.filter(lambda s: not s.startswith("=")),
    op=st.sampled_from(sorted(_COMPARATORS)),
)
def test_string_filter_agrees_with_python(value: str, bound: str, op: str) -> None:
    predicate = build(f"comm{op}{bound}")
    assert predicate({"comm": value}) == _COMPARATORS[op](value, bound)


@given(value=_SAFE_TEXT, word=st.from_regex(r"[a-z]{1,4}", fullmatch=True))
def test_regex_filter_agrees_with_re_search(value: str, word: str) -> None:
    assert build(f"comm~{word}")({"comm": value}) == (re.search(word, value) is not None)
    assert build(f"comm!~{word}")({"comm": value}) == (re.search(word, value) is None)

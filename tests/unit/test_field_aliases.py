"""Old field names (a field's ``cli.alias`` annotation) work in --fields, --filter and --sort."""

from __future__ import annotations

import pytest

from kubectl_gadget.errors import UsageError
from kubectl_gadget.operators import FieldSchema, index_fields
from kubectl_gadget.operators.fields import parse_fields, select_fields
from kubectl_gadget.operators.filter import compile_filters, parse_filters
from kubectl_gadget.operators.sort import compile_sort, parse_sort

FIELDS: list[FieldSchema] = [
    {"name": "proc.pid", "type": "u32", "annotations": {"cli.alias": "pid"}},
    {"name": "proc.comm", "type": "string", "annotations": {"cli.alias": "comm, command"}},
    {"name": "proc.parent.pid", "type": "u32",
     "annotations": {"cli.alias": "ppid", "columns.hidden": "true"}},
    # A real field keeps its name even when another field claims it as an alias.
    {"name": "fd", "type": "s32", "annotations": {}},
    {"name": "fd_raw", "type": "s32", "annotations": {"cli.alias": "fd", "columns.hidden": "true"}},
]


def _names(fields: list[FieldSchema]) -> list[str]:
    return [f["name"] for f in fields]


def test_index_resolves_aliases_and_real_names_win() -> None:
    by_name = index_fields(FIELDS)
    assert by_name["pid"]["name"] == "proc.pid"
    assert by_name["command"]["name"] == by_name["comm"]["name"] == "proc.comm"
    assert by_name["fd"]["name"] == "fd"


def test_fields_accept_aliases_and_print_the_real_names() -> None:
    assert _names(select_fields(parse_fields("pid,comm,proc.pid"), FIELDS)) == [
        "proc.pid", "proc.comm"]
    assert _names(select_fields(parse_fields("-comm,+ppid"), FIELDS)) == [
        "proc.pid", "fd", "proc.parent.pid"]


def test_filter_by_alias_reads_the_renamed_field() -> None:
    keep = compile_filters(parse_filters("pid==42,command~^cat"), FIELDS)
    assert keep({"proc.pid": 42, "proc.comm": "cat"})
    assert not keep({"proc.pid": 43, "proc.comm": "cat"})
    assert not keep({"pid": 42, "proc.comm": "cat"})


def test_sort_by_alias() -> None:
    rows = [{"proc.parent.pid": 3}, {"proc.parent.pid": 1}, {"proc.parent.pid": 2}]
    ordered = compile_sort(parse_sort("-ppid"), FIELDS)(rows)
    assert [r["proc.parent.pid"] for r in ordered] == [3, 2, 1]


def test_unknown_name_is_still_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown field 'pidd'.*pid"):
        select_fields(parse_fields("pidd"), FIELDS)

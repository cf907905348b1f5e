"""The client's protocol boundary: every record shape checked, bad lines isolated, never raised."""

from __future__ import annotations

import pytest

from kubectl_gadget import records as R

GOOD = [
    b'{"type":"hello","protocol":1,"runner":"0.1.0","node":"n1",'
    b'"gadget":{"name":"g","ref":"g","digest":""},"boot_to_wall_ns":5}',
    b'{"type":"schema","ds":"open","kind":"stream","annotations":{},'
    b'"fields":[{"name":"pid","type":"u32","tags":[],"annotations":{}}]}',
    b'{"type":"event","ds":"open","data":{"pid":42}}',
    b'{"type":"lost","ds":"open","count":3}',
    b'{"type":"end","reason":"timeout","events":1,"lost":3,"dropped":0,"exit_code":0}',
]


def test_a_good_batch_decodes_in_order() -> None:
    got = R.decode(b"\n".join(GOOD))
    assert [type(r) for r in got] == [R.Hello, R.Schema, R.Event, R.Lost, R.End]
    event = got[2]
    assert isinstance(event, R.Event) and event.data == {"pid": 42}
    schema = got[1]
    assert isinstance(schema, R.Schema) and schema.fields[0].name == "pid"


BAD_LINES = {
    "lost count a string": b'{"type":"lost","ds":"open","count":"7"}',
    "lost count null": b'{"type":"lost","ds":"open","count":null}',
    "lost count 1e400": b'{"type":"lost","ds":"open","count":1e400}',
    "lost count negative": b'{"type":"lost","ds":"open","count":-1}',
    "ds a list": b'{"type":"event","ds":["open"],"data":{"pid":1}}',
    "hello protocol a string": b'{"type":"hello","protocol":"1"}',
    "end exit_code a string": b'{"type":"end","reason":"x","exit_code":"0"}',
    "schema fields not a list": b'{"type":"schema","ds":"open","fields":{"name":"pid"}}',
    "schema field without a name": b'{"type":"schema","ds":"open","fields":[{"type":"u32"}]}',
    "event data a list": b'{"type":"event","ds":"open","data":[1,2]}',
    "nested 1000 deep": b'{"type":"event","ds":"open","data":{"x":' + b"[" * 1000
                        + b"]" * 1000 + b"}}",
    "not JSON": b"Traceback (most recent call last):",
    "truncated": b'{"type":"event","ds":"open","data":{"pid":4',
    "no type": b'{"ds":"open","data":{}}',
    "type not a string": b'{"type":7}',
}


@pytest.mark.parametrize("name", sorted(BAD_LINES))
def test_a_bad_line_is_isolated_and_the_others_kept(name: str) -> None:
    blob = b"\n".join([GOOD[2], BAD_LINES[name], GOOD[3]])
    got = R.decode(blob)
    assert [type(r) for r in got] == [R.Event, R.Bad, R.Lost], name
    bad = got[1]
    assert isinstance(bad, R.Bad) and bad.reason and bad.line == BAD_LINES[name]


def test_unknown_record_types_and_keys_are_skipped() -> None:
    blob = b"\n".join([b'{"type":"progress","percent":"50"}',
                       b'{"type":"lost","ds":"open","count":2,"since":"1s"}'])
    got = R.decode(blob)
    assert len(got) == 1 and isinstance(got[0], R.Lost) and got[0].count == 2


def test_non_finite_numbers_become_null() -> None:
    got = R.decode(b'{"type":"event","ds":"m","data":{"a":NaN,"b":-Infinity,"c":1e999,'
                   b'"d":1.5,"e":340282366920938463463374607431768211455}}')
    assert len(got) == 1 and isinstance(got[0], R.Event)
    assert got[0].data == {"a": None, "b": None, "c": None, "d": 1.5,
                           "e": 340282366920938463463374607431768211455}


def test_blank_lines_are_ignored() -> None:
    assert [type(r) for r in R.decode(b"\n  \n" + GOOD[3] + b"\n\n")] == [R.Lost]
    assert R.decode(b"") == []

"""The ``--filter`` operator: keep only the events that match every condition.

Syntax (Inspektor Gadget's): ``FIELD OP VALUE`` conditions joined by ``,`` meaning AND, e.g.
``comm==cat,pid>=1000,fname~^/etc/``. Operators:

- ``==`` ``!=`` ``<`` ``<=`` ``>`` ``>=`` compare by the field's schema type: integers
  numerically (decimal, or ``0x`` hex), floats numerically, strings and enums as strings
  (lexicographic for ``<``...), bools with ``true``/``false`` (``==``/``!=`` only).
- ``~`` / ``!~``: the value is a Python ``re`` pattern searched anywhere in the string
  (anchor it with ``^``/``$``); string and enum fields only.

Whitespace around field, operator and value is ignored; write ``\\,`` for a comma inside a
value (other backslashes are kept as is, so ``\\d`` in a regex works). An empty value is
allowed for strings: ``k8s.namespace!=`` keeps only container events. An event without the
field, or with a value of the wrong type, does not match.

Two steps, so bad input fails before anything runs: ``parse_filters`` checks the syntax (and
the regexes) with no schema; ``compile_filters`` checks fields and values against the schema
and returns one predicate built from closures. The trap avoided: parsing or converting the
filter value per event, or comparing ``"10" < "9"`` as strings for an integer field.
"""

from __future__ import annotations

import enum
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from kubectl_gadget.errors import UsageError
from kubectl_gadget.operators import (
    FLOAT_TYPES,
    INTEGER_TYPES,
    OPAQUE_TYPES,
    STRING_TYPES,
    FieldSchema,
    index_fields,
    unknown_field,
)

Predicate = Callable[[Mapping[str, Any]], bool]


class Op(enum.Enum):
    """A filter operator, valued by its spelling."""

    EQ = "=="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    MATCH = "~"
    NOT_MATCH = "!~"


@dataclass(frozen=True)
class Condition:
    """One parsed condition; ``text`` is the condition as the user wrote it (for messages)."""

    field: str
    op: Op
    value: str
    text: str


_COMPARE: dict[Op, Callable[[Any, Any], bool]] = {
    Op.EQ: operator.eq,
    Op.NE: operator.ne,
    Op.LT: operator.lt,
    Op.LE: operator.le,
    Op.GT: operator.gt,
    Op.GE: operator.ge,
}
_ORDERING = frozenset({Op.LT, Op.LE, Op.GT, Op.GE})
_REGEX_OPS = frozenset({Op.MATCH, Op.NOT_MATCH})
# Longest spellings first, so "<=" is not read as "<" followed by "=...".
_CONDITION = re.compile(
    r"\s*(?P<field>[^=!<>~\s]*)\s*(?P<op>==|!=|<=|>=|!~|<|>|~|=)(?P<value>.*)", re.DOTALL
)
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_OPS_HELP = ", ".join(op.value for op in Op)


def _error(text: str, reason: str) -> UsageError:
    return UsageError(f"invalid filter {text!r}: {reason}")


def _split_conditions(expr: str) -> list[str]:
    """Split on commas not preceded by a backslash; ``\\,`` becomes a literal comma."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(expr):
        if expr.startswith("\\,", i):
            current.append(",")
            i += 2
            continue
        if expr[i] == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(expr[i])
        i += 1
    parts.append("".join(current))
    return parts


def _parse_condition(text: str) -> Condition:
    match = _CONDITION.fullmatch(text)
    if match is None:
        raise _error(text, f"expected FIELD OP VALUE with OP one of {_OPS_HELP}")
    field, spelled, value = match["field"], match["op"], match["value"].strip()
    if not field:
        raise _error(text, "missing field name before the operator")
    if not _FIELD_NAME.fullmatch(field):
        raise _error(text, f"{field!r} is not a field name")
    if spelled == "=":
        raise _error(text, "use '==' to compare for equality")
    op = Op(spelled)
    if op in _REGEX_OPS:
        try:
            re.compile(value)
        except re.error as exc:
            raise _error(text, f"bad regular expression {value!r}: {exc}") from None
    return Condition(field=field, op=op, value=value, text=text.strip())


def parse_filters(expr: str) -> list[Condition]:
    """Parse a ``--filter`` expression into conditions (syntax only; no schema needed).

    Raises UsageError for an empty expression or condition, a missing or malformed field name,
    an unknown operator, a single ``=``, or a regex that does not compile.
    """
    if not expr.strip():
        raise UsageError(f"invalid filter {expr!r}: empty expression")
    conditions = []
    for text in _split_conditions(expr):
        if not text.strip():
            raise _error(expr, "empty condition (two commas in a row, or a trailing comma?)")
        conditions.append(_parse_condition(text))
    return conditions


def _parse_int(cond: Condition, ftype: str) -> int:
    try:
        return int(cond.value, 10)
    except ValueError:
        pass
    try:
        return int(cond.value, 0)
    except ValueError:
        raise _error(
            cond.text, f"{cond.value!r} is not an integer ({cond.field} is {ftype})"
        ) from None


def _parse_float(cond: Condition, ftype: str) -> float:
    try:
        return float(cond.value)
    except ValueError:
        raise _error(
            cond.text, f"{cond.value!r} is not a number ({cond.field} is {ftype})"
        ) from None


def _parse_bool(cond: Condition) -> bool:
    if cond.op in _ORDERING:
        raise _error(cond.text, f"{cond.field} is bool: only == and != apply")
    lowered = cond.value.lower()
    if lowered not in ("true", "false"):
        raise _error(cond.text, f"{cond.value!r} is not true or false ({cond.field} is bool)")
    return lowered == "true"


def _typed_value(cond: Condition, ftype: str) -> object:
    """The condition's value converted to the field's type (UsageError if it does not parse)."""
    if ftype in INTEGER_TYPES:
        return _parse_int(cond, ftype)
    if ftype in FLOAT_TYPES:
        return _parse_float(cond, ftype)
    if ftype == "bool":
        return _parse_bool(cond)
    if ftype in STRING_TYPES:
        return cond.value
    raise _error(cond.text, f"{cond.field} is {ftype}, which filters do not support")


def _regex_predicate(cond: Condition) -> Predicate:
    search = re.compile(cond.value).search
    name = cond.field
    want = cond.op is Op.MATCH

    def predicate(data: Mapping[str, Any]) -> bool:
        value = data.get(name)
        if not isinstance(value, str):
            return False
        return (search(value) is not None) is want

    return predicate


def _compare_predicate(cond: Condition, ftype: str) -> Predicate:
    expected = _typed_value(cond, ftype)
    compare = _COMPARE[cond.op]
    name = cond.field
    # bool is an int subclass in Python: keep `true` from matching an integer 1 and vice versa.
    accepted: tuple[type, ...]
    if ftype == "bool":
        accepted = (bool,)
    elif ftype in INTEGER_TYPES or ftype in FLOAT_TYPES:
        accepted = (int, float)
    else:
        accepted = (str,)

    def predicate(data: Mapping[str, Any]) -> bool:
        value = data.get(name)
        if not isinstance(value, accepted) or (ftype != "bool" and isinstance(value, bool)):
            return False
        return compare(value, expected)

    return predicate


def _compile_condition(cond: Condition, by_name: Mapping[str, FieldSchema]) -> Predicate:
    field = by_name.get(cond.field)
    if field is None:
        raise unknown_field(f"invalid filter {cond.text!r}", cond.field, by_name)
    cond = replace(cond, field=field["name"])  # an alias reads the field it names
    ftype = field["type"]
    if ftype in OPAQUE_TYPES:
        raise _error(cond.text, f"{cond.field} is {ftype}, which filters do not support")
    if cond.op in _REGEX_OPS:
        if ftype not in STRING_TYPES:
            raise _error(
                cond.text, f"'{cond.op.value}' needs a string field ({cond.field} is {ftype})"
            )
        return _regex_predicate(cond)
    return _compare_predicate(cond, ftype)


def _always(data: Mapping[str, Any]) -> bool:
    return True


def compile_filters(conditions: Sequence[Condition], fields: Sequence[FieldSchema]) -> Predicate:
    """Check ``conditions`` against a datasource's schema and build one predicate (AND).

    Raises UsageError for an unknown field (with close matches), a value that does not parse
    for the field's type, an ordering on a bool, or a regex on a non-string field. With no
    conditions, every event matches.
    """
    by_name = index_fields(fields)
    predicates = [_compile_condition(cond, by_name) for cond in conditions]
    if not predicates:
        return _always
    if len(predicates) == 1:
        return predicates[0]
    if len(predicates) == 2:
        first, second = predicates
        return lambda data: first(data) and second(data)

    def all_of(data: Mapping[str, Any]) -> bool:
        for predicate in predicates:
            if not predicate(data):
                return False
        return True

    return all_of

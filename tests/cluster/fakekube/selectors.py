"""Label and field selectors, parsed once and matched per object.

Grammar and semantics follow ``k8s.io/apimachinery/pkg/labels`` and ``.../fields``: ``!=`` and
``notin`` match objects *without* the label, field selectors only accept the fields the
resource declares (anything else is a 400 ``field label not supported``), and a malformed
selector is a 400 before anything is listed — a permissive parser would hide client bugs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ApiError, bad_request

_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_OPERATORS = ("==", "!=", "=", "(", ")", ",", "!", "<", ">")


def label_key_error(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _PREFIX.match(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain"
    if not name or len(name) > 63 or not _NAME.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
            "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
            "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        )
    return None


def label_value_error(value: str) -> str | None:
    if value == "":
        return None
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _NAME.match(value):
        return (
            "a valid label must be an empty string or consist of alphanumeric characters, '-', "
            "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  "
            "or 'my_value',  or '12345', regex used for validation is "
            "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        )
    return None


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # in, notin, exists, !exists, gt, lt
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op == "in":
            return present and labels[self.key] in self.values
        if self.op == "notin":
            return not present or labels[self.key] not in self.values
        if not present:
            return False
        try:
            have, want = int(labels[self.key]), int(self.values[0])
        except ValueError:
            return False
        return have > want if self.op == "gt" else have < want


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        for op in _OPERATORS:
            if text.startswith(op, i):
                tokens.append(op)
                i += len(op)
                break
        else:
            j = i
            while j < len(text) and not text[j].isspace() and not any(
                text.startswith(op, j) for op in _OPERATORS
            ):
                j += 1
            tokens.append(text[i:j])
            i = j
    return tokens


def _fail(message: str) -> ApiError:
    return bad_request(f"unable to parse requirement: {message}")


def parse_label_selector(text: str | None) -> tuple[Requirement, ...]:
    """Parse ``labelSelector``; raises a 400 ``ApiError`` on malformed input."""
    if not text or not text.strip():
        return ()
    tokens = _tokens(text)
    reqs: list[Requirement] = []
    pos = 0

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise _fail(f"found '', expected: identifier in {text!r}")
        pos += 1
        return tokens[pos - 1]

    while pos < len(tokens):
        negate = tokens[pos] == "!"
        if negate:
            pos += 1
        key = take()
        if key in _OPERATORS or key in ("in", "notin"):
            raise _fail(f"found '{key}', expected: identifier")
        if (problem := label_key_error(key)) is not None:
            raise _fail(f'key: Invalid value: "{key}": {problem}')
        nxt = tokens[pos] if pos < len(tokens) else ","
        if negate or nxt == ",":
            reqs.append(Requirement(key, "!exists" if negate else "exists"))
        else:
            op = take()
            if op in ("=", "==", "!="):
                values: tuple[str, ...] = (
                    ("",) if pos >= len(tokens) or tokens[pos] == "," else (take(),)
                )
                kind = "notin" if op == "!=" else "in"
            elif op in ("in", "notin"):
                if take() != "(":
                    raise _fail(f"found '{tokens[pos - 1]}', expected: '('")
                collected: list[str] = []
                while True:
                    item = take()
                    if item == ")":
                        break
                    if item != ",":
                        collected.append(item)
                values, kind = tuple(collected), op
            elif op in ("<", ">"):
                values, kind = (take(),), "gt" if op == ">" else "lt"
                if not values[0].lstrip("-").isdigit():
                    raise _fail(f"for 'Gt', 'Lt' operators, the value must be an integer: {text}")
            else:
                raise _fail(f"found '{op}', expected: in, notin, =, ==, !=, gt, lt")
            for value in values:
                if (problem := label_value_error(value)) is not None:
                    raise _fail(f'values[0][{key}]: Invalid value: "{value}": {problem}')
            reqs.append(Requirement(key, kind, values))
        if pos < len(tokens):
            if tokens[pos] != ",":
                raise _fail(f"found '{tokens[pos]}', expected: ',' or 'end of string'")
            pos += 1
            if pos >= len(tokens):
                raise _fail("found '', expected: identifier after ','")
    return tuple(reqs)


def labels_match(reqs: tuple[Requirement, ...], labels: Mapping[str, str] | None) -> bool:
    have = labels or {}
    return all(req.matches(have) for req in reqs)


def match_label_selector_object(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Match a structured ``LabelSelector`` (matchLabels/matchExpressions)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
        req = Requirement(expr["key"], op[expr["operator"]], tuple(expr.get("values") or ()))
        if not req.matches(labels):
            return False
    return True


FieldGetter = Callable[[dict[str, Any]], str]


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    value: str
    negate: bool


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, current, i = [], "", 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            current += text[i : i + 2]
            i += 2
            continue
        if text[i] == sep:
            parts.append(current)
            current = ""
        else:
            current += text[i]
        i += 1
    parts.append(current)
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_field_selector(
    text: str | None, fields: Mapping[str, FieldGetter]
) -> tuple[FieldRequirement, ...]:
    if not text or not text.strip():
        return ()
    reqs: list[FieldRequirement] = []
    for part in _split_unescaped(text, ","):
        match = re.match(r"^([^=!]+?)\s*(!=|==|=)(.*)$", part.strip())
        if match is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, value = match.group(1).strip(), match.group(2), _unescape(match.group(3))
        if field not in fields:
            raise bad_request(f"field label not supported: {field}")
        reqs.append(FieldRequirement(field, value, op == "!="))
    return tuple(reqs)


def fields_match(
    reqs: tuple[FieldRequirement, ...], obj: dict[str, Any], fields: Mapping[str, FieldGetter]
) -> bool:
    for req in reqs:
        have = fields[req.field](obj)
        if (have == req.value) == req.negate:
            return False
    return True

"""gadget.yaml: the human-facing description of a gadget, parsed and validated once.

Only the parts the tool acts on are typed (names, datasource and field annotations, params);
everything else is kept in `raw` and ignored, so a gadget.yaml written for a newer tool (or
for Inspektor Gadget, with keys we do not know) still loads. The trap avoided: treating an
unknown key as an error, or letting a YAML error escape as a traceback. Annotation values are
always strings, as in the ABI ("true", "32"), whatever YAML type they were written as.
Structural keys match regardless of case (`dataSources` is `datasources`, as Inspektor Gadget
reads them), and the top-level `ebpfParams` of its older gadgets is `params.ebpf`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from node_runner.gadget.errors import GadgetFormatError


@dataclass(frozen=True)
class ParamMeta:
    var: str
    key: str
    default: str | None = None
    description: str = ""


@dataclass(frozen=True)
class DatasourceMeta:
    name: str
    annotations: Mapping[str, str] = field(default_factory=dict)
    fields: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class GadgetMetadata:
    name: str = ""
    description: str = ""
    homepage_url: str = ""
    documentation_url: str = ""
    source_url: str = ""
    datasources: Mapping[str, DatasourceMeta] = field(default_factory=dict)
    params: Mapping[str, ParamMeta] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)


def _mapping(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise GadgetFormatError(f"{where}: expected a mapping, found {type(value).__name__}")
    return value


def _get(body: Mapping[str, Any], key: str) -> Any:
    """`body[key]`, matching the key regardless of case; an exact match wins."""
    if key in body:
        return body[key]
    lower = key.lower()
    for k, v in body.items():
        if str(k).lower() == lower:
            return v
    return None


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


MAX_COLUMN_WIDTH = 1024
_WIDTH_KEYS = ("columns.width", "columns.minwidth", "columns.maxwidth")
MAX_ANNOTATION = 1 << 16  # characters of one annotation value
MAX_METADATA_BYTES = 1 << 20


def _annotations(value: object, where: str) -> dict[str, str]:
    notes = {str(k): _text(v) for k, v in _mapping(value, where).items()}
    for key, text in notes.items():
        if len(text) > MAX_ANNOTATION:
            raise GadgetFormatError(f"{where}.{key}: value of {len(text)} characters "
                                    f"(at most {MAX_ANNOTATION})")
        if key in _WIDTH_KEYS and not (text.strip().isdigit()
                                       and int(text) <= MAX_COLUMN_WIDTH):
            raise GadgetFormatError(f"{where}.{key}: {text[:40]!r} is not a column width "
                                    f"(an integer from 0 to {MAX_COLUMN_WIDTH})")
    return notes


def _datasource(name: str, body: object, where: str) -> DatasourceMeta:
    body = _mapping(body, where)
    fields = {}
    for fname, fbody in _mapping(_get(body, "fields"), f"{where}.fields").items():
        fbody = _mapping(fbody, f"{where}.fields.{fname}")
        fields[str(fname)] = _annotations(_get(fbody, "annotations"),
                                          f"{where}.fields.{fname}.annotations")
    return DatasourceMeta(name, _annotations(_get(body, "annotations"), f"{where}.annotations"),
                          fields)


def _ebpf_params(value: object, where: str) -> dict[str, ParamMeta]:
    params = {}
    for var, body in _mapping(value, where).items():
        body = _mapping(body, f"{where}.{var}")
        default = _get(body, "defaultValue")
        params[str(var)] = ParamMeta(str(var), _text(_get(body, "key")) or str(var),
                                     None if default is None else _text(default),
                                     _text(_get(body, "description")))
    return params


def _params(doc: Mapping[str, Any], origin: str) -> dict[str, ParamMeta]:
    """`params.ebpf`, and the older top-level `ebpfParams` (`params.ebpf` wins a clash)."""
    params = _ebpf_params(_get(doc, "ebpfParams"), f"{origin}: ebpfParams")
    section = _mapping(_get(doc, "params"), f"{origin}: params")
    params.update(_ebpf_params(_get(section, "ebpf"), f"{origin}: params.ebpf"))
    return params


def parse_metadata(text: str, origin: str = "gadget.yaml") -> GadgetMetadata:
    if len(text) > MAX_METADATA_BYTES:
        raise GadgetFormatError(f"parsing {origin}: {len(text)} characters "
                                f"(at most {MAX_METADATA_BYTES})")
    try:
        doc = yaml.safe_load(text)
    except RecursionError:
        raise GadgetFormatError(f"parsing {origin}: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", exc)
        raise GadgetFormatError(f"parsing {origin}{where}: {problem}") from None
    doc = _mapping(doc, origin)
    datasources = {
        str(name): _datasource(str(name), body, f"{origin}: datasources.{name}")
        for name, body in _mapping(_get(doc, "datasources"), f"{origin}: datasources").items()
    }
    return GadgetMetadata(
        name=_text(_get(doc, "name")),
        description=_text(_get(doc, "description")),
        homepage_url=_text(_get(doc, "homepageURL")),
        documentation_url=_text(_get(doc, "documentationURL")),
        source_url=_text(_get(doc, "sourceURL")),
        datasources=datasources,
        params=_params(doc, origin),
        raw=doc,
    )

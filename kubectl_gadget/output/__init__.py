"""Output: turn filtered events into text on stdout, in one of ``-o columns|json|jsonpretty|yaml``
(or, for packet captures, a pcap file: ``-o pcap``, see ``output.pcap``).

A formatter is built once per datasource from its schema fields, the ``--fields`` selection,
the mode and the output stream, then called per event (``event``) or per array batch
(``array``). Everything that can be decided up front is: column widths, cell renderers, the
nesting plan for JSON keys. Non-event records (``lost``, ``warning``, ``error``) never reach
stdout in any mode: ``notice`` turns them into one human line for the ``diag`` callback the
caller gives (stderr, typically), so stdout stays parseable. The trap avoided: widths computed
from the values seen so far (columns drift while streaming), and diagnostics mixed into
machine-readable output.

Modes:

- ``columns``: a header line, then one line per event. Every column has the fixed width of its
  ``Column`` spec (see ``operators.fields``), columns are separated by two spaces, trailing
  spaces are dropped. Strings longer than the column are cut with ``…`` per the column's
  ellipsis rule; numbers are never cut (a cut number is a wrong number) and overflow instead.
  Control characters in strings are escaped (``\\n``, ``\\x1b``) so a file name cannot forge
  lines. A missing key prints empty. Array batches print a header and rows, a blank line
  between batches.
- ``json``: one compact JSON object per event per line; ``jsonpretty``: the same, indented;
  ``yaml``: one YAML document per event, each starting with ``---``. Dotted field names are
  nested (``k8s.node`` -> ``{"k8s": {"node": ...}}``). Without ``--fields`` all fields except
  ``json.skip: "true"`` ones are included (hidden columns too); with it, the selection applies
  as in columns mode. A key missing from an event is left out, not written as null. An array
  batch is one JSON array (one YAML document).

Writes are not flushed per event: call ``flush`` after each batch of merged records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from kubectl_gadget.operators import FieldSchema
from kubectl_gadget.operators.fields import FieldSelection, column_spec, select_fields
from kubectl_gadget.output.columns import (
    ColumnsFormatter,
    NoneFormatter,
    cell_renderer,
    fit,
    fit_widths,
    k8s_first,
)
from kubectl_gadget.output.formatter import (
    OUTPUT_MODES,
    Diag,
    Formatter,
    OutputMode,
    describe_record,
    parse_output_mode,
)
from kubectl_gadget.output.pcap import PcapFormatter
from kubectl_gadget.output.structured import DUMPERS, StructuredFormatter, nesting_plan

__all__ = [
    "OUTPUT_MODES", "ColumnsFormatter", "Formatter", "OutputMode", "StructuredFormatter",
    "cell_renderer", "describe_record", "fit", "make_formatter", "nesting_plan",
    "parse_output_mode",
]


def make_formatter(
    mode: str,
    fields: Sequence[FieldSchema],
    selection: FieldSelection | None = None,
    *,
    out: TextIO,
    diag: Diag,
    headers: bool = True,
    width: int | None = None,
) -> Formatter:
    """Build the formatter for one datasource (see the module docstring for each mode).

    UsageError for an unknown mode or a selection naming unknown fields; GadgetError for a
    malformed column annotation or field names that cannot be nested.
    """
    checked = parse_output_mode(mode)
    selection = selection or FieldSelection()
    if checked == "columns":
        selected = select_fields(selection, fields, "columns")
        if selection.explicit is None:  # the default order: Kubernetes columns first, as IG
            selected = k8s_first(selected)
        columns = fit_widths([column_spec(f) for f in selected], width)
        return ColumnsFormatter(columns, out, diag, headers=headers)
    if checked == "none":
        return NoneFormatter(out, diag)
    if checked == "pcap":
        return PcapFormatter(fields, out, diag)
    names = [f["name"] for f in select_fields(selection, fields, "json")]
    return StructuredFormatter(names, DUMPERS[checked], out, diag)

"""Errors raised while reading a gadget's files (ELF, BTF, markers).

One job: give every "this input is not what we expected" a single typed exception, so
callers never see an ``IndexError`` or ``struct.error`` leaking out of a parser and can tell
a malformed gadget from a bug. The message says what was being read, then the cause.
"""

from __future__ import annotations


class GadgetFormatError(ValueError):
    """A gadget file (ELF object, BTF blob, marker name) is malformed or incomplete."""

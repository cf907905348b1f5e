"""Output held for one wake-up of the session and written in one call."""

from __future__ import annotations

from typing import Any, TextIO


class Batched:
    """Text written to `out` in one wake-up of the session, handed over in one write by
    `flush` (then `out` is flushed): one system call per wake-up instead of one per batch
    of lines. Other attributes (`buffer`, `fileno`, ...) are `out`'s."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._parts: list[str] = []

    def write(self, text: str) -> int:
        self._parts.append(text)
        return len(text)

    def flush(self) -> None:
        if self._parts:
            text = "".join(self._parts)
            self._parts.clear()
            self._out.write(text)
        self._out.flush()

    def isatty(self) -> bool:
        return isatty(self._out)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._out, name)


def isatty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False



"""The cluster run's status line: one updating line on a terminal's stderr while runner pods
start ("waiting on 2 node(s): pulling image (node-a, node-b)").

One job: keep that line in place and out of the way. Every other stderr message clears it,
is printed, and the line is drawn again below it; stdout output is written between a clear
and a redraw too (the session asks around each flush), so events and the line never share a
row. The line is cut to the terminal's width (a wrapped line could not be redrawn in place).
Piped stderr gets no status line: the watch prints plain lines instead.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from typing import TextIO

CLEAR_LINE = "\r\x1b[K"


class StatusLine:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.text = ""
        self._lock = threading.RLock()

    def set(self, text: str) -> None:
        """Show `text` as the status (an empty text removes the line)."""
        with self._lock:
            if text == self.text:
                return
            self.clear()
            self.text = text
            self.redraw()

    def clear(self) -> None:
        with self._lock:
            if self.text:
                self.stream.write(CLEAR_LINE)
                self.stream.flush()

    def redraw(self) -> None:
        with self._lock:
            if self.text:
                width = max(shutil.get_terminal_size().columns - 1, 10)
                text = self.text if len(self.text) <= width else self.text[:width - 1] + "…"
                self.stream.write(CLEAR_LINE + text)
                self.stream.flush()

    def around(self, diag: Callable[[str], None]) -> Callable[[str], None]:
        """`diag` printing above the status line."""
        def wrapped(message: str) -> None:
            with self._lock:
                self.clear()
                diag(message)
                self.redraw()
        return wrapped

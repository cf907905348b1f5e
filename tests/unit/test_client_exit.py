"""The client's exit: once `close_diag` ran, no background thread writes to stderr (a daemon
thread writing while the interpreter shuts down can make Python abort the process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = r"""
import threading
from kubectl_gadget.session import close_diag, stderr_diag

go = threading.Event()
def late():
    import logging, warnings
    go.wait()
    stderr_diag("late message")
    logging.getLogger("urllib3").warning("late log")
    warnings.warn("late warning")
thread = threading.Thread(target=late, daemon=True)
thread.start()
stderr_diag("before the close")
close_diag()
go.set()
thread.join(60)
assert not thread.is_alive()
"""


def test_no_thread_writes_after_the_close() -> None:
    proc = subprocess.run([sys.executable, "-c", PROGRAM], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "before the close" in proc.stderr
    assert "late" not in proc.stderr, proc.stderr


def test_the_command_line_closes_on_its_way_out() -> None:
    """`main()` as the process's entry (no argv) closes it; an in-process call does not."""
    program = ("import sys\nfrom kubectl_gadget import cli, session\n"
               "sys.argv = ['kubectl-gadget', '--version']\n"
               "code = cli.main()\nsession.stderr_diag('after main')\n"
               "assert cli.main(['--version']) == 0\n")
    proc = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "after main" not in proc.stderr, proc.stderr

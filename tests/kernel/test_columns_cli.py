"""Columns through the real client on this kernel (golden files): widths fitted to `COLUMNS`,
`--no-headers`, `-o none` (nothing on stdout, a summary on stderr), and timestamps as the time
of day. A container exec()s `/bin/echo` while the client runs; repeated rows are folded."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests import golden
from tests.conftest import needs_root_btf, needs_unshare
from tests.workloads import ContainerWorkload, sleeping_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]
GOLDEN = Path(__file__).parent / "golden"
ROOT = Path(__file__).resolve().parents[2]


def client(gadget: Path, w: ContainerWorkload, *args: str,
           columns: str | None = None) -> subprocess.CompletedProcess[str]:
    """`run GADGET --local` for the container `w` (only its echo events) for 3 seconds."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["PYTHONPATH"] = str(ROOT)
    if columns is not None:
        env["COLUMNS"] = columns
    stop = threading.Event()

    def echo() -> None:
        while not stop.wait(0.2):
            w.popen(["/bin/echo", "a-rather-long-argument-for-columns"]).wait(10)

    thread = threading.Thread(target=echo)
    thread.start()
    try:
        return subprocess.run(
            [sys.executable, "-m", "kubectl_gadget", "run", str(gadget), "--local",
             "--container-id", w.container_id, "-F", "proc.comm==echo", "--timeout", "3",
             *args], capture_output=True, text=True, timeout=120, env=env, check=False)
    finally:
        stop.set()
        thread.join()


def folded(text: str) -> str:
    """Each distinct line once, in order of first appearance."""
    return "".join(f"{line}\n" for line in dict.fromkeys(text.splitlines()))


def test_widths_fit_columns_and_no_headers(built_gadgets: dict[str, Path]) -> None:
    gadget = built_gadgets["trace_exec"]
    fields = "proc.comm,proc.creds.uid,file,args,error"
    with sleeping_container() as w:
        fitted = client(gadget, w, "--fields", fields, columns="60")
        piped = client(gadget, w, "--fields", fields, "--no-headers")
    assert fitted.returncode == 0 and piped.returncode == 0, (fitted.stderr, piped.stderr)
    assert all(len(line) <= 60 for line in fitted.stdout.splitlines()), fitted.stdout
    golden.check_golden(GOLDEN / "columns_fit_60.txt", folded(fitted.stdout))
    golden.check_golden(GOLDEN / "columns_no_headers.txt", folded(piped.stdout))


def test_output_none_and_time_of_day(built_gadgets: dict[str, Path]) -> None:
    gadget = built_gadgets["trace_exec"]
    with sleeping_container() as w:
        none = client(gadget, w, "-o", "none")
        stamped = client(gadget, w, "--fields", "timestamp,proc.comm")
    assert (none.returncode, none.stdout) == (0, ""), none.stderr
    assert re.search(r"^node \S+: [1-9]\d* event\(s\)$", none.stderr, re.M), none.stderr
    lines = stamped.stdout.splitlines()
    assert lines[0].split() == ["TIMESTAMP", "PROC.COMM"], lines
    assert lines[1:] and all(re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}  echo", ln)
                             for ln in lines[1:]), lines

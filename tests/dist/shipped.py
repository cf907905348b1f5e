"""Run a shipped `kubectl-gadget` (venv script or one-file binary) the way a new user would.

One job: start the command from an empty directory with a clean environment (no PYTHONPATH, no
venv and no clang on PATH, HOME in a temp dir so no build cache exists), and prove that
`run trace_exec --local` really traces: a uniquely named probe program is executed over and
over while the run lasts and must appear in the output. Every process started here ends here.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

TRUE = shutil.which("true") or "/bin/true"


@dataclass(frozen=True)
class Sandbox:
    cwd: Path
    env: dict[str, str]


def sandbox(tmp: Path) -> Sandbox:
    """An empty working directory, an empty PATH directory and a fresh HOME."""
    for d in ("work", "empty-path", "home"):
        (tmp / d).mkdir()
    env = {"PATH": str(tmp / "empty-path"), "HOME": str(tmp / "home"), "LANG": "C.UTF-8"}
    return Sandbox(tmp / "work", env)


def run(cmd: Sequence[str], box: Sandbox, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), cwd=box.cwd, env=box.env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _exec_probe_until(probe: str, done: threading.Event) -> None:
    while not done.wait(0.1):
        subprocess.run([probe], check=False)


def trace_exec_sees_probe(cmd: Sequence[str], box: Sandbox, tmp: Path) -> str:
    """Run `CMD run trace_exec --local --timeout 2` while a probe program runs; return stdout
    (asserting exit code 0 and the probe among the traced programs)."""
    name = f"kgp{secrets.token_hex(4)}"
    probe = tmp / name
    shutil.copyfile(TRUE, probe)
    os.chmod(probe, 0o755)
    done = threading.Event()
    execs = threading.Thread(target=_exec_probe_until, args=(str(probe), done), daemon=True)
    execs.start()
    try:
        proc = run([*cmd, "run", "trace_exec", "--local", "--timeout", "2"], box)
    finally:
        done.set()
        execs.join()
    assert proc.returncode == 0, proc.stderr
    assert "compiling gadget" not in proc.stderr
    assert name in proc.stdout, f"probe {name} not traced:\n{proc.stdout}\n{proc.stderr}"
    assert not (Path(box.env["HOME"]) / ".cache" / "kubectl-gadget").exists()
    return proc.stdout

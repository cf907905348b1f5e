"""Start-up: how long until a user sees something.

- first event: `kubectl-gadget run trace_exec --local -o json` while a helper process execs
  /bin/true every 50 ms; the time from the command's start to its first event line on stdout
  (the gadget's build cache is warm, as on any second run);
- `kubectl-gadget version`: the time from start to exit, next to the interpreter's own
  start-up (`python -c pass`) measured in the same runs.
Each is the median of RUNS runs, with min and max.
"""

from __future__ import annotations

import os
import select
import statistics
import subprocess
import sys
import time

from tests.bench.e2e import ROOT, env

RUNS = 5
LIMIT = 60.0
EXEC_LOOP = ("import subprocess, time\n"
             "while True:\n subprocess.run(['/bin/true'])\n time.sleep(0.05)")


def first_event() -> float | None:
    argv = [sys.executable, "-m", "kubectl_gadget", "run", "trace_exec", "--local", "-o", "json",
            "--timeout", "30"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT,
                            env=env())
    assert proc.stdout is not None
    seen = None
    fd = proc.stdout.fileno()
    while time.perf_counter() - t0 < LIMIT:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            if b"{" in chunk:
                seen = time.perf_counter() - t0
                break
    proc.send_signal(2)
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
    return seen


def version(argv: tuple[str, ...] = ("-m", "kubectl_gadget", "version")) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *argv], cwd=ROOT, env=env(), stdout=subprocess.DEVNULL,
                   check=True)
    return time.perf_counter() - t0


def _row(label: str, values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    if not got:
        return f"| {label} | n/a | n/a | 0/{len(values)} runs |"
    return (f"| {label} | {statistics.median(got):.2f} s | {min(got):.2f}-{max(got):.2f} s | "
            f"{len(got)}/{len(values)} runs |")


def main(runs: int = RUNS) -> int:
    if os.geteuid() != 0:
        print("bench startup: needs root (loads eBPF programs)", file=sys.stderr)
        return 1
    loop = subprocess.Popen([sys.executable, "-c", EXEC_LOOP])
    try:
        first_event()  # warm the build cache
        firsts = [first_event() for _ in range(runs)]
    finally:
        loop.kill()
        loop.wait()
    versions, bare = [], []
    for _ in range(runs):  # interleaved: a busy spell of the machine hits both
        versions.append(version())
        bare.append(version(("-c", "pass")))
    print(f"\n## Start-up (median of {runs})\n")
    print("| what | median | min-max | |\n|---|---|---|---|")
    print(_row("`run trace_exec --local -o json`: first event on stdout", list(firsts)))
    print(_row("`kubectl-gadget version`", list(versions)))
    print(_row("(the interpreter alone: `python -c pass`)", list(bare)))
    return 0 if all(v is not None for v in firsts) else 1


if __name__ == "__main__":
    sys.exit(main())

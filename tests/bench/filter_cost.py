"""Filter cost: what trace_open costs processes it does not trace.

A storm of STORM_OPENS open() calls, as fast as it can, in its own mount namespace, while:
- `empty`: a do-nothing program is attached to each of trace_open's six hooks (the baseline:
  the price of running any program there; tests/bench/empty_open);
- `filtered`: trace_open runs with its mount-namespace filter set to another namespace (this
  benchmark's), so every call of the storm is looked up and discarded in the kernel;
- `none`: nothing attached (for reference).
The workload's cost is the storm's own CPU time over its loop (system time includes the
programs, which run in its context); cases run interleaved REPEATS times, medians shown.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tests.bench.e2e import ROOT, STORM, env

STORM_OPENS = 1_000_000
REPEATS = 3
EMPTY_SRC = Path(__file__).resolve().parent / "empty_open"
BUILT = ROOT / "build"


def _storm() -> tuple[float, float]:
    """(CPU s, wall s) of the storm's loop."""
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable,
                           str(STORM), str(STORM_OPENS), "0", "0"], stderr=subprocess.PIPE,
                          check=True)
    words = proc.stderr.decode().split()
    return float(words[words.index("cpu") + 1]), float(words[3])


def _with_runner(gadget: Path | None, args: list[str]) -> tuple[float, float]:
    if gadget is None:
        return _storm()
    runner = subprocess.Popen([sys.executable, "-m", "node_runner", "run", "--gadget",
                               str(gadget), "--timeout", "300", *args], cwd=ROOT, env=env(),
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert runner.stdout is not None
    try:
        for line in runner.stdout:  # attached once the schema is announced
            if b'"type":"schema"' in line:
                break
        else:
            raise RuntimeError(f"runner for {gadget} ended before attaching")
        return _storm()
    finally:
        runner.send_signal(2)
        runner.communicate(timeout=30)


def main(repeats: int = REPEATS) -> int:
    if os.geteuid() != 0:
        print("bench filter-cost: needs root (loads eBPF programs)", file=sys.stderr)
        return 1
    subprocess.run([sys.executable, "-m", "kubectl_gadget.image.build", str(EMPTY_SRC), "--out",
                    str(BUILT / "bench")], cwd=ROOT, env=env(), check=True,
                   stdout=subprocess.DEVNULL)
    own_mntns = os.stat("/proc/self/ns/mnt").st_ino
    cases = {
        "none": (None, []),
        "empty": (BUILT / "bench" / "empty_open", []),
        "filtered": (BUILT / "gadgets" / "trace_open", ["--mntns", str(own_mntns)]),
    }
    got: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, (gadget, args) in cases.items():
            got[name].append(_with_runner(gadget, args))
            time.sleep(0.2)
    cpu = {n: statistics.median(c for c, _w in v) for n, v in got.items()}
    wall = {n: statistics.median(w for _c, w in v) for n, v in got.items()}
    print(f"\n## Filter cost ({STORM_OPENS:,} non-target opens, median of {repeats})\n")
    print("| attached to the open hooks | storm CPU | storm wall | CPU vs empty | wall vs empty |")
    print("|---|---|---|---|---|")
    labels = {"none": "nothing", "empty": "empty programs (baseline)",
              "filtered": "trace_open, mntns filter set elsewhere"}
    for name in cases:
        print(f"| {labels[name]} | {cpu[name]:.2f} s | {wall[name]:.2f} s | "
              f"{100 * (cpu[name] / cpu['empty'] - 1):+.1f}% | "
              f"{100 * (wall[name] / wall['empty'] - 1):+.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

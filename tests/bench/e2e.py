"""End to end: the whole `kubectl-gadget run trace_open --local` vs libbpf-tools' opensnoop.

A user runs the client, which starts the runner and formats its records; so the process tree
(client + runner) is measured, not the runner alone. For each offered rate, a storm process
(storm.py) runs in its own mount namespace and first opens a probe path every 20 ms; once the
probe shows up in the tracer's output (the tracer is attached and delivering), the storm
starts. Each tracer is filtered to the storm's pid in the kernel (`--pid` for ours, `-p` for
opensnoop); its stdout is drained into a pipe and the storm's lines are counted. CPU is the
tree's user+system time from wait4()'s rusage of the tracer, which includes its children
once they were reaped (the client reaps its runner before it exits).
"Steady" CPU per event subtracts each tool's fixed cost (start-up, load, idle polling),
measured in the same run by the same tool around an idle process for the same wall time.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
STORM = HERE / "storm.py"
DURATION = 3.0
DRAIN = 1.0
READY_LIMIT = 60.0
STORM_MARK = b"kubectl-gadget-bench"
PROBE_MARK = b"kubectl-gadget-probe"
Argv = Callable[[int], list[str]]


@dataclass
class Result:
    tool: str
    rate: int
    offered: int
    delivered: int
    cpu: float
    ready: bool = True
    idle_cpu: float = 0.0

    @property
    def pct(self) -> float:
        return 100.0 * self.delivered / self.offered if self.offered else 0.0

    @property
    def us_per_event(self) -> float:
        return 1e6 * self.cpu / self.delivered if self.delivered else float("inf")

    @property
    def steady_us_per_event(self) -> float:
        busy = max(0.0, self.cpu - self.idle_cpu)
        return 1e6 * busy / self.delivered if self.delivered else float("inf")


@dataclass
class _Counter:
    ready: threading.Event = field(default_factory=threading.Event)
    storm: int = 0

    def read(self, stream) -> None:
        rest = b""
        while True:
            chunk = stream.read1(1 << 16)
            if not chunk:
                break
            data = rest + chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                rest = data
                continue
            rest, block = data[cut + 1:], data[:cut]
            self.storm += block.count(STORM_MARK)
            if not self.ready.is_set() and PROBE_MARK in block:
                self.ready.set()


def env() -> dict[str, str]:
    """The environment for our tools: this tree first on the path."""
    out = dict(os.environ)
    out["PYTHONPATH"] = str(ROOT) + os.pathsep + out.get("PYTHONPATH", "")
    return out


def run_one(tool: str, argv: Argv, rate: int, idle: bool = False) -> Result:
    count = 0 if idle else int(rate * DURATION)
    storm = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", sys.executable, str(STORM),
         str(count), str(rate), "probe", str(DURATION if idle else 0.0)],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    tracer = subprocess.Popen(argv(storm.pid), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, cwd=ROOT, env=env())
    counter = _Counter()
    reader = threading.Thread(target=counter.read, args=(tracer.stdout,), daemon=True)
    reader.start()
    ready = counter.ready.wait(READY_LIMIT)
    assert storm.stdin is not None and storm.stderr is not None
    storm.stdin.write(b"g")
    storm.stdin.close()
    err = storm.stderr.read()
    storm.wait()
    time.sleep(DRAIN)
    tracer.send_signal(2)
    _pid, _status, usage = os.wait4(tracer.pid, 0)
    tracer.returncode = 0
    reader.join(30)
    offered = count
    for line in err.decode().splitlines():
        if line.startswith("offered"):
            offered = int(line.split()[1])
    return Result(tool, rate, offered, counter.storm, usage.ru_utime + usage.ru_stime, ready)


def ours(mode: str) -> Argv:
    return lambda pid: [sys.executable, "-m", "kubectl_gadget", "run", "trace_open", "--local",
                        "--pid", str(pid), "-o", mode, "--timeout", str(DURATION + 60)]


def opensnoop(pid: int) -> list[str]:
    return ["opensnoop", "-p", str(pid)]


def tools() -> dict[str, Argv]:
    found: dict[str, Argv] = {"kubectl-gadget -o json": ours("json"),
                              "kubectl-gadget -o columns": ours("columns")}
    if shutil.which("opensnoop"):
        found["opensnoop"] = opensnoop
    return found


def table(results: Sequence[Result], runs: int) -> str:
    """One row per (rate, tool): medians over the runs; delivered as min..max."""
    out = ["| offered | tool | runs with 100% | delivered (min-max) | CPU us/event | vs opensnoop "
           "| steady us/event | vs opensnoop |", "|---|---|---|---|---|---|---|---|"]
    keys = list(dict.fromkeys((r.rate, r.tool) for r in results))
    med = {k: _medians([r for r in results if (r.rate, r.tool) == k]) for k in keys}
    for rate, tool in keys:
        rs = [r for r in results if (r.rate, r.tool) == (rate, tool)]
        cpu, steady = med[(rate, tool)]
        base = med.get((rate, "opensnoop"))
        full = sum(1 for r in rs if r.delivered >= r.offered)
        pcts = [min(r.pct, 100.0) for r in rs]
        out.append(f"| {rate // 1000}k/s | {tool} | {full}/{len(rs)} | {min(pcts):.1f}-"
                   f"{max(pcts):.1f}% | {cpu:.2f} | {_ratio(cpu, base and base[0])} | "
                   f"{steady:.2f} | {_ratio(steady, base and base[1])} |")
    return "\n".join(out)


def _medians(rs: Sequence[Result]) -> tuple[float, float]:
    return (statistics.median(r.us_per_event for r in rs),
            statistics.median(r.steady_us_per_event for r in rs))


def _ratio(a: float, b: float | None) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def main(rates: Sequence[tuple[int, int]] = ((100_000, 5), (200_000, 2))) -> int:
    """`rates`: (offered events/s, runs) pairs; runs of every tool are interleaved."""
    if os.geteuid() != 0:
        print("bench e2e: needs root (loads eBPF programs)", file=sys.stderr)
        return 1
    found = tools()
    # Warm the build cache: the client compiles in-tree gadgets on first use.
    subprocess.run(ours("json")(os.getpid())[:6] + ["--timeout", "0.1"], cwd=ROOT, env=env(),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    idle = {tool: run_one(tool, argv, 1, idle=True).cpu for tool, argv in found.items()}
    results: list[Result] = []
    for rate, runs in rates:
        for _ in range(runs):
            for tool, argv in found.items():
                r = run_one(tool, argv, rate)
                r.idle_cpu = idle[tool]
                results.append(r)
    print(f"\n## End to end: whole process tree vs opensnoop (open() storm, {DURATION:.0f} s "
          f"per run, {os.cpu_count()} CPUs)\n")
    print("fixed cost (same run, no storm): " + ", ".join(
        f"{tool} {cpu:.2f} s CPU" for tool, cpu in idle.items()) + "\n")
    print(table(results, max(n for _r, n in rates)))
    late = [r for r in results if not r.ready]
    for r in late:
        print(f"{r.tool} at {r.rate}: no probe seen within {READY_LIMIT:.0f} s", file=sys.stderr)
    if "opensnoop" not in found:
        print("\n(opensnoop not installed: apt-get install libbpf-tools for the baseline)")
    return 1 if late else 0


if __name__ == "__main__":
    sys.exit(main())

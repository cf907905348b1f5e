"""Runner throughput: our node runner vs libbpf-tools' opensnoop on the same open() storm.

For each offered rate, a storm process (tests/bench/storm.py) runs in its own mount namespace;
each tracer is filtered to the storm's pid in the kernel (`--param pid=` for ours, `-p` for
opensnoop), writes to a pipe this process drains and counts, and its CPU time comes from
wait4()'s rusage. Printed: offered and achieved rate, % delivered, CPU us per delivered event,
and the ratio of our CPU per event to opensnoop's (the baseline measured in the same run).
"Steady" subtracts each tool's fixed cost (start-up, loading, idle polling), measured in the
same run by tracing an idle process for the same wall time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
STORM = HERE / "storm.py"
DURATION = 3.0
START_DELAY = 2.0


@dataclass
class Result:
    tool: str
    rate: int
    offered: float
    delivered: int
    cpu: float
    idle_cpu: float = 0.0  # the same tool over the same time with no storm: start-up and polling

    @property
    def steady_us_per_event(self) -> float:
        busy = max(0.0, self.cpu - self.idle_cpu)
        return 1e6 * busy / self.delivered if self.delivered else float("inf")

    @property
    def pct(self) -> float:
        return 100.0 * self.delivered / self.offered if self.offered else 0.0

    @property
    def us_per_event(self) -> float:
        return 1e6 * self.cpu / self.delivered if self.delivered else float("inf")


def _count_lines(stream, marker: bytes | None, out: list[int]) -> None:
    n, rest = 0, b""
    while True:
        chunk = stream.read1(1 << 16)
        if not chunk:
            break
        data = rest + chunk
        lines = data.split(b"\n")
        rest = lines.pop()
        n += sum(1 for ln in lines if marker is None or marker in ln)
    out.append(n)


def _run(tool: str, argv_for_pid, rate: int, marker: bytes | None, idle: bool = False) -> Result:
    count = 0 if idle else int(rate * DURATION)
    # An idle run sleeps as long as a storm lasts, so both runs cover the same wall time.
    delay = START_DELAY + (DURATION if idle else 0.0)
    storm = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                              sys.executable, str(STORM), str(count), str(rate),
                              str(delay)], stderr=subprocess.PIPE)
    time.sleep(0.3)
    tracer = subprocess.Popen(argv_for_pid(storm.pid), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
    counted: list[int] = []
    reader = threading.Thread(target=_count_lines, args=(tracer.stdout, marker, counted))
    reader.start()
    _out, err = storm.communicate()
    time.sleep(1.0)  # let the tracer drain
    tracer.send_signal(2)
    _pid, _status, usage = os.wait4(tracer.pid, 0)
    tracer.returncode = 0
    reader.join()
    offered = count
    for line in err.decode().splitlines():
        if line.startswith("offered"):
            offered = int(line.split()[1])
    return Result(tool, rate, offered, counted[0] if counted else 0,
                  usage.ru_utime + usage.ru_stime)


def ours(built: str):
    return lambda pid: [sys.executable, "-m", "node_runner", "run", "--gadget", built,
                        "--param", f"pid={pid}", "--timeout", str(DURATION + 10)]


def opensnoop(pid: int) -> list[str]:
    return ["opensnoop", "-p", str(pid)]


def main(rates: tuple[int, ...] = (50_000, 100_000, 200_000)) -> int:
    if os.geteuid() != 0:
        print("bench: needs root (loads eBPF programs)", file=sys.stderr)
        return 1
    built = Path("build/gadgets/trace_open")
    if not (built / "program.bpf.o").is_file():
        print("bench: run `make gadgets` first", file=sys.stderr)
        return 1
    have_opensnoop = shutil.which("opensnoop") is not None
    idle = {"kubectl-gadget": _run("kubectl-gadget", ours(str(built)), 1, None, idle=True).cpu}
    if have_opensnoop:
        idle["opensnoop"] = _run("opensnoop", opensnoop, 1, None, idle=True).cpu
    results = []
    for rate in rates:
        results.append(_run("kubectl-gadget", ours(str(built)), rate, b'"type":"event"'))
        if have_opensnoop:
            # opensnoop prints one header line; the storm's own start-up opens are counted
            # by both tools alike.
            results.append(_run("opensnoop", opensnoop, rate, None))
    for r in results:
        r.idle_cpu = idle[r.tool]
    print("fixed cost (same run, no storm): " + ", ".join(
        f"{tool} {cpu:.2f} s CPU" for tool, cpu in idle.items()))
    print("| offered rate | tool | offered/s | delivered | % delivered | CPU us/event | "
          "vs opensnoop | steady us/event | vs opensnoop |")
    print("|---|---|---|---|---|---|---|---|---|")
    base = {r.rate: r for r in results if r.tool == "opensnoop"}
    for r in results:
        b = base.get(r.rate)
        ratio = f"{r.us_per_event / b.us_per_event:.2f}" if b else "n/a"
        steady = f"{r.steady_us_per_event / b.steady_us_per_event:.2f}" if b else "n/a"
        print(f"| {r.rate // 1000}k/s | {r.tool} | {r.offered / DURATION:,.0f} | "
              f"{r.delivered:,} | {min(r.pct, 100.0):.1f}% | {r.us_per_event:.2f} | {ratio} | "
              f"{r.steady_us_per_event:.2f} | {steady} |")
    if not have_opensnoop:
        print("\n(opensnoop not installed: apt-get install libbpf-tools for the baseline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

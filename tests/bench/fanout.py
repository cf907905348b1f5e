"""Cluster fan-out: the real client against 1 fake node (the baseline), 50 and 100.

Each run starts a FakeCluster with N nodes, one target pod per node (`app=x` in namespace
shop; a runtime hook gives it a `containerd://<64 hex>` id, no process), and maps the runner
image to tests/bench/synthetic_runner.py, which speaks the runner protocol without eBPF. Then
`python -m kubectl_gadget run build/gadgets/trace_exec -n shop -l app=x -o json` runs for
real: target resolution, preflight, N runner pods, N followed logs, merge, gate, JSON output.
This process reads the client's stdout:
- startup: each runner emits "tick" events (a few per second, tagged with its node) until
  every node's first event reached the client's stdout; the time from command start to the
  first and to the last node doing so is measured;
- throughput: then a go file is created and every runner writes its share of TOTAL_RECORDS
  "burst" events as fast as it can; records/s = burst records / (last - first burst record
  on stdout); the client's CPU over that window comes from /proc/<pid>/stat;
- peak RSS and total CPU come from wait4()'s rusage of the client, taken by
  rusage_launcher.py (a client forked from this big process would report our RSS as its
  peak); teardown is the time from the last record to the client's exit (it deletes every
  runner pod and waits until they are gone).
CPU use of this process (the fake API server and kubelet) and of the whole machine over the
same windows tell whether the client or the machine was the limit. The fake API server is
runs with TCP_NODELAY, as a real one does. Sizes run interleaved REPEATS times;
printed: one markdown table of medians, one column per size, and the ratios to N=1.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RUNNER = HERE / "synthetic_runner.py"
LAUNCHER = HERE / "rusage_launcher.py"
BUILT = ROOT / "build" / "gadgets" / "trace_exec"
TOTAL_RECORDS = 100_000  # burst records per run, split evenly across the nodes
TICK_RATE = 20.0  # startup events per second per runner
CLIENT_TIMEOUT = 90  # the client's --timeout (the runners end by themselves well before)
HARD_LIMIT = 180.0  # seconds before a stuck client is killed
REPEATS = 3  # runs per size; the table shows medians
BURST = b'"comm":"burst"'
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    nodes: int
    expected: int
    first_seen: dict[str, float] = field(default_factory=dict)  # node -> s since start
    burst: int = 0
    burst_first: float | None = None
    burst_last: float | None = None
    cpu_burst: float | None = None  # client CPU seconds between first and last burst record
    harness_cpu_burst: float | None = None  # this process (fake API server, kubelet), same window
    machine_busy_burst: float | None = None  # CPUs busy (all processes), same window
    machine_busy_startup: float | None = None  # CPUs busy from command start to all streaming
    exit_at: float = 0.0
    rc: int | None = None
    maxrss_kib: int = 0
    cpu_total: float = 0.0
    left_pods: int = 0
    stderr_tail: str = ""

    @property
    def all_streaming(self) -> float | None:
        return max(self.first_seen.values()) if len(self.first_seen) == self.nodes else None

    @property
    def first_streaming(self) -> float | None:
        return min(self.first_seen.values()) if self.first_seen else None

    @property
    def median_streaming(self) -> float | None:
        return statistics.median(self.first_seen.values()) if self.first_seen else None

    @property
    def window(self) -> float | None:
        if self.burst_first is None or self.burst_last is None:
            return None
        return self.burst_last - self.burst_first

    @property
    def throughput(self) -> float | None:
        w = self.window
        return (self.burst - 1) / w if w and self.burst > 1 else None

    @property
    def cpu_us_per_record(self) -> float | None:
        return 1e6 * self.cpu_burst / self.burst if self.cpu_burst and self.burst else None

    @property
    def cpu_busy(self) -> float | None:
        w = self.window
        return 100.0 * self.cpu_burst / w if w and self.cpu_burst is not None else None

    @property
    def harness_busy(self) -> float | None:
        w = self.window
        return 100.0 * self.harness_cpu_burst / w if w and self.harness_cpu_burst else None

    @property
    def machine_busy(self) -> float | None:
        return self.machine_busy_burst

    @property
    def machine_busy_start(self) -> float | None:
        return self.machine_busy_startup

    @property
    def teardown(self) -> float | None:
        return self.exit_at - self.burst_last if self.burst_last is not None else None


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot."""
    with open("/proc/stat") as f:
        values = [float(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def _busy_since(start: tuple[float, float]) -> float:
    """% of one CPU the whole machine was busy since `start` (a `_machine_cpu()` sample)."""
    busy, total = _machine_cpu()
    share = (busy - start[0]) / (total - start[1] or 1)
    return 100.0 * share * (os.cpu_count() or 1)


def _client_cpu(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


class _StdoutReader:
    """Reads the client's stdout: per-node first event, then burst records and their times."""

    def __init__(self, proc: subprocess.Popen, client: _Client, result: Result, t0: float,
                 go: Path) -> None:
        self.proc, self.client, self.result, self.t0, self.go = proc, client, result, t0, go
        self.cpu_first: float | None = None
        self.own_first, self.machine_first = 0.0, (0.0, 0.0)
        self.machine_start = _machine_cpu()
        self.thread = threading.Thread(target=self._run, name="bench-stdout", daemon=True)

    def _cpu(self) -> float | None:
        pid = self.client.pid()
        return _client_cpu(pid) if pid else None

    def _line(self, line: bytes, now: float) -> None:
        r = self.result
        if BURST in line:
            r.burst += 1
            if r.burst_first is None:
                r.burst_first = now
                self.cpu_first = self._cpu()
                self.own_first, self.machine_first = time.process_time(), _machine_cpu()
            r.burst_last = now
            if r.burst == r.expected and self.cpu_first is not None:
                cpu = self._cpu()
                r.cpu_burst = cpu - self.cpu_first if cpu is not None else None
                r.harness_cpu_burst = time.process_time() - self.own_first
                r.machine_busy_burst = _busy_since(self.machine_first)
        elif len(r.first_seen) < r.nodes and line.startswith(b"{"):
            try:
                node = json.loads(line).get("k8s", {}).get("node", "")
            except ValueError:
                return
            if node and node not in r.first_seen:
                r.first_seen[node] = now - self.t0
                if len(r.first_seen) == r.nodes:
                    self.go.touch()
                    r.machine_busy_startup = _busy_since(self.machine_start)

    def _run(self) -> None:
        rest = b""
        stream = self.proc.stdout
        assert stream is not None
        while True:
            chunk = stream.read1(1 << 16)
            if not chunk:
                break
            now = time.perf_counter()
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                self._line(line, now)


class _Client:
    """The client process, started through rusage_launcher.py (see there why)."""

    def __init__(self, usage_path: Path) -> None:
        self.usage_path = usage_path
        self._pid = 0

    def pid(self) -> int:
        if not self._pid:
            try:
                self._pid = int(Path(f"{self.usage_path}.pid").read_text())
            except (OSError, ValueError):
                return 0
        return self._pid

    def kill(self, launcher: subprocess.Popen) -> None:
        for pid in (self.pid(), launcher.pid):
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _hook(action: str, pod: dict) -> dict[str, str] | None:
    if action == "start":
        return {c["name"]: "containerd://" + secrets.token_hex(32)
                for c in pod["spec"]["containers"]}
    return None


def _schema_file(path: Path) -> None:
    from kubectl_gadget.gadget_arg import resolve_gadget
    from kubectl_gadget.session import expected_schema

    spec = resolve_gadget(str(BUILT), cluster=True).spec
    assert spec is not None
    ds, fields = next(iter(expected_schema(spec, cluster=True).items()))
    path.write_text(json.dumps({"ds": ds, "fields": fields}))


def run_once(n: int, total: int = TOTAL_RECORDS) -> Result:
    from kubectl_gadget.cluster.runner_pod import DEFAULT_IMAGE
    from tests.cluster.fakekube import FakeCluster

    per_node = total // n
    result = Result(nodes=n, expected=per_node * n)
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        work = Path(tmp)
        _schema_file(work / "schema.json")
        go = work / "go"
        nodes = [f"node-{i:02d}" for i in range(1, n + 1)]
        cluster = FakeCluster(nodes=nodes, target_runtime=_hook).start()
        try:
            cluster.map_image(DEFAULT_IMAGE, [sys.executable, str(RUNNER)], env={
                "BENCH_SCHEMA": str(work / "schema.json"), "BENCH_GO": str(go),
                "BENCH_RATE": str(TICK_RATE), "BENCH_COUNT": str(per_node)})
            cluster.create_namespace("gadget", privileged=True)
            for i, node in enumerate(nodes, 1):
                cluster.create_target_pod(f"x-{i:02d}", "shop", labels={"app": "x"}, node=node,
                                          owner=("ReplicaSet", "x-5d8f9"))
            _run_client(cluster, result, go, work)
            result.left_pods = len(cluster.pods("gadget"))
        finally:
            cluster.stop(check=True)
    return result


def _run_client(cluster, result: Result, go: Path, work: Path) -> None:
    argv = [sys.executable, "-m", "kubectl_gadget", "run", str(BUILT), "-n", "shop",
            "-l", "app=x", "--kubeconfig", str(cluster.kubeconfig_path), "-o", "json",
            "--timeout", str(CLIENT_TIMEOUT)]
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    client = _Client(work / "usage.json")
    with open(work / "stderr", "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(LAUNCHER), str(client.usage_path), "--",
                                 *argv], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err)
    reader = _StdoutReader(proc, client, result, t0, go)
    reader.thread.start()
    watchdog = threading.Timer(HARD_LIMIT, client.kill, args=(proc,))
    watchdog.start()
    try:
        proc.wait()
    finally:
        watchdog.cancel()
    result.exit_at = time.perf_counter()
    reader.thread.join(10)
    if proc.stdout is not None:
        proc.stdout.close()
    result.stderr_tail = (work / "stderr").read_text(errors="replace")[-2000:]
    try:
        usage = json.loads(client.usage_path.read_text())
    except (OSError, ValueError):
        return  # the launcher was killed: rc stays None
    result.rc, result.maxrss_kib, result.cpu_total = (usage["exit_code"], usage["maxrss_kib"],
                                                      usage["cpu"])
    if result.cpu_burst is None and reader.cpu_first is not None:
        result.cpu_burst = result.cpu_total - reader.cpu_first  # not every record arrived


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _ratio(a: float | None, b: float | None) -> str:
    return f"{b / a:.2f}" if a and b is not None else "n/a"


def table(runs: dict[int, list[Result]]) -> str:
    """Medians over the repeats, per metric; one column per size, ratios against the first."""
    rows = [
        ("time to first node streaming (s)", "first_streaming", ".2f"),
        ("time to median node streaming (s)", "median_streaming", ".2f"),
        ("time to all nodes streaming (s)", "all_streaming", ".2f"),
        ("machine CPU busy until all streaming (% of a core)", "machine_busy_start", ".0f"),
        ("merge throughput (records/s)", "throughput", ",.0f"),
        ("client CPU per record (us)", "cpu_us_per_record", ".1f"),
        ("client CPU busy during burst (% of a core)", "cpu_busy", ".0f"),
        ("harness CPU busy during burst (% of a core)", "harness_busy", ".0f"),
        ("machine CPU busy during burst (% of a core)", "machine_busy", ".0f"),
        ("client peak RSS (MiB)", "rss_mib", ".1f"),
        ("client CPU, whole run (s)", "cpu_total", ".2f"),
        ("teardown: last record to client exit (s)", "teardown", ".2f"),
    ]
    sizes = list(runs)
    first = sizes[0]
    repeats = len(runs[first])
    head = " | ".join(f"N={n}" for n in sizes)
    ratios = " | ".join(f"N={n}/N={first}" for n in sizes[1:])
    out = [f"| metric (median of {repeats}) | {head} | {ratios} |",
           "|---|" + "---|" * (2 * len(sizes) - 1)]
    for label, attr, spec in rows:
        values = [_median(runs[n], attr) for n in sizes]
        cells = " | ".join(_fmt(v, spec) for v in values)
        rel = " | ".join(_ratio(values[0], v) for v in values[1:])
        out.append(f"| {label} | {cells} | {rel} |")
    pad = " |" * (len(sizes) - 1)
    out.append("| burst records delivered, all runs | "
               + " | ".join(_delivered(runs[n]) for n in sizes) + pad)
    out.append("| client exit codes; runner pods left | "
               + " | ".join(_ends(runs[n]) for n in sizes) + pad)
    return "\n".join(out)


def _median(results: list[Result], attr: str) -> float | None:
    values = [v for r in results if (v := _value(r, attr)) is not None]
    return statistics.median(values) if values else None


def _delivered(results: list[Result]) -> str:
    return f"{sum(r.burst for r in results):,}/{sum(r.expected for r in results):,}"


def _ends(results: list[Result]) -> str:
    return f"{','.join(str(r.rc) for r in results)}; {sum(r.left_pods for r in results)}"


def _value(r: Result, attr: str) -> float | None:
    if attr == "rss_mib":
        return r.maxrss_kib / 1024 if r.maxrss_kib else None
    return getattr(r, attr)


def _ok(r: Result) -> bool:
    return (r.rc == 0 and r.burst == r.expected and r.left_pods == 0
            and r.all_streaming is not None)


def main(sizes: tuple[int, ...] = (1, 50, 100), repeats: int = REPEATS) -> int:
    if not (BUILT / "program.bpf.o").is_file():
        print("bench fanout: run `make gadgets` first (needs build/gadgets/trace_exec)",
              file=sys.stderr)
        return 1
    print(f"\n## Cluster fan-out (fake API server + process-kubelet, synthetic runners; "
          f"{TOTAL_RECORDS:,} burst records per run, -o json, {os.cpu_count()} CPUs)\n",
          flush=True)
    runs: dict[int, list[Result]] = {n: [] for n in sizes}
    for _ in range(repeats):  # interleaved, so a slow spell of the machine hits both sizes
        for n in sizes:
            runs[n].append(run_once(n))
    print(table(runs))
    bad = [r for rs in runs.values() for r in rs if not _ok(r)]
    for r in bad:
        print(f"\nN={r.nodes}: run incomplete (exit {r.rc}, {len(r.first_seen)}/{r.nodes} "
              f"nodes streaming, {r.burst}/{r.expected} records, {r.left_pods} pods left); "
              f"client stderr tail:\n{r.stderr_tail}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    # `python -m tests.bench.fanout [REPEATS [N1 N2 ...]]`
    nums = [int(a) for a in sys.argv[1:]]
    sys.exit(main(tuple(nums[1:]) or (1, 50, 100), nums[0] if nums else REPEATS))

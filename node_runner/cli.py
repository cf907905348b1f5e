"""`node-runner`: command-line entry point of the runner (local process or runner pod).

Parses arguments into a frozen `RunOptions` and hands over to `run.run`; argument errors are
reported as a protocol `error` record too (the client reads stdout, not our usage text).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time

from node_runner import __version__
from node_runner.errors import RunnerError, UsageError
from node_runner.image_args import add_image_arguments, resolve_gadget_arg
from node_runner.protocol import LineWriter, error_record
from node_runner.run import RunOptions, run
from node_runner.runtime_state import RuntimePaths

EXAMPLES = """examples:
  node-runner run --gadget build/gadgets/trace_open --param failed=true --timeout 5
  node-runner run --gadget build/gadgets/trace_exec --container-name web --node worker-1
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="node-runner", description="Load one gadget on this node and print its "
                "records as JSON lines (docs/protocol.md).", epilog=EXAMPLES,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"node-runner {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a gadget", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--gadget", required=True,
                   help="built gadget directory (program.bpf.o) or gadget image reference")
    r.add_argument("--gadget-ref", default="", help="reference shown in the hello record")
    r.add_argument("--gadget-digest", default="")
    r.add_argument("--node", default=os.environ.get("NODE_NAME") or os.uname().nodename)
    r.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    r.add_argument("--container-id", action="append", default=[])
    r.add_argument("--container-name", action="append", default=[])
    r.add_argument("--mntns", action="append", type=int, default=[],
                   help="trace only this mount namespace id (repeatable)")
    r.add_argument("--k8s-metadata", default="",
                   help="JSON object: container id -> {namespace, pod, container, labels, ...}")
    r.add_argument("--cluster", action="store_true", help="enrich for a cluster run")
    r.add_argument("--follow-namespace", action="append", default=[], metavar="NS",
                   help="also trace containers of this Kubernetes namespace that start later")
    r.add_argument("--follow-all", action="store_true",
                   help="also trace every container that starts later")
    r.add_argument("--timeout", type=float, default=None, help="stop after N seconds")
    r.add_argument("--deadline", type=float, default=None,
                   help="absolute Unix time at which to stop whatever happens")
    r.add_argument("--map-fetch-interval", type=float, default=None, metavar="SECONDS",
                   help="array datasources: seconds between fetches (default 1; a snapshot "
                   "gadget fetches once unless this is given)")
    r.add_argument("--map-fetch-count", type=int, default=0, metavar="N",
                   help="array datasources: end the run after N fetches (0: until stopped)")
    r.add_argument("--nested-data", action="store_true",
                   help="nest event data by dotted names as `-o json` prints it, when every "
                   "datasource is a stream whose own fields have no dots (hello says so)")
    r.add_argument("--sampling-frequency", type=int, default=None, metavar="HZ",
                   help="perf_event sampling programs: samples per second on each CPU "
                   "(default: the gadget.yaml sampler frequency, else 49)")
    r.add_argument("--tc-attach", choices=("auto", "tcx", "qdisc"), default="auto",
                   help="tc programs: tcx links (Linux 6.6+, detached by the kernel when the "
                   "runner exits), filters on clsact qdiscs, or auto: tcx where the kernel "
                   "has it (default)")
    r.add_argument("--proc-root", default="/proc")
    r.add_argument("--host-root", default="", help="prefix of the host's runtime state dirs")
    r.add_argument("--no-prepare-host", action="store_true",
                   help="do not check privileges or mount tracefs/bpffs")
    r.add_argument("--verbose", action="store_true", help="include the verifier log on errors")
    r.add_argument("--stop-on-stdin-eof", action="store_true",
                   help="stop as on SIGTERM when stdin ends: a parent that holds the other end "
                   "of a pipe dies, the run ends (even for a gadget that prints nothing)")
    add_image_arguments(r)
    return p


def _options(ns: argparse.Namespace) -> RunOptions:
    params = {}
    for item in ns.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {item!r}: expected KEY=VALUE")
        params[key] = value
    metadata = {}
    if ns.k8s_metadata:
        try:
            metadata = json.loads(ns.k8s_metadata)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--k8s-metadata: not JSON: {exc}") from None
    if ns.timeout is not None and ns.timeout <= 0:
        raise UsageError("--timeout must be positive")
    if ns.deadline is not None and ns.deadline <= time.time():
        raise UsageError("--deadline is in the past")
    if ns.map_fetch_interval is not None and ns.map_fetch_interval <= 0:
        raise UsageError("--map-fetch-interval must be positive")
    if ns.map_fetch_count < 0:
        raise UsageError("--map-fetch-count must be 0 or more")
    if ns.sampling_frequency is not None and not 1 <= ns.sampling_frequency <= 100000:
        raise UsageError("--sampling-frequency must be between 1 and 100000")
    gadget, gadget_ref, gadget_digest = resolve_gadget_arg(ns)
    return RunOptions(
        gadget=gadget, gadget_ref=gadget_ref, gadget_digest=gadget_digest,
        node=ns.node, params=params, container_ids=tuple(ns.container_id),
        container_names=tuple(ns.container_name), mntns_ids=tuple(ns.mntns),
        k8s_metadata=metadata, cluster=ns.cluster,
        follow_namespaces=tuple(ns.follow_namespace), follow_all=ns.follow_all,
        timeout=ns.timeout, deadline=ns.deadline,
        proc_root=ns.proc_root,
        runtime_paths=RuntimePaths.under(ns.host_root) if ns.host_root else RuntimePaths(),
        host_root=ns.host_root,
        prepare_host=not ns.no_prepare_host, verbose=ns.verbose,
        map_fetch_interval=ns.map_fetch_interval, map_fetch_count=ns.map_fetch_count,
        sampling_frequency=ns.sampling_frequency, nested_data=ns.nested_data,
        tc_attach=ns.tc_attach)


def _stop_on_stdin_eof() -> None:
    """SIGTERM to ourselves once stdin ends: the run stops and drains as on any stop."""

    def watch() -> None:
        stdin = sys.stdin.buffer
        while stdin.read(4096):
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="stdin-eof", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    try:
        ns = _parser().parse_args(argv)
        opts = _options(ns)
    except RunnerError as exc:  # usage errors, and gadget images refused or not found
        print(f"node-runner: {exc.message}", file=sys.stderr)
        LineWriter(sys.stdout.buffer).record(error_record(exc.code, exc.message))
        return exc.exit_code
    if ns.stop_on_stdin_eof:
        _stop_on_stdin_eof()
    return run(opts)


if __name__ == "__main__":
    sys.exit(main())

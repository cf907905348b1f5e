"""What `kubectl gadget run` does once its flags are parsed: resolve, prepare, start, wait.

One job: turn a parsed `RunRequest` into a run, on this host (`--local`, one runner process) or
on a cluster (one runner pod per node), and return its exit code. The gadget is resolved and
its params and the expected schema are checked before any runner starts, so a typo costs
nothing. The command line (`cli`) only parses flags into the request and calls `launch`.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kubectl_gadget.array_flags import ArrayFlags, check_array_flags, check_sort_fields
from kubectl_gadget.errors import UsageError
from kubectl_gadget.gadget_arg import ResolvedGadget, resolve_gadget
from kubectl_gadget.image.run_flags import ImageRunFlags, precheck
from kubectl_gadget.local import LocalNode
from kubectl_gadget.params import parse_param_flags, parse_param_options, runner_param_args
from kubectl_gadget.pipeline import Operators, Pipeline
from kubectl_gadget.session import Session, expected_schema, stderr_diag
from node_runner.gadget.spec import GadgetSpec


@dataclass
class RunRequest:
    """The parsed flags of one `run` (cluster: the cluster and runner pod options)."""

    gadget: str
    local: bool
    operators: Operators
    namespace: str | None = None
    all_namespaces: bool = False
    selector: str = ""
    podname: str = ""
    container_names: tuple[str, ...] = ()
    container_ids: tuple[str, ...] = ()
    nodes: tuple[str, ...] = ()
    timeout: float | None = None
    verbose: bool = False
    param_args: Sequence[str] = ()  # the gadget's params, as given (--name value ...)
    param_options: Sequence[str] = ()  # --param NAME=VALUE
    fail_on_lost: bool = False
    run_flags: Sequence[str] = ()  # the flags `run` itself knows, for "did you mean"
    cluster: dict[str, Any] = field(default_factory=dict)


def check_request(req: RunRequest) -> None:
    """Usage errors that need no gadget: flags that contradict each other."""
    if req.gadget.startswith("-"):  # an unknown flag before GADGET took GADGET's place
        flag = req.gadget.split("=", 1)[0]
        close = difflib.get_close_matches(flag, list(req.run_flags), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UsageError(f"unknown flag {flag}{hint}; GADGET is a name, a directory or an "
                         "image reference")
    if req.timeout is not None and req.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    if not req.local and req.container_ids:
        raise UsageError("--container-id is for --local; on a cluster select pods with "
                         "-n/-l/-p and containers with -c")
    if req.local and (req.namespace or req.all_namespaces or req.selector or req.podname
                      or req.nodes):
        raise UsageError("-n, -A, -l, -p and --node select pods of a cluster; with --local "
                         "use -c/--containername or --container-id")


def launch(req: RunRequest, make_pipeline: Callable[[Operators], Pipeline] | None = None) -> int:
    """Run the gadget as requested; the exit code (README, "Exit codes"). The pipeline prints
    to stdout and stderr, unless `make_pipeline` builds another (the Python API's)."""
    check_request(req)
    img = ImageRunFlags.pop(req.cluster)
    arrays = ArrayFlags.pop(req.cluster)
    resolved = resolve_gadget(req.gadget, cluster=not req.local)
    spec = resolved.spec or precheck(resolved.runner_gadget, img, req.local)
    params = parse_param_flags(list(req.param_args), spec, req.run_flags)
    params.update(parse_param_options(req.param_options, spec))
    ops = replace(req.operators, map_fetch_interval=arrays.interval)
    schemas = expected_schema(spec, cluster=not req.local) if spec is not None else {}
    if spec is not None:
        check_array_flags(spec, _array_only(req.operators) + arrays.given)
        ops = replace(ops, sort_fields=check_sort_fields(ops.sort, spec, schemas))
    pipeline = Pipeline(ops, sys.stdout, stderr_diag) if make_pipeline is None else \
        make_pipeline(ops)
    if spec is not None and arrays.interval is None and _snapshot_only(spec):
        pipeline.view.interval = None  # one table, then the run ends: no interval to show
    owners = None
    if not req.local:  # endpoint addresses -> pods/services, followed once a datasource asks
        from kubectl_gadget.cluster.owners import EndpointOwners
        owners = pipeline.owners = EndpointOwners(pipeline.diag)
    try:
        if spec is not None:
            for ds in spec.datasources:
                pipeline.prepare(ds.name, schemas[ds.name], ds.kind, ds.annotations)
        args = runner_param_args(params) + (["--verbose"] if req.verbose else [])
        args += arrays.runner_args()
        args += img.runner_args()  # the runner enforces image policy, even for directories
        if req.local:
            code = _run_local(req, resolved.runner_gadget, args, pipeline)
            if req.operators.mode == "none":  # nothing on stdout: say what was seen (cluster
                _local_summary(pipeline)       # runs end with their summary anyway)
        else:
            code = _run_cluster(req, resolved, args, pipeline)
    finally:
        if owners is not None:
            owners.stop()
    return _fail_on_lost(req, pipeline, code)


def _fail_on_lost(req: RunRequest, pipeline: Pipeline, code: int) -> int:
    """With --fail-on-lost, a run that lost events exits 1 (for CI scripts)."""
    lost = sum(state.lost for state in pipeline.nodes.values())
    if req.fail_on_lost and lost and code == 0:
        pipeline.diag(f"{lost} event(s) lost: exit code 1 (--fail-on-lost)")
        return 1
    return code


def _local_summary(pipeline: Pipeline) -> None:
    for name, state in pipeline.nodes.items():
        lost = f", {state.lost} lost" if state.lost else ""
        pipeline.diag(f"node {name}: {state.events} event(s){lost}")


def _snapshot_only(spec: GadgetSpec) -> bool:
    return all(ds.source is not None and ds.source.kind == "iter" for ds in spec.datasources)


def _array_only(ops: Operators) -> list[str]:
    return (["--sort"] if ops.sort else []) + (["--max-entries"] if ops.max_entries else [])


def _run_local(req: RunRequest, gadget: str, args: list[str], pipeline: Pipeline) -> int:
    for name in req.container_names:
        args += ["--container-name", name]
    for cid in req.container_ids:
        args += ["--container-id", cid]
    if req.timeout:
        args += ["--timeout", str(req.timeout)]
    if pipeline.can_forward():  # -o json of every field: the runner nests, the client forwards
        pipeline.forward = True
        args += ["--nested-data"]
    node = LocalNode(os.uname().nodename, gadget, args)
    return Session([node], pipeline, timeout=req.timeout, diag=pipeline.diag).run()


def _run_cluster(req: RunRequest, resolved: ResolvedGadget, args: list[str],
                 pipeline: Pipeline) -> int:
    # Cluster runs only: the Kubernetes client costs ~0.2 s of start-up that --local never pays.
    from kubectl_gadget.cluster.cli import runner_settings
    from kubectl_gadget.cluster.gadget_files import GadgetFiles
    from kubectl_gadget.cluster.kube import Kube, KubeConfig
    from kubectl_gadget.cluster.owners import EndpointOwners
    from kubectl_gadget.cluster.session import ClusterRun, run_cluster
    from kubectl_gadget.cluster.targets import Selection

    files = None
    if resolved.local_dir:  # no node has the client's path: its files go in a ConfigMap
        files = GadgetFiles.from_dir(req.gadget, resolved.runner_gadget,
                                     resolved.spec.name if resolved.spec else None)
    if pipeline.can_forward():  # as for --local; the target gate reads two keys of each event
        pipeline.forward = True
        args += ["--nested-data"]
    cluster = req.cluster
    kube = Kube(KubeConfig.pop(cluster))
    if isinstance(pipeline.owners, EndpointOwners):
        pipeline.owners.connect(kube)
    sel = Selection(None if req.all_namespaces else (req.namespace or kube.namespace),
                    req.selector, req.podname, req.container_names, req.nodes)
    plan = ClusterRun(sel, runner_settings(cluster, req.timeout),
                      files.runner_path if files else resolved.runner_gadget, tuple(args),
                      req.timeout, float(cluster["startup_timeout"]), verbose=req.verbose,
                      files=files)
    return run_cluster(kube, plan, pipeline, diag=pipeline.diag)

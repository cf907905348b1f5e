"""A cluster run: resolve targets, preflight, one runner pod per node, merge, summarize.

This wires the cluster stages (targets, runner_pod, cluster) into the generic `Session`. Order
matters and is the point of this module: every input is checked and the targets are resolved
(read-only) before anything is created; a server-side dry run of one runner pod turns a Pod
Security or RBAC refusal into one message naming the label or role to apply, before any pod
exists; and whatever happens after the first pod is created, every pod of the session is
deleted before returning (the session watch confirms they are gone). A local gadget
directory's ConfigMap (gadget_files) is checked the same way, created before the pods and
deleted after them, on every way out (Ctrl-C, errors).
"""

from __future__ import annotations

import secrets
import sys
import time
from dataclasses import dataclass, field

from kubectl_gadget.cluster import gadget_files
from kubectl_gadget.cluster.follow import Follower, TargetGate
from kubectl_gadget.cluster.kube import Forbidden, Kube
from kubectl_gadget.cluster.liveness import Renewer
from kubectl_gadget.cluster.pods import PodNode, SessionWatch
from kubectl_gadget.cluster.progress import StatusLine
from kubectl_gadget.cluster.runner_pod import RunnerSettings, metadata_arg, runner_pod
from kubectl_gadget.cluster.targets import (
    NO_TARGETS,
    NodePlan,
    Selection,
    TargetPlan,
    resolve_targets,
)
from kubectl_gadget.errors import GadgetError
from kubectl_gadget.pipeline import Pipeline
from kubectl_gadget.session import Session, stderr_diag

PSA_LABEL = "pod-security.kubernetes.io/enforce"


@dataclass(frozen=True)
class ClusterRun:
    selection: Selection
    settings: RunnerSettings
    gadget: str  # what the runners get as --gadget
    runner_args: tuple[str, ...] = ()  # params, image and verbosity flags
    timeout: float | None = None
    startup_timeout: float = 120.0
    session: str = field(default_factory=lambda: secrets.token_hex(4))
    verbose: bool = False  # -v: every node without a runner on its own line
    files: gadget_files.GadgetFiles | None = None  # a local gadget directory, shipped

    @property
    def shown_gadget(self) -> str:
        """The gadget as `list` shows it (a shipped directory by its name)."""
        return self.files.name if self.files is not None else self.gadget

    def volumes(self) -> tuple[tuple[dict, dict], ...]:
        if self.files is None:
            return ()
        return ((self.files.volume(self.session), gadget_files.volume_mount()),)

    def pod(self, plan: NodePlan, now: float) -> dict:
        return runner_pod(self.settings, self.session, plan.node, _node_args(plan, self),
                          self.shown_gadget, now, self.volumes())


def namespace_help(ns: str) -> str:
    return (f"kubectl create namespace {ns} && "
            f"kubectl label namespace {ns} {PSA_LABEL}=privileged")


RBAC_HELP = ("the user needs, in that namespace: pods create/get/list/watch/patch/delete and "
             "pods/log get (and configmaps create/delete for a local gadget directory); and "
             "cluster-wide: nodes list, pods list (see README, 'What the cluster needs')")


def preflight(kube: Kube, run: ClusterRun, sample: dict) -> None:
    ns = run.settings.namespace
    found = kube.get_namespace(ns)
    if found is None:
        raise GadgetError(f"namespace {ns} does not exist; create it with: {namespace_help(ns)}")
    level = (found.get("metadata", {}).get("labels") or {}).get(PSA_LABEL)
    if level and level != "privileged":
        raise GadgetError(f"namespace {ns} enforces Pod Security level {level!r}, which refuses "
                          f"runner pods; run: kubectl label --overwrite namespace {ns} "
                          f"{PSA_LABEL}=privileged")
    try:
        kube.create_pod(ns, sample, dry_run=True)
    except Forbidden as exc:
        text = str(exc)
        if "PodSecurity" in text or "violates" in text:
            raise GadgetError(f"{text}\nfix: kubectl label --overwrite namespace {ns} "
                              f"{PSA_LABEL}=privileged") from None
        raise GadgetError(f"{text}\nfix: {RBAC_HELP}") from None


def _node_args(plan: NodePlan, run: ClusterRun) -> list[str]:
    args = ["--gadget", run.gadget, "--node", plan.node, "--cluster", *run.runner_args]
    if run.timeout:
        args += ["--timeout", str(run.timeout)]
    if plan.whole_host:
        return args
    if run.selection.namespace is None:
        args.append("--follow-all")
    else:
        args += ["--follow-namespace", run.selection.namespace]
    meta = {}
    for c in plan.containers:
        args += ["--container-id", c.container_id]
        meta[c.container_id] = c.metadata()
    return [*args, "--k8s-metadata", metadata_arg(meta)]


def describe_plan(plan: TargetPlan, diag=stderr_diag, verbose: bool = False) -> None:
    """Which nodes get a runner and why not the others; nodes that merely have no target
    pods (most of a big cluster) are one line unless `verbose`."""
    for node in plan.nodes:
        what = "whole host" if node.whole_host else \
            ", ".join(sorted({f"{c.namespace}/{c.pod}" for c in node.containers}))
        diag(f"node {node.node}: runner for {what}")
    idle = [name for name, why in plan.skipped if why == NO_TARGETS]
    for name, why in plan.skipped:
        if verbose or why != NO_TARGETS:
            diag(f"node {name}: no runner ({why})")
    if idle and not verbose:
        diag(f"{len(idle)} node(s) without target pods get no runner (-v lists them)")
    for note in plan.notes:
        diag(note)


def run_cluster(kube: Kube, run: ClusterRun, pipeline: Pipeline, diag=stderr_diag) -> int:
    status = StatusLine(sys.stderr) if diag is stderr_diag and _isatty(sys.stderr) else None
    if status is not None:
        diag = status.around(diag)
    plan = resolve_targets(kube, run.selection)
    describe_plan(plan, diag, run.verbose)
    if not plan.nodes:
        raise GadgetError("no node to run on: " + "; ".join(f"{n}: {w}" for n, w in plan.skipped))
    if run.files is not None:
        wrong = {p.node: plan.arch(p.node) for p in plan.nodes
                 if plan.arch(p.node) not in ("", run.files.arch)}
        if wrong:
            raise GadgetError(gadget_files.arch_error(run.files, wrong))
    now = time.time()
    manifests = [(p, run.pod(p, now)) for p in plan.nodes]
    preflight(kube, run, manifests[0][1])
    files = run.files.manifest(run.settings, run.session, now) if run.files else None
    if run.files is not None and files is not None:
        gadget_files.preflight(kube, run.files, files)
    shipped = False
    try:
        if files is not None:
            with gadget_files.interrupts_deferred():
                kube.create_configmap(run.settings.namespace, files)
                shipped = True
        return _run_pods(kube, run, plan, manifests, pipeline, diag, status)
    finally:
        if shipped:  # after the pods: every pod of the session is gone by now
            gadget_files.remove(kube, run.settings.namespace, run.session, diag)


def _run_pods(kube: Kube, run: ClusterRun, plan: TargetPlan, manifests: list[tuple[NodePlan, dict]],
              pipeline: Pipeline, diag, status: StatusLine | None) -> int:
    watch = SessionWatch(kube, run.settings.namespace, run.session, diag)
    watch.status = status.set if status is not None else None
    watch.start()
    nodes = [PodNode(kube, watch, m, p.node, run.startup_timeout) for p, m in manifests]
    diag(f"session {run.session}: starting {len(nodes)} runner pod(s) in namespace "
         f"{run.settings.namespace}")
    session = Session(nodes, pipeline, timeout=run.timeout, diag=diag)
    session.status = status
    follower = None
    if run.selection.narrows:
        gate = TargetGate(c for p in plan.nodes for c in p.containers)
        pipeline.gate = gate

        def new_runner(p: NodePlan) -> None:
            arch = plan.arch(p.node)
            if run.files is not None and arch not in ("", run.files.arch):
                diag(f"node {p.node}: no runner: "
                     f"{gadget_files.arch_error(run.files, {p.node: arch})}")
                return
            manifest = run.pod(p, time.time())
            session.add_node(PodNode(kube, watch, manifest, p.node, run.startup_timeout))

        follower = Follower(kube, run.selection, gate, plan.eligible,
                            [p.node for p in plan.nodes], new_runner, diag)
        follower.start()
    renewer = Renewer(kube, lambda: [n for n in session.nodes if isinstance(n, PodNode)], diag)
    renewer.start()
    try:
        code = session.run()
    finally:
        renewer.stop()
        if follower is not None:
            follower.stop()
        watch.stop()
    _summary(nodes, session, pipeline, diag)
    return code


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return False


def _summary(nodes: list[PodNode], session: Session, pipeline: Pipeline, diag) -> None:
    diag("summary:")
    for node in nodes:
        _rc, how = session.results.get(node.name, (1, "unknown"))
        state = pipeline.nodes.get(node.name)
        events = state.events if state else 0
        lost = f", {state.lost} lost" if state and state.lost else ""
        lost += f", {state.bad_lines} malformed" if state and state.bad_lines else ""
        error = state.error.get("message") if state and state.error else ""
        detail = f": {error}" if error and how != "ok" else ""
        diag(f"  {node.name}: {how}{detail} ({events} events{lost})")

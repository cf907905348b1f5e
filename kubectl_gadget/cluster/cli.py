"""Cluster flags of `run`, and the `gc` and `list` commands (runner pods left or running).

`gc` only deletes what is provably ours: pods carrying our managed-by label, our component
label and a session label, whose name has our prefix. A foreign pod with a similar name or a
copied label set is kept and reported. Of our pods it deletes only orphans: sessions whose
client stopped renewing them or whose deadline passed (see `liveness`); `--all` takes live
sessions too. A shipped gadget directory's ConfigMap (same labels, component
`gadget-files`) goes when its deadline passed or no live runner pod of its session is left.
The trap avoided: a cleanup command that deletes by name pattern and takes
someone else's pod, or a running session, with it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import click

from kubectl_gadget.cluster.liveness import STALE_AFTER, age, liveness
from kubectl_gadget.cluster.runner_pod import (
    COMPONENT,
    COMPONENT_LABEL,
    DEFAULT_IMAGE,
    DEFAULT_NAMESPACE,
    FILES_COMPONENT,
    GADGET,
    MANAGED_BY,
    MANAGER,
    NODE_LABEL,
    SESSION_LABEL,
    RunnerSettings,
    configmap_name,
)
from kubectl_gadget.numflags import MAX_SECONDS, SECONDS, Count

OUR_SELECTOR = f"{MANAGED_BY}={MANAGER},{COMPONENT_LABEL}={COMPONENT}"


def request_timeout(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """kubectl's --request-timeout: `0` (none), `30`, `30s`, `2m`, `1h`; None if not given."""
    if value is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (value[:-1], units[value[-1]]) if value[-1:] in units else (value, 1)
    try:
        seconds = float(number) * unit
    except ValueError:
        seconds = float("nan")
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_SECONDS:
        raise click.BadParameter(f"{value!r} is not a duration (0, 30, 30s, 2m, 1h)", ctx, param)
    return seconds


def kube_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """kubectl's connection flags; they override the kubeconfig as they do for kubectl."""
    options = [
        click.option("--kubeconfig", default=None, envvar="KUBECONFIG",
                     help="Path to the kubeconfig (default: $KUBECONFIG, ~/.kube/config)."),
        click.option("--context", default=None, help="kubeconfig context to use."),
        click.option("--server", "-s", "server", default=None,
                     help="Address of the API server (overrides the kubeconfig)."),
        click.option("--token", default=None, help="Bearer token for the API server."),
        click.option("--as", "as_user", default=None, metavar="USER",
                     help="User to impersonate."),
        click.option("--as-group", "as_group", multiple=True, metavar="GROUP",
                     help="Group to impersonate (with --as)."),
        click.option("--request-timeout", default=None, callback=request_timeout,
                     help="Timeout of a single API request (0: none; 30s, 2m; default 30s)."),
        click.option("--insecure-skip-tls-verify", is_flag=True,
                     help="Do not check the API server's certificate (insecure)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def cluster_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("--gadget-namespace", default=DEFAULT_NAMESPACE, show_default=True,
                     help="Namespace of the runner pods (must allow privileged pods)."),
        click.option("--runner-image", default=DEFAULT_IMAGE, show_default=True,
                     help="Image of the runner pods."),
        click.option("--image-pull-policy", default="IfNotPresent", show_default=True,
                     type=click.Choice(["Always", "IfNotPresent", "Never"])),
        click.option("--image-pull-secret", "pull_secrets", multiple=True,
                     help="Secret for pulling the runner image (repeatable)."),
        click.option("--privileged", is_flag=True,
                     help="Run runners privileged instead of with a capability list."),
        click.option("--tolerate-taints/--no-tolerate-taints", default=True, show_default=True,
                     help="Let runners run on tainted nodes (e.g. control planes)."),
        click.option("--startup-timeout", type=SECONDS, default=120.0, show_default=True,
                     help="Seconds a runner pod may take to start before its node is failed."),
        click.option("--runner-deadline", type=Count(1, MAX_SECONDS), default=3600,
                     show_default=True,
                     help="Seconds after which runner pods stop by themselves, whatever "
                     "happens to this client (the pods' activeDeadlineSeconds)."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return kube_options(fn)


def runner_settings(values: dict[str, Any], timeout: float | None = None) -> RunnerSettings:
    """Runner pod settings; with --timeout the pods' deadline shrinks to what the run needs,
    so runners of a short run outlive a killed client by minutes, not by --runner-deadline."""
    deadline = int(values["runner_deadline"])
    if timeout:
        deadline = min(deadline, int(timeout + float(values["startup_timeout"]) + 60))
    return RunnerSettings(
        namespace=values["gadget_namespace"], image=values["runner_image"],
        pull_policy=values["image_pull_policy"], pull_secrets=tuple(values["pull_secrets"]),
        privileged=bool(values["privileged"]), tolerate_taints=bool(values["tolerate_taints"]),
        deadline_seconds=deadline)


def is_ours(pod: dict[str, Any]) -> bool:
    meta = pod.get("metadata", {})
    labels = meta.get("labels") or {}
    return (labels.get(MANAGED_BY) == MANAGER and labels.get(COMPONENT_LABEL) == COMPONENT
            and bool(labels.get(SESSION_LABEL))
            and str(meta.get("name", "")).startswith(f"gadget-{labels.get(SESSION_LABEL)}-"))


@click.command(epilog="""
\b
Examples:
  kubectl gadget gc --dry-run      # show leftover runner pods
  kubectl gadget gc -A             # delete them in every namespace
  kubectl gadget gc --all          # also delete the pods of sessions still running
""")
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@click.option("--all", "everything", is_flag=True,
              help="Also delete pods of live sessions (still renewed by their client).")
@click.option("--gadget-namespace", default=DEFAULT_NAMESPACE, show_default=True)
@click.option("-A", "--all-namespaces", is_flag=True, help="Look in every namespace.")
@kube_options
def gc(dry_run: bool, everything: bool, gadget_namespace: str, all_namespaces: bool,
       **kube_flags: Any) -> None:
    """Delete runner pods (and gadget ConfigMaps) left behind, by a killed client say."""
    from kubectl_gadget.cluster.kube import Kube, KubeConfig  # the Kubernetes client: ~0.2 s

    kube = Kube(KubeConfig.pop(kube_flags))
    pods = kube.list_pods(None if all_namespaces else gadget_namespace,
                          label_selector=f"{MANAGED_BY}={MANAGER}")
    found = _gc_files(kube, None if all_namespaces else gadget_namespace, pods, dry_run,
                      everything)
    for pod in pods:
        meta = pod["metadata"]
        where = f"{meta.get('namespace')}/{meta.get('name')}"
        if not is_ours(pod):
            click.echo(f"keeping {where}: labelled like ours but not a runner pod", err=True)
            continue
        alive = liveness(pod)
        if not alive.orphaned and not everything:
            click.echo(f"keeping {where}: its session is running ({alive.why}; --all to "
                       "delete it anyway)", err=True)
            continue
        found += 1
        if dry_run:
            click.echo(f"would delete {where}")
        elif kube.delete_pod(meta["namespace"], meta["name"], 0):
            click.echo(f"deleted {where}")
    if not found:
        click.echo("no leftover runner pods", err=True)


def files_orphaned(cm: dict[str, Any], pods: list[dict[str, Any]],
                   now: float | None = None) -> str:
    """Why a shipped gadget's ConfigMap is left over ("" when its session is alive): its
    deadline passed, or no live runner pod of its session remains (and it is older than a
    session needs to create them)."""
    now = time.time() if now is None else now
    meta = cm.get("metadata", {})
    session = (meta.get("labels") or {}).get(SESSION_LABEL)
    alive = liveness({"metadata": {"annotations": meta.get("annotations") or {}},
                      "status": {}}, now)
    if alive.deadline is not None and now >= alive.deadline:
        return "deadline passed"
    mine = [p for p in pods if (p["metadata"].get("labels") or {}).get(SESSION_LABEL) == session
            and p["metadata"].get("namespace") == meta.get("namespace")]
    if any(not liveness(p, now).orphaned for p in mine):
        return ""
    if not mine and alive.created is not None and now - alive.created <= STALE_AFTER:
        return ""  # its session is still creating its pods
    return "its session's runner pods are gone" if not mine else "its session is orphaned"


def _gc_files(kube: Any, namespace: str | None, pods: list[dict[str, Any]], dry_run: bool,
              everything: bool) -> int:
    """The ConfigMaps of shipped gadget directories left behind; how many were taken."""
    from kubectl_gadget.cluster.kube import Forbidden

    try:
        cms = kube.list_configmaps(namespace, label_selector=f"{MANAGED_BY}={MANAGER}")
    except Forbidden as exc:
        click.echo(f"warning: not looking for leftover gadget ConfigMaps: {exc}", err=True)
        return 0
    found = 0
    for cm in cms:
        meta = cm["metadata"]
        where = f"{meta.get('namespace')}/{meta.get('name')}"
        labels = meta.get("labels") or {}
        session = labels.get(SESSION_LABEL)
        if not (labels.get(COMPONENT_LABEL) == FILES_COMPONENT and session
                and meta.get("name") == configmap_name(session)):
            click.echo(f"keeping configmap {where}: labelled like ours but not a gadget's "
                       "files", err=True)
            continue
        why = files_orphaned(cm, pods)
        if not why and not everything:
            click.echo(f"keeping configmap {where}: its session is running (--all to delete "
                       "it anyway)", err=True)
            continue
        found += 1
        if dry_run:
            click.echo(f"would delete configmap {where}")
        elif kube.delete_configmap(meta["namespace"], meta["name"]):
            click.echo(f"deleted configmap {where}")
    return found


@click.command("list")
@click.option("--gadget-namespace", default=DEFAULT_NAMESPACE, show_default=True)
@click.option("-A", "--all-namespaces", is_flag=True, help="Look in every namespace.")
@kube_options
def list_sessions(gadget_namespace: str, all_namespaces: bool, **kube_flags: Any) -> None:
    """List running gadget sessions and their runner pods."""
    from kubectl_gadget.cluster.kube import Kube, KubeConfig  # the Kubernetes client: ~0.2 s

    kube = Kube(KubeConfig.pop(kube_flags))
    pods = [p for p in kube.list_pods(None if all_namespaces else gadget_namespace,
                                      label_selector=OUR_SELECTOR) if is_ours(p)]
    if not pods:
        click.echo("no gadget sessions", err=True)
        return
    click.echo(f"{'SESSION':10} {'NODE':20} {'PHASE':10} {'GADGET':30} {'AGE':5} "
               f"{'RENEWED':8} {'STATE':9} POD")
    now = time.time()
    for pod in sorted(pods, key=lambda p: (p["metadata"]["labels"][SESSION_LABEL],
                                           p["metadata"]["name"])):
        meta = pod["metadata"]
        notes = meta.get("annotations") or {}
        alive = liveness(pod, now)
        renewed = age(now - alive.renewed) + " ago" if alive.renewed is not None else "never"
        gadget = notes.get(GADGET, "") or "?"
        click.echo(f"{meta['labels'][SESSION_LABEL]:10} {meta['labels'].get(NODE_LABEL, ''):20} "
                   f"{pod.get('status', {}).get('phase', ''):10} {gadget:30} "
                   f"{age(now - alive.created if alive.created else None):5} {renewed:8} "
                   f"{'orphaned' if alive.orphaned else 'live':9} "
                   f"{meta['namespace']}/{meta['name']}")

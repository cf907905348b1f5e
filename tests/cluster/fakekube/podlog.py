"""``GET pods/{name}/log``: option parsing, the kubelet's container-state checks, streaming.

Errors carry the texts the kubelet sends through the API server ("is waiting to start:
ContainerCreating", "image can't be pulled", "a container name must be specified") so the
product's waiting/retry logic sees real conditions; a pod on a lost node answers 500, the way
an unreachable kubelet surfaces.
"""

from __future__ import annotations

import time
from typing import Any

from . import errors
from .context import ApiContext, Request, Response
from .logs import LogOptions, stream_log
from .routing import Route
from .timeutil import parse_rfc3339_ns

Obj = dict[str, Any]


def _options(req: Request) -> LogOptions:
    since_ns = None
    since_seconds = req.int_param("sinceSeconds")
    since_time = req.param("sinceTime")
    causes = []
    if since_seconds is not None and since_time:
        causes.append(("sinceSeconds", "FieldValueForbidden",
                       "Forbidden: at most one of sinceTime or sinceSeconds may be specified"))
    if since_seconds is not None:
        if since_seconds < 1:
            causes.append(("sinceSeconds", "FieldValueInvalid",
                           f"Invalid value: {since_seconds}: must be greater than 0"))
        since_ns = time.time_ns() - since_seconds * 1_000_000_000
    if since_time:
        try:
            since_ns = parse_rfc3339_ns(since_time)
        except ValueError:
            raise errors.bad_request(f'parsing time "{since_time}" as RFC3339: invalid') from None
    tail = req.int_param("tailLines")
    if tail is not None and tail < 0:
        causes.append(("tailLines", "FieldValueInvalid",
                       f"Invalid value: {tail}: must be greater than or equal to 0"))
    limit = req.int_param("limitBytes")
    if limit is not None and limit < 1:
        causes.append(("limitBytes", "FieldValueInvalid",
                       f"Invalid value: {limit}: must be greater than 0"))
    stream = req.param("stream") or "All"
    if stream not in ("All", "Stdout", "Stderr"):
        causes.append(("stream", "FieldValueNotSupported",
                       f'Unsupported value: "{stream}": supported values: "All", "Stderr", '
                       '"Stdout"'))
    elif stream != "All" and tail is not None:
        causes.append(("stream", "FieldValueForbidden",
                       "Forbidden: may not be specified when tailLines is specified"))
    if causes:
        raise errors.invalid("PodLogOptions", "", causes)
    return LogOptions(follow=req.flag("follow"), tail_lines=tail, since_ns=since_ns,
                      timestamps=req.flag("timestamps"), limit_bytes=limit, stream=stream)


def _pick_container(pod: Obj, wanted: str | None) -> str:
    spec = pod.get("spec") or {}
    names = [c["name"] for c in spec.get("containers") or []]
    init = [c["name"] for c in spec.get("initContainers") or []]
    name = pod["metadata"]["name"]
    if not wanted:
        default = (pod["metadata"].get("annotations") or {}).get(
            "kubectl.kubernetes.io/default-container")
        if len(names) == 1 and not init:
            return names[0]
        if default in names:
            return str(default)
        raise errors.bad_request(
            f"a container name must be specified for pod {name}, choose one of: "
            f"[{' '.join(names)}]" + (f" or one of the init containers: [{' '.join(init)}]"
                                      if init else "")
        )
    if wanted not in names + init:
        raise errors.bad_request(f"container {wanted} is not valid for pod {name}")
    return wanted


def _waiting_reason(pod: Obj, container: str) -> str:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == container:
            reason = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
            if reason in ("ErrImagePull", "ImagePullBackOff"):
                return "image can't be pulled"
            if reason:
                return reason
    return "ContainerCreating"


def handle_log(ctx: ApiContext, req: Request, route: Route) -> Response:
    assert route.name is not None
    pod = ctx.store.get("pods", route.namespace, route.name)
    if pod is None:
        raise errors.not_found("pods", route.name)
    opts = _options(req)
    container = _pick_container(pod, req.param("container"))
    name, node = pod["metadata"]["name"], (pod.get("spec") or {}).get("nodeName")
    if not node:
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    agent = ctx.agent
    if agent is not None and not agent.node_reachable(node):
        host_ip = (pod.get("status") or {}).get("hostIP", node)
        raise errors.internal(
            f'Get "https://{host_ip}:10250/containerLogs/{route.namespace}/{name}/{container}": '
            f"dial tcp {host_ip}:10250: connect: no route to host"
        )
    previous = req.flag("previous")
    log = ctx.logs.get(pod["metadata"]["uid"], container, previous)
    if log is None:
        if previous:
            raise errors.bad_request(
                f'previous terminated container "{container}" in pod "{name}" not found')
        raise errors.bad_request(f'container "{container}" in pod "{name}" is waiting to start: '
                                 f"{_waiting_reason(pod, container)}")

    def cut(sent: int) -> str | None:
        if agent is not None and not agent.node_reachable(node):
            return "abort"
        return ctx.faults.log_drop(pod, container, sent)

    chunks = stream_log(log, opts, cut, ctx.stopping.is_set)
    return Response(stream=chunks, content_type="text/plain")

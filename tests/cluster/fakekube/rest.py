"""Object verbs: get, list, create, update, patch, delete, deletecollection, access reviews.

Each handler follows the real request order — authorize, decode, namespace lifecycle,
default, validate, admit, store — so the *first* error a client sees is the one a real server
would send. Pods bound to a node the kubelet manages are deleted gracefully (deletionTimestamp
first, the kubelet removes them once their processes are gone); unbound or finished pods go
at once, as the real pod strategy decides.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from . import configmaps, errors, protobuf, services, validation
from .admission import terminating_namespace
from .context import ApiContext, Request, Response
from .patching import PATCH_TYPES, apply_patch
from .resources import CORE, SELF_SAR, Resource
from .routing import Route
from .schema import apply_field_validation
from .selectors import fields_match, labels_match, parse_field_selector, parse_label_selector
from .storage import clone
from .tables import to_table, wants_table
from .timeutil import rfc3339

Obj = dict[str, Any]
JSON_TYPES = ("application/json", "application/yaml")
_NAMESPACED = tuple(plural for plural, res in CORE.items() if res.namespaced)


def typed(resource: Resource, obj: Obj) -> Obj:
    obj = dict(obj)
    obj["kind"], obj["apiVersion"] = resource.kind, resource.api_version
    return obj


def object_filter(req: Request, resource: Resource) -> Callable[[Obj], bool]:
    """Build the label/field selector predicate once (400 on malformed selectors)."""
    labels = parse_label_selector(req.param("labelSelector"))
    fields = parse_field_selector(req.param("fieldSelector"), resource.fields)

    def keep(obj: Obj) -> bool:
        return labels_match(labels, obj["metadata"].get("labels")) and fields_match(
            fields, obj, resource.fields
        )

    return keep


def _namespace_for_write(ctx: ApiContext, route: Route, name: str) -> Obj | None:
    assert route.resource is not None
    if not route.resource.namespaced:
        return None
    ns = ctx.store.get("namespaces", "", route.namespace)
    if ns is None:
        raise errors.not_found("namespaces", route.namespace)
    if ns.get("status", {}).get("phase") == "Terminating":
        raise terminating_namespace(route.resource.plural, name, route.namespace)
    return ns


def _decode(req: Request, resource: Resource, warnings: list[str] | None = None) -> Obj:
    # Like the real server, an absent Content-Type means the first supported type (JSON):
    # the official Python client sends none on POST.
    if req.content_type() == protobuf.MEDIA_TYPE:
        decoded = protobuf.decode(req.body)
        if decoded is None:
            raise errors.unsupported_media_type(req.content_type())
        return decoded
    if req.content_type() and req.content_type() not in JSON_TYPES:
        raise errors.unsupported_media_type(req.content_type())
    if req.content_type() == "application/yaml":
        import yaml

        obj = yaml.safe_load(req.body)
    else:
        obj = req.json_body(resource.kind)
    validation.check_types(resource.kind, obj)
    found = apply_field_validation(resource.kind, obj, req.param("fieldValidation"))
    if warnings is not None:
        warnings.extend(found)
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    if (kind and kind != resource.kind) or (api_version and api_version != resource.api_version):
        raise errors.bad_request(
            f"the object provided is unrecognized (must be of type {resource.kind}): "
            f"{kind} in version {api_version!r} is not {resource.kind}"
        )
    obj.setdefault("metadata", {})
    return obj


def _dry_run(req: Request) -> bool:
    return req.param("dryRun") == "All"


def handle_get(ctx: ApiContext, req: Request, route: Route) -> Response:
    assert route.resource is not None and route.name is not None
    obj = ctx.store.get(route.resource.plural, route.namespace, route.name)
    if obj is None:
        raise errors.not_found(route.resource.plural, route.name)
    if wants_table(req.headers.get("Accept")):
        return Response(body=to_table(route.resource.plural, [obj], {"resourceVersion": ""}))
    return Response(body=typed(route.resource, obj))


def handle_list(ctx: ApiContext, req: Request, route: Route) -> Response:
    resource = route.resource
    assert resource is not None
    keep = object_filter(req, resource)
    items, rv = ctx.store.list(resource.plural, route.namespace if resource.namespaced and
                               route.namespace else None)
    items = [item for item in items if keep(item)]
    meta: Obj = {"resourceVersion": str(rv)}
    start = req.param("continue")
    if start:
        try:
            skip_ns, _, skip_name = bytes.fromhex(start).decode().partition("/")
        except ValueError:
            raise errors.bad_request("continue key is not valid: illegal base64 data") from None
        items = [i for i in items
                 if (i["metadata"].get("namespace", ""), i["metadata"]["name"])
                 > (skip_ns, skip_name)]
    limit = req.int_param("limit")
    if limit and limit > 0 and len(items) > limit:
        last = items[limit - 1]["metadata"]
        meta["continue"] = f"{last.get('namespace', '')}/{last['name']}".encode().hex()
        meta["remainingItemCount"] = len(items) - limit
        items = items[:limit]
    if wants_table(req.headers.get("Accept")):
        return Response(body=to_table(resource.plural, items, meta))
    return Response(body={"kind": resource.list_kind, "apiVersion": resource.api_version,
                          "metadata": meta, "items": items})


def handle_create(ctx: ApiContext, req: Request, route: Route) -> Response:
    resource = route.resource
    assert resource is not None
    if resource is SELF_SAR:
        return _access_review(ctx, req)
    warnings: list[str] = []
    obj = _decode(req, resource, warnings)
    meta = obj["metadata"]
    body_ns = meta.get("namespace")
    if resource.namespaced:
        if body_ns and body_ns != route.namespace:
            raise errors.bad_request("the namespace of the provided object does not match the "
                                     "namespace sent on the request")
        meta["namespace"] = route.namespace
    else:
        meta.pop("namespace", None)
    for server_field in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp",
                         "deletionGracePeriodSeconds", "generation"):
        meta.pop(server_field, None)
    validation.assign_name(obj)
    namespace = _namespace_for_write(ctx, route, meta.get("name", ""))
    obj["kind"], obj["apiVersion"] = resource.kind, resource.api_version
    if resource.plural == "pods":
        validation.default_pod(obj)
        validation.validate_pod(obj)
        assert namespace is not None
        ctx.admission.admit_pod(obj, namespace)
    elif resource.plural == "namespaces":
        validation.validate_namespace(obj)
        validation.default_namespace(obj)
    elif resource.plural == "configmaps":
        configmaps.validate_configmap(obj)
    else:
        validation.validate_generic(resource.kind, obj)
    if resource.plural == "services":
        services.default_service(obj)
        services.validate_service(obj)
    headers = {"Warning": ", ".join(warnings)} if warnings else {}
    with ctx.store.lock:  # a ClusterIP is allocated and stored at once
        if resource.plural == "services":
            services.allocate_cluster_ip(obj, ctx.service_cidr,
                                         services.taken_ips(ctx.store.list("services")[0]))
        if _dry_run(req):
            return Response(201, obj, headers=headers)
        return Response(201, typed(resource, ctx.store.create(resource.plural, obj)),
                        headers=headers)


def _merge_for_update(resource: Resource, route: Route, current: Obj, new: Obj) -> Obj:
    """Carry server-owned fields over and enforce what a client may change."""
    new_meta, cur_meta = new.setdefault("metadata", {}), current["metadata"]
    if new_meta.get("name", route.name) != route.name:
        raise errors.bad_request(
            f"the name of the object ({new_meta.get('name')}) does not match the name on the "
            f"URL ({route.name})"
        )
    rv = new_meta.get("resourceVersion")
    if rv and rv != cur_meta["resourceVersion"]:
        raise errors.conflict(resource.plural, current["metadata"]["name"])
    for key in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                "deletionGracePeriodSeconds", "generation", "resourceVersion"):
        if key in cur_meta:
            new_meta[key] = cur_meta[key]
        else:
            new_meta.pop(key, None)
    new["kind"], new["apiVersion"] = resource.kind, resource.api_version
    if route.subresource == "status":
        merged = clone(current)
        merged["status"] = new.get("status", {})
        return merged
    if "status" in current:
        new["status"] = current["status"]
    if resource.plural == "pods":
        validation.validate_pod_update(current, new)
        if new.get("spec") != current.get("spec"):
            new_meta["generation"] = cur_meta.get("generation", 1) + 1
    if resource.plural == "services":
        services.validate_service_update(current, new)
    if resource.plural == "configmaps":
        configmaps.validate_configmap_update(current, new)
        return new
    validation.validate_generic(resource.kind, new)
    return new


def _finish_update(ctx: ApiContext, req: Request, resource: Resource, obj: Obj,
                   warnings: list[str]) -> Response:
    headers = {"Warning": ", ".join(warnings)} if warnings else {}
    if _dry_run(req):
        return Response(200, obj, headers=headers)
    stored = ctx.store.replace(resource.plural, obj, obj["metadata"]["resourceVersion"])
    meta = stored["metadata"]
    if meta.get("deletionTimestamp") and not meta.get("finalizers") and (
        resource.plural != "pods" or meta.get("deletionGracePeriodSeconds") == 0
    ):
        ctx.store.remove(resource.plural, meta.get("namespace", ""), meta["name"], meta["uid"])
    return Response(200, typed(resource, stored), headers=headers)


def handle_update(ctx: ApiContext, req: Request, route: Route) -> Response:
    resource = route.resource
    assert resource is not None and route.name is not None
    warnings: list[str] = []
    new = _decode(req, resource, warnings)
    current = ctx.store.get(resource.plural, route.namespace, route.name)
    if current is None:
        raise errors.not_found(resource.plural, route.name)
    merged = _merge_for_update(resource, route, current, new)
    return _finish_update(ctx, req, resource, merged, warnings)


def handle_patch(ctx: ApiContext, req: Request, route: Route) -> Response:
    resource = route.resource
    assert resource is not None and route.name is not None
    if req.content_type() not in PATCH_TYPES:
        raise errors.unsupported_media_type(req.headers.get("Content-Type", ""))
    patch = req.json_body(resource.kind)
    current = ctx.store.get(resource.plural, route.namespace, route.name)
    if current is None:
        raise errors.not_found(resource.plural, route.name)
    patched = apply_patch(req.content_type(), typed(resource, current), patch)
    validation.check_types(resource.kind, patched)
    warnings = apply_field_validation(resource.kind, patched, req.param("fieldValidation"))
    merged = _merge_for_update(resource, route, current, patched)
    return _finish_update(ctx, req, resource, merged, warnings)


def _delete_options(req: Request) -> tuple[int | None, Obj]:
    grace = req.int_param("gracePeriodSeconds")
    preconditions: Obj = {}
    if req.body.strip():
        if req.content_type() and req.content_type() not in JSON_TYPES:
            raise errors.unsupported_media_type(req.content_type())
        options = req.json_body("DeleteOptions")
        if not isinstance(options, dict):
            raise errors.bad_request("DeleteOptions must be an object")
        if options.get("gracePeriodSeconds") is not None:
            grace = int(options["gracePeriodSeconds"])
        preconditions = options.get("preconditions") or {}
    return grace, preconditions


def delete_object(ctx: ApiContext, resource: Resource, namespace: str, name: str,
                  grace: int | None = None, preconditions: Obj | None = None,
                  dry_run: bool = False) -> Obj:
    current = ctx.store.get(resource.plural, namespace, name)
    if current is None:
        raise errors.not_found(resource.plural, name)
    meta = current["metadata"]
    for key, have in (("uid", meta["uid"]), ("resourceVersion", meta["resourceVersion"])):
        want = (preconditions or {}).get(key)
        if want and want != have:
            raise errors.ApiError(409, "Conflict", f"Precondition failed: {key[0].upper()}"
                                  f"{key[1:]} in precondition: {want}, {key} in object meta: "
                                  f"{have}", {"name": name, "kind": resource.plural})
    if dry_run:
        return typed(resource, current)
    now = time.time()
    if resource.plural == "pods" and grace != 0 and _deletes_gracefully(ctx, current):
        period = grace if grace is not None else current["spec"].get(
            "terminationGracePeriodSeconds", 30)

        def mark(pod: Obj) -> Obj:
            old = pod["metadata"].get("deletionGracePeriodSeconds")
            if old is None or period < old:
                pod["metadata"]["deletionTimestamp"] = rfc3339(now + period)
                pod["metadata"]["deletionGracePeriodSeconds"] = period
            return pod

        marked = ctx.store.mutate("pods", namespace, name, mark, meta["uid"])
        return typed(resource, marked or current)
    if resource.plural == "namespaces":
        return typed(resource, _delete_namespace(ctx, current))
    if meta.get("finalizers"):
        def stamp(obj: Obj) -> Obj:
            obj["metadata"].setdefault("deletionTimestamp", rfc3339(now))
            obj["metadata"].setdefault("deletionGracePeriodSeconds", 0)
            return obj

        return typed(resource, ctx.store.mutate(resource.plural, namespace, name, stamp) or current)
    removed = ctx.store.remove(resource.plural, namespace, name, meta["uid"])
    return typed(resource, removed or current)


def _deletes_gracefully(ctx: ApiContext, pod: Obj) -> bool:
    node = pod.get("spec", {}).get("nodeName")
    if not node or ctx.agent is None or not ctx.agent.manages_node(node):
        return False
    return pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")


def _delete_namespace(ctx: ApiContext, ns: Obj) -> Obj:
    name = ns["metadata"]["name"]

    def terminate(obj: Obj) -> Obj:
        obj["metadata"].setdefault("deletionTimestamp", rfc3339())
        obj["status"]["phase"] = "Terminating"
        return obj

    marked = ctx.store.mutate("namespaces", "", name, terminate) or ns
    for plural in _NAMESPACED:
        items, _ = ctx.store.list(plural, name)
        for item in items:
            try:
                delete_object(ctx, CORE[plural], name, item["metadata"]["name"])
            except errors.ApiError:
                pass
    finalize_namespace(ctx, name)
    return marked


def finalize_namespace(ctx: ApiContext, name: str) -> None:
    """Remove a Terminating namespace once nothing is left in it (the namespace controller)."""
    with ctx.store.lock:
        ns = ctx.store.get("namespaces", "", name)
        if ns is None or ns.get("status", {}).get("phase") != "Terminating":
            return
        if any(ctx.store.list(plural, name)[0] for plural in _NAMESPACED):
            return
        ctx.store.remove("namespaces", "", name)


def handle_delete(ctx: ApiContext, req: Request, route: Route) -> Response:
    assert route.resource is not None and route.name is not None
    grace, preconditions = _delete_options(req)
    obj = delete_object(ctx, route.resource, route.namespace, route.name, grace, preconditions,
                        _dry_run(req))
    return Response(200, obj)


def handle_deletecollection(ctx: ApiContext, req: Request, route: Route) -> Response:
    resource = route.resource
    assert resource is not None
    grace, _ = _delete_options(req)
    keep = object_filter(req, resource)
    items, _ = ctx.store.list(resource.plural, route.namespace or None)
    deleted = []
    for item in items:
        if keep(item):
            try:
                deleted.append(delete_object(ctx, resource, route.namespace,
                                             item["metadata"]["name"], grace, None, _dry_run(req)))
            except errors.ApiError as exc:
                if exc.code != 404:
                    raise
    return Response(200, {"kind": resource.list_kind, "apiVersion": resource.api_version,
                          "metadata": {"resourceVersion": str(ctx.store.current_rv())},
                          "items": deleted})


def _access_review(ctx: ApiContext, req: Request) -> Response:
    review = _decode(req, SELF_SAR)
    attrs = (review.get("spec") or {}).get("resourceAttributes") or {}
    resource = attrs.get("resource", "")
    if attrs.get("subresource"):
        resource += "/" + attrs["subresource"]
    allowed = ctx.admission.allowed(req.user, attrs.get("verb", ""), resource,
                                    attrs.get("namespace", ""), attrs.get("group", ""))
    review["status"] = {"allowed": allowed}  # RBAC gives no reason on a plain "no"
    review["kind"], review["apiVersion"] = SELF_SAR.kind, SELF_SAR.api_version
    review["metadata"].setdefault("creationTimestamp", None)
    return Response(201, review)

"""URL paths to routes, and (method, route, query) to Kubernetes verbs.

Only the paths the real API serves for our resources are accepted; everything else is a 404
``Status``, and a known path with the wrong method is a 405 — a lenient router would let a
client bug (wrong URL shape, POST to an object) pass tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import method_not_allowed, path_not_found
from .resources import AUTHZ_GROUP, CORE, SELF_SAR, Resource

DISCOVERY_PATHS = {
    "/version", "/api", "/api/v1", "/apis", f"/apis/{AUTHZ_GROUP}", f"/apis/{AUTHZ_GROUP}/v1",
    "/healthz", "/livez", "/readyz", "/openapi/v3", "/openapi/v3/api/v1",
}


@dataclass(frozen=True)
class Route:
    resource: Resource | None = None
    namespace: str = ""
    name: str | None = None
    subresource: str | None = None
    discovery: str | None = None

    @property
    def audit_resource(self) -> str:
        assert self.resource is not None
        if self.subresource:
            return f"{self.resource.plural}/{self.subresource}"
        return self.resource.plural


def parse_path(path: str) -> Route:
    clean = "/" + path.strip("/")
    if clean in DISCOVERY_PATHS:
        return Route(discovery=clean)
    parts = [p for p in clean.split("/") if p]
    if parts[:3] == ["apis", AUTHZ_GROUP, "v1"] and parts[3:] == [SELF_SAR.plural]:
        return Route(resource=SELF_SAR)
    if parts[:2] != ["api", "v1"] or len(parts) < 3:
        raise path_not_found()
    rest = parts[2:]
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] in CORE:
        resource = CORE[rest[2]]
        if not resource.namespaced:
            raise path_not_found()
        namespace, tail = rest[1], rest[3:]
    else:
        if rest[0] not in CORE:
            raise path_not_found()
        resource, namespace, tail = CORE[rest[0]], "", rest[1:]
    if len(tail) > 2:
        raise path_not_found()
    name = tail[0] if tail else None
    sub = tail[1] if len(tail) == 2 else None
    if name is not None and resource.namespaced and not namespace:
        raise path_not_found()
    if sub is not None and sub not in resource.subresources:
        raise path_not_found()
    return Route(resource=resource, namespace=namespace, name=name, subresource=sub)


def verb_for(method: str, route: Route, watch: bool) -> str:
    """The RBAC verb for this request; 405 when the method makes no sense here."""
    assert route.resource is not None
    if route.resource is SELF_SAR:
        if method != "POST":
            raise method_not_allowed()
        return "create"
    if route.subresource is not None:
        allowed = route.resource.subresources[route.subresource]
        verb = {"GET": "get", "PUT": "update", "PATCH": "patch"}.get(method)
        if verb is None or verb not in allowed:
            raise method_not_allowed()
        return verb
    if route.name is None:
        verb = {"GET": "watch" if watch else "list", "POST": "create",
                "DELETE": "deletecollection"}.get(method)
    else:
        verb = {"GET": "get", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete"}.get(method)
    if verb is None or verb not in route.resource.verbs:
        raise method_not_allowed()
    return verb

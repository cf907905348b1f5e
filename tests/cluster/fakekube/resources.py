"""The resource table: which kinds exist, their scope, verbs and selectable fields.

One table drives routing, discovery documents and field selectors, so ``kubectl`` discovery,
the router and ``fieldSelector`` validation can never disagree about what is served.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .selectors import FieldGetter


def _get(path: str) -> FieldGetter:
    keys = path.split(".")

    def getter(obj: dict[str, Any]) -> str:
        value: Any = obj
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, bool):
            return "true" if value else "false"
        return "" if value is None else str(value)

    return getter


def _fields(*paths: str) -> dict[str, FieldGetter]:
    return {path: _get(path) for path in paths}


@dataclass(frozen=True)
class Resource:
    plural: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...]
    fields: Mapping[str, FieldGetter]
    short_names: tuple[str, ...] = ()
    subresources: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    group: str = ""
    version: str = "v1"
    singular: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"


_RW = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

CORE: dict[str, Resource] = {
    "pods": Resource(
        "pods",
        "Pod",
        True,
        _RW,
        _fields(
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ),
        ("po",),
        {"log": ("get",), "status": ("get", "patch", "update")},
        singular="pod",
    ),
    "services": Resource(
        "services",
        "Service",
        True,
        _RW,
        _fields("metadata.name", "metadata.namespace", "spec.clusterIP", "spec.type"),
        ("svc",),
        {"status": ("get", "patch", "update")},
        singular="service",
    ),
    "configmaps": Resource(
        "configmaps",
        "ConfigMap",
        True,
        _RW,
        _fields("metadata.name", "metadata.namespace"),
        ("cm",),
        singular="configmap",
    ),
    "nodes": Resource(
        "nodes",
        "Node",
        False,
        _RW,
        _fields("metadata.name", "spec.unschedulable"),
        ("no",),
        {"status": ("get", "patch", "update")},
        singular="node",
    ),
    "namespaces": Resource(
        "namespaces",
        "Namespace",
        False,
        ("create", "delete", "get", "list", "patch", "update", "watch"),
        _fields("metadata.name", "status.phase"),
        ("ns",),
        {"status": ("get", "patch", "update")},
        singular="namespace",
    ),
    "events": Resource(
        "events",
        "Event",
        True,
        _RW,
        _fields(
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "type",
        ) | {"source": _get("source.component")},
        ("ev",),
        singular="event",
    ),
}

AUTHZ_GROUP = "authorization.k8s.io"
SELF_SAR = Resource(
    "selfsubjectaccessreviews",
    "SelfSubjectAccessReview",
    False,
    ("create",),
    {},
    group=AUTHZ_GROUP,
    singular="selfsubjectaccessreview",
)


def api_resource_list() -> dict[str, Any]:
    """The ``/api/v1`` APIResourceList."""
    resources: list[dict[str, Any]] = []
    for res in CORE.values():
        entry: dict[str, Any] = {
            "name": res.plural,
            "singularName": res.singular,
            "namespaced": res.namespaced,
            "kind": res.kind,
            "verbs": list(res.verbs),
        }
        if res.short_names:
            entry["shortNames"] = list(res.short_names)
        if res.plural in ("pods", "services"):
            entry["categories"] = ["all"]
        resources.append(entry)
        for sub, verbs in res.subresources.items():
            resources.append(
                {
                    "name": f"{res.plural}/{sub}",
                    "singularName": "",
                    "namespaced": res.namespaced,
                    "kind": "Pod" if res.plural == "pods" and sub == "log" else res.kind,
                    "verbs": list(verbs),
                }
            )
    return {"kind": "APIResourceList", "groupVersion": "v1", "resources": resources}


def authz_resource_list() -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{AUTHZ_GROUP}/v1",
        "resources": [
            {
                "name": SELF_SAR.plural,
                "singularName": SELF_SAR.singular,
                "namespaced": False,
                "kind": SELF_SAR.kind,
                "verbs": ["create"],
            }
        ],
    }


def api_group_list() -> dict[str, Any]:
    version = {"groupVersion": f"{AUTHZ_GROUP}/v1", "version": "v1"}
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [{"name": AUTHZ_GROUP, "versions": [version], "preferredVersion": version}],
    }


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


VERSION_INFO: dict[str, str] = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-fakekube",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-12-11T00:00:00Z",
    "goVersion": "go1.23.3",
    "compiler": "gc",
    "platform": "linux/amd64",
}

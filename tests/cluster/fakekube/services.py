"""Services: defaulting, validation and ClusterIP allocation, as the real registry does them.

A Service of type ClusterIP gets one address from the service range (``--service-cluster-ip-
range``, 10.96.0.0/12 unless the cluster is built with another): the one it asks for in
``spec.clusterIP`` when that is free and in range, else the first free one. ``None`` makes it
headless (no address); an ExternalName service has none either. The address is fixed for the
service's life (an update may not change it, and one that leaves it out keeps it) and is free
again once the service is deleted. Errors carry the real field paths and texts. NodePort and
LoadBalancer services are refused with a message naming what is not implemented here rather
than stored half-done.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from .errors import ApiError, invalid

Obj = dict[str, Any]
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
PROTOCOLS = ("SCTP", "TCP", "UDP")
TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
Cause = tuple[str, str, str]


def _ip_causes(value: Any) -> list[Cause]:
    if value in (None, "", "None"):
        return []
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return [("spec.clusterIPs[0]", "FieldValueInvalid",
                 f"Invalid value: {_quoted(value)}: must be a valid IP address, (e.g. 10.9.8.7 "
                 "or 2001:db8::ffff)")]
    return []


def _quoted(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def _port_causes(ports: list[Obj]) -> list[Cause]:
    causes: list[Cause] = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        where = f"spec.ports[{i}]"
        name = port.get("name") or ""
        if len(ports) > 1 and not name:
            causes.append((f"{where}.name", "FieldValueRequired", "Required value"))
        elif name and name in names:
            causes.append((f"{where}.name", "FieldValueDuplicate",
                           f'Duplicate value: "{name}"'))
        names.add(name)
        number = port.get("port")
        if not isinstance(number, int) or not 1 <= number <= 65535:
            causes.append((f"{where}.port", "FieldValueInvalid", f"Invalid value: {number}: "
                           "must be between 1 and 65535, inclusive"))
        if port.get("protocol") not in PROTOCOLS:
            causes.append((f"{where}.protocol", "FieldValueNotSupported",
                           f'Unsupported value: "{port.get("protocol")}": supported values: '
                           + ", ".join(f'"{p}"' for p in PROTOCOLS)))
    return causes


def default_service(svc: Obj) -> None:
    spec = svc.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    if spec["type"] != "ExternalName":
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        if spec["type"] != "ExternalName":
            port.setdefault("targetPort", port.get("port"))
    svc["status"] = {"loadBalancer": {}}


def validate_service(svc: Obj) -> None:
    spec, name = svc["spec"], svc["metadata"].get("name", "")
    kind = spec.get("type")
    causes: list[Cause] = []
    if kind not in TYPES:
        causes.append(("spec.type", "FieldValueNotSupported", f'Unsupported value: "{kind}": '
                       "supported values: " + ", ".join(f'"{t}"' for t in TYPES)))
    elif kind in ("LoadBalancer", "NodePort"):
        raise ApiError(501, "NotImplemented", f"fakekube: services of type {kind} are not "
                       "implemented (node ports are not allocated)")
    ports = spec.get("ports") or []
    headless = spec.get("clusterIP") == "None"
    if kind == "ClusterIP" and not ports and not headless:
        causes.append(("spec.ports", "FieldValueRequired", "Required value"))
    if kind == "ExternalName":
        if not spec.get("externalName"):
            causes.append(("spec.externalName", "FieldValueRequired", "Required value"))
        if spec.get("clusterIP") not in (None, ""):
            causes.append(("spec.clusterIPs", "FieldValueForbidden",
                           "Forbidden: may not be set for ExternalName services"))
    causes += _ip_causes(spec.get("clusterIP"))
    causes += _port_causes(ports)
    if causes:
        raise invalid("Service", name, causes)


def allocate_cluster_ip(svc: Obj, cidr: str, taken: set[str]) -> None:
    """Give a ClusterIP service its address (the one asked for, or the first free one)."""
    spec = svc["spec"]
    if spec["type"] == "ExternalName":
        return
    asked = spec.get("clusterIP") or ""
    if asked == "None":
        spec["clusterIPs"] = ["None"]
    else:
        network = ipaddress.ip_network(cidr)
        if asked:
            why = ("provided IP is not in the valid range. The range of valid IPs is "
                   f"{network}") if ipaddress.ip_address(asked) not in network else \
                "provided IP is already allocated" if asked in taken else ""
            if why:
                raise invalid("Service", svc["metadata"].get("name", ""), [(
                    "spec.clusterIPs", "FieldValueInvalid",
                    f'Invalid value: []string{{"{asked}"}}: failed to allocate IP {asked}: '
                    f"{why}")])
        else:
            asked = next((str(ip) for ip in network.hosts() if str(ip) not in taken), "")
            if not asked:
                raise ApiError(500, "InternalError", "Internal error occurred: failed to "
                               "allocate a serviceIP: range is full")
        spec["clusterIP"], spec["clusterIPs"] = asked, [asked]
    family = "IPv6" if ":" in spec["clusterIPs"][0] else "IPv4"
    spec.setdefault("ipFamilies", [family])
    spec.setdefault("ipFamilyPolicy", "SingleStack")


def taken_ips(services: list[Obj]) -> set[str]:
    return {ip for s in services for ip in (s.get("spec") or {}).get("clusterIPs") or []}


def validate_service_update(old: Obj, new: Obj) -> None:
    """The address is kept when an update leaves it out and may not change once set."""
    old_spec, spec = old.get("spec") or {}, new.setdefault("spec", {})
    for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
        if not spec.get(key) and old_spec.get(key):
            spec[key] = old_spec[key]
    if spec.get("clusterIP") != old_spec.get("clusterIP"):
        raise invalid("Service", new["metadata"].get("name", ""), [(
            "spec.clusterIPs[0]", "FieldValueInvalid",
            f'Invalid value: []string{{"{spec.get("clusterIP")}"}}: may not change once set')])
    default_service(new)
    new["status"] = old.get("status", {"loadBalancer": {}})
    validate_service(new)

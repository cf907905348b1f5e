"""Decode checks, defaulting and validation for objects written through the API.

Mirrors what a real API server does before storage: type errors are 400 (the body cannot be
decoded into the Go type), semantic errors are 422 ``Invalid`` with per-field causes, and
defaults (restartPolicy, imagePullPolicy, tolerations added by DefaultTolerationSeconds...)
are filled in so clients read back what a real cluster would return. Pod updates may only
touch the few mutable spec fields. The trap avoided: a fake that stores whatever it gets lets
the product rely on fields a real server would reject or rewrite.
"""

from __future__ import annotations

import random
import re
from typing import Any

from .errors import ApiError, bad_request, invalid
from .selectors import label_key_error, label_value_error

Obj = dict[str, Any]
Cause = tuple[str, str, str]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_SUFFIX_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_RESTART = ("Always", "OnFailure", "Never")


def decode_error(kind: str, field: str, want: str, got: Any) -> ApiError:
    gotname = {bool: "bool", int: "number", float: "number", str: "string", list: "array"}.get(
        type(got), "object"
    )
    return bad_request(
        f'{kind} in version "v1" cannot be handled as a {kind}: json: cannot unmarshal '
        f"{gotname} into Go struct field {field} of type {want}"
    )


def check_types(kind: str, obj: Any) -> None:
    """Reject bodies that a Go decoder could not unmarshal (400 BadRequest)."""
    if not isinstance(obj, dict):
        raise decode_error(kind, kind, "v1." + kind, obj)
    meta = obj.get("metadata", {})
    if not isinstance(meta, dict):
        raise decode_error(kind, f"{kind}.metadata", "v1.ObjectMeta", meta)
    for name in ("labels", "annotations"):
        mapping = meta.get(name)
        if mapping is None:
            continue
        if not isinstance(mapping, dict):
            raise decode_error(kind, f"ObjectMeta.metadata.{name}", "map[string]string", mapping)
        for value in mapping.values():
            if not isinstance(value, str):
                raise decode_error(kind, f"ObjectMeta.metadata.{name}", "string", value)
    for name in ("name", "generateName", "namespace"):
        if name in meta and not isinstance(meta[name], str):
            raise decode_error(kind, f"ObjectMeta.metadata.{name}", "string", meta[name])
    if kind == "ConfigMap":
        from .configmaps import check_configmap_types

        check_configmap_types(obj)
    if kind == "Pod":
        spec = obj.get("spec", {})
        if not isinstance(spec, dict):
            raise decode_error(kind, "Pod.spec", "v1.PodSpec", spec)
        containers = spec.get("containers", [])
        if not isinstance(containers, list) or not all(isinstance(c, dict) for c in containers):
            raise decode_error(kind, "PodSpec.spec.containers", "[]v1.Container", containers)
        for container in containers:
            for name in ("command", "args"):
                value = container.get(name, [])
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise decode_error(kind, f"Container.spec.containers.{name}", "string", value)
        deadline = spec.get("activeDeadlineSeconds")
        if deadline is not None and (not isinstance(deadline, int) or isinstance(deadline, bool)):
            raise decode_error(kind, "PodSpec.spec.activeDeadlineSeconds", "int64", deadline)


def assign_name(obj: Obj) -> None:
    meta = obj.setdefault("metadata", {})
    if not meta.get("name") and meta.get("generateName"):
        suffix = "".join(random.choice(_SUFFIX_CHARS) for _ in range(5))
        meta["name"] = meta["generateName"] + suffix


def meta_causes(meta: Obj, namespaced: bool, dns_label: bool = False) -> list[Cause]:
    causes: list[Cause] = []
    name = meta.get("name", "")
    if not name:
        causes.append(
            ("metadata.name", "FieldValueRequired",
             "Required value: name or generateName is required")
        )
    elif dns_label and (len(name) > 63 or not _DNS_LABEL.match(name)):
        causes.append(
            (
                "metadata.name",
                "FieldValueInvalid",
                f'Invalid value: "{name}": a lowercase RFC 1123 label must consist of lower case '
                "alphanumeric characters or '-', and must start and end with an alphanumeric "
                "character (e.g. 'my-name',  or '123-abc', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            )
        )
    elif len(name) > 253 or not _SUBDOMAIN.match(name):
        causes.append(
            (
                "metadata.name",
                "FieldValueInvalid",
                f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower '
                "case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character (e.g. 'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            )
        )
    for key, value in (meta.get("labels") or {}).items():
        if (problem := label_key_error(key)) is not None:
            causes.append(
                ("metadata.labels", "FieldValueInvalid", f'Invalid value: "{key}": {problem}')
            )
        if (problem := label_value_error(value)) is not None:
            causes.append(
                ("metadata.labels", "FieldValueInvalid", f'Invalid value: "{value}": {problem}')
            )
    for key in meta.get("annotations") or {}:
        if (problem := label_key_error(key.lower())) is not None:
            causes.append(
                ("metadata.annotations", "FieldValueInvalid", f'Invalid value: "{key}": {problem}')
            )
    return causes


def _container_causes(spec: Obj) -> list[Cause]:
    containers = spec.get("containers") or []
    if not containers:
        return [("spec.containers", "FieldValueRequired", "Required value")]
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, container in enumerate(containers):
        path = f"spec.containers[{i}]"
        name = container.get("name", "")
        if not name:
            causes.append((f"{path}.name", "FieldValueRequired", "Required value"))
        elif not _DNS_LABEL.match(name) or len(name) > 63:
            causes.append(
                (f"{path}.name", "FieldValueInvalid", f'Invalid value: "{name}": a lowercase '
                 "RFC 1123 label must consist of lower case alphanumeric characters or '-'")
            )
        elif name in seen:
            causes.append((f"{path}.name", "FieldValueDuplicate", f'Duplicate value: "{name}"'))
        seen.add(name)
        if not container.get("image"):
            causes.append((f"{path}.image", "FieldValueRequired", "Required value"))
        for j, env in enumerate(container.get("env") or []):
            env_name = env.get("name", "")
            if not _ENV_NAME.match(env_name):
                causes.append(
                    (f"{path}.env[{j}].name", "FieldValueInvalid",
                     f'Invalid value: "{env_name}": a valid environment variable name must '
                     "consist of alphabetic characters, digits, '_', '-', or '.', and must not "
                     "start with a digit")
                )
            if "value" in env and env.get("valueFrom"):
                causes.append(
                    (f"{path}.env[{j}].valueFrom", "FieldValueInvalid",
                     "Invalid value: \"\": may not be specified when `value` is not empty")
                )
    return causes


def _spec_causes(spec: Obj) -> list[Cause]:
    causes = _container_causes(spec)
    policy = spec.get("restartPolicy", "Always")
    if policy not in _RESTART:
        causes.append(
            ("spec.restartPolicy", "FieldValueNotSupported",
             f'Unsupported value: "{policy}": supported values: "Always", "OnFailure", "Never"')
        )
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and not 1 <= deadline <= 2147483647:
        causes.append(
            ("spec.activeDeadlineSeconds", "FieldValueInvalid",
             f"Invalid value: {deadline}: must be between 1 and 2147483647, inclusive")
        )
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is not None and grace < 0:
        causes.append(
            ("spec.terminationGracePeriodSeconds", "FieldValueInvalid",
             f"Invalid value: {grace}: must be greater than or equal to 0")
        )
    node = spec.get("nodeName")
    if node and not _SUBDOMAIN.match(node):
        causes.append(("spec.nodeName", "FieldValueInvalid", f'Invalid value: "{node}"'))
    for i, tol in enumerate(spec.get("tolerations") or []):
        if tol.get("operator") == "Exists" and tol.get("value"):
            causes.append(
                (f"spec.tolerations[{i}].operator", "FieldValueInvalid",
                 f'Invalid value: "{tol["value"]}": value must be empty when `operator` is '
                 "'Exists'")
            )
        if tol.get("effect") not in (None, "", "NoSchedule", "PreferNoSchedule", "NoExecute"):
            causes.append(
                (f"spec.tolerations[{i}].effect", "FieldValueNotSupported",
                 f'Unsupported value: "{tol["effect"]}": supported values: "NoSchedule", '
                 '"PreferNoSchedule", "NoExecute"')
            )
    volume_names: set[str] = set()
    for i, volume in enumerate(spec.get("volumes") or []):
        if volume.get("name") in volume_names:
            causes.append((f"spec.volumes[{i}].name", "FieldValueDuplicate",
                           f'Duplicate value: "{volume.get("name")}"'))
        volume_names.add(volume.get("name", ""))
        if "hostPath" in volume and not (volume["hostPath"] or {}).get("path"):
            causes.append((f"spec.volumes[{i}].hostPath.path", "FieldValueRequired",
                           "Required value"))
        if "configMap" in volume:
            causes += _configmap_volume_causes(f"spec.volumes[{i}].configMap",
                                               volume["configMap"] or {})
    return causes


_MODE_RANGE = "must be a number between 0 and 0777 (octal), both inclusive"


def _configmap_volume_causes(path: str, source: Obj) -> list[Cause]:
    causes: list[Cause] = []
    if not source.get("name"):
        causes.append((f"{path}.name", "FieldValueRequired", "Required value"))
    mode = source.get("defaultMode")
    if mode is not None and not 0 <= mode <= 0o777:
        causes.append((f"{path}.defaultMode", "FieldValueInvalid",
                       f"Invalid value: {mode}: {_MODE_RANGE}"))
    for j, item in enumerate(source.get("items") or []):
        where, key, rel = f"{path}.items[{j}]", item.get("key", ""), item.get("path", "")
        if not key:
            causes.append((f"{where}.key", "FieldValueRequired", "Required value"))
        if not rel:
            causes.append((f"{where}.path", "FieldValueRequired", "Required value"))
        elif rel.startswith("/"):
            causes.append((f"{where}.path", "FieldValueInvalid",
                           f'Invalid value: "{rel}": must be a relative path'))
        elif ".." in rel.split("/"):
            causes.append((f"{where}.path", "FieldValueInvalid",
                           f'Invalid value: "{rel}": must not contain \'..\''))
        item_mode = item.get("mode")
        if item_mode is not None and not 0 <= item_mode <= 0o777:
            causes.append((f"{where}.mode", "FieldValueInvalid",
                           f"Invalid value: {item_mode}: {_MODE_RANGE}"))
    return causes


def validate_pod(pod: Obj) -> None:
    causes = meta_causes(pod["metadata"], True) + _spec_causes(pod.get("spec") or {})
    if causes:
        raise invalid("Pod", pod["metadata"].get("name", ""), causes)


def default_pod(pod: Obj) -> None:
    pod["apiVersion"], pod["kind"] = "v1", "Pod"
    pod["metadata"]["generation"] = 1
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("serviceAccountName", spec.get("serviceAccount", "default"))
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    tolerations = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == key and t.get("effect") in (None, "", "NoExecute")
                   for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                "tolerationSeconds": 300})
    qos = "BestEffort"
    for container in spec.get("containers", []):
        image = container.get("image", "")
        tagless = "@" not in image and ":" not in image.rsplit("/", 1)[-1]
        pull = "Always" if tagless or image.endswith(":latest") else "IfNotPresent"
        container.setdefault("imagePullPolicy", pull)
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
        for port in container.get("ports") or []:
            port.setdefault("protocol", "TCP")
        if container["resources"]:
            qos = "Burstable"
    pod["status"] = {"phase": "Pending", "qosClass": qos}


_MUTABLE_HINT = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
    "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be "
    "set to 1 if it was previously negative)"
)


def validate_pod_update(old: Obj, new: Obj) -> None:
    """Only images, a shorter activeDeadlineSeconds and added tolerations may change."""
    old_spec, new_spec = dict(old.get("spec") or {}), dict(new.get("spec") or {})
    name = old["metadata"]["name"]
    for spec in (old_spec, new_spec):
        spec["containers"] = [
            {k: v for k, v in c.items() if k != "image"} for c in spec.get("containers", [])
        ]
        spec.pop("activeDeadlineSeconds", None)
        spec.pop("tolerations", None)
    if old_spec != new_spec:
        raise invalid("Pod", name, [("spec", "FieldValueForbidden", "Forbidden: " + _MUTABLE_HINT)])
    old_tol = old["spec"].get("tolerations") or []
    new_tol = new["spec"].get("tolerations") or []
    if any(t not in new_tol for t in old_tol):
        raise invalid("Pod", name, [("spec.tolerations", "FieldValueForbidden",
                                     "Forbidden: existing toleration can not be modified")])
    old_dl = old["spec"].get("activeDeadlineSeconds")
    new_dl = new["spec"].get("activeDeadlineSeconds")
    if old_dl is not None and (new_dl is None or new_dl > old_dl):
        raise invalid("Pod", name, [("spec.activeDeadlineSeconds", "FieldValueForbidden",
                                     "Invalid value: must be less than or equal to previous "
                                     "value")])


def validate_namespace(ns: Obj) -> None:
    causes = meta_causes(ns["metadata"], False, dns_label=True)
    if causes:
        raise invalid("Namespace", ns["metadata"].get("name", ""), causes)


def default_namespace(ns: Obj) -> None:
    ns["apiVersion"], ns["kind"] = "v1", "Namespace"
    name = ns["metadata"]["name"]
    ns["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
    ns.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    ns["status"] = {"phase": "Active"}


def validate_generic(kind: str, obj: Obj) -> None:
    causes = meta_causes(obj["metadata"], True)
    if causes:
        raise invalid(kind, obj["metadata"].get("name", ""), causes)

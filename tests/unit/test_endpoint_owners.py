"""Endpoint owners: the schema fields they add, the rows they fill, the table they read.

The operator side (`operators.kubeip`) gets a plain lookup table; the cluster side
(`cluster.owners`) keeps that table from pod and service objects as the API lists and watches
them. Both are exercised here without a server; tests/cluster/test_run_endpoint_owners.py runs
the whole chain against the fake API server.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from kubectl_gadget.cluster.owners import AddressIndex, owned_ips
from kubectl_gadget.errors import UsageError
from kubectl_gadget.operators import FieldSchema
from kubectl_gadget.operators.filter import parse_filters
from kubectl_gadget.operators.kubeip import Owner, endpoints, with_owner_fields
from kubectl_gadget.pipeline import Operators, Pipeline

FIELDS: list[FieldSchema] = [
    {"name": "comm", "type": "string"},
    {"name": "dst", "type": "string", "tags": ["type:gadget_l4endpoint_t"],
     "annotations": {"json.skip": "true"}},
    {"name": "dst.addr", "type": "string"},
    {"name": "dst.port", "type": "u16"},
    {"name": "src", "type": "string", "tags": ["type:gadget_l3endpoint_t"],
     "annotations": {"json.skip": "true"}},
    {"name": "src.addr", "type": "string"},
    {"name": "pid", "type": "u32"},
]
WEB = Owner("pod", "shop", "web", "app=web")
DB = Owner("svc", "shop", "db", "")


class Table:
    """An owner table as the cluster wing would hand it over."""

    def __init__(self, owners: dict[str, Owner]) -> None:
        self.owners, self.started = owners, 0

    def start(self) -> None:
        self.started += 1

    def lookup(self, ip: str) -> Owner | None:
        return self.owners.get(ip)


def test_owner_fields_follow_each_endpoint_once() -> None:
    assert endpoints(FIELDS) == ["dst", "src"]
    names = [f["name"] for f in with_owner_fields(FIELDS)]
    assert names == ["comm", "dst", "dst.addr", "dst.port", "dst.k8s.kind", "dst.k8s.namespace",
                     "dst.k8s.name", "dst.k8s.labels", "src", "src.addr", "src.k8s.kind",
                     "src.k8s.namespace", "src.k8s.name", "src.k8s.labels", "pid"]
    assert with_owner_fields(with_owner_fields(FIELDS)) == with_owner_fields(FIELDS)
    plain = [f for f in FIELDS if not f["name"].startswith(("dst", "src"))]
    assert with_owner_fields(plain) == plain


def _run(filters: str, table: Table | None, mode: str = "json") -> tuple[list[Any], Pipeline]:
    out = io.StringIO()
    pipeline = Pipeline(Operators(filters=parse_filters(filters) if filters else (),
                                  mode=mode), out, print)
    pipeline.owners = table
    lines = [{"type": "hello", "protocol": 1},
             {"type": "schema", "ds": "tcp", "fields": FIELDS}]
    for comm, dst in (("a", "10.244.1.5"), ("b", "10.96.0.10"), ("c", "8.8.8.8")):
        lines.append({"type": "event", "ds": "tcp", "data": {
            "comm": comm, "dst": f"{dst}:80", "dst.addr": dst, "dst.port": 80,
            "src": "10.244.1.5", "src.addr": "10.244.1.5", "pid": 1}})
    pipeline.feed("n1", "\n".join(json.dumps(x) for x in lines).encode() + b"\n")
    pipeline.finish()
    text = out.getvalue().splitlines()
    return ([json.loads(x) for x in text] if mode == "json" else text), pipeline


def test_rows_name_the_pod_or_service_and_filter_on_it() -> None:
    table = Table({"10.244.1.5": WEB, "10.96.0.10": DB})
    rows, _ = _run("", table)
    assert [(r["comm"], r["dst"]["k8s"]) for r in rows] == [
        ("a", {"kind": "pod", "namespace": "shop", "name": "web", "labels": "app=web"}),
        ("b", {"kind": "svc", "namespace": "shop", "name": "db", "labels": ""}),
        ("c", {"kind": "raw", "namespace": "", "name": "", "labels": ""})]
    assert {r["src"]["k8s"]["name"] for r in rows} == {"web"}
    assert table.started == 1
    assert [r["comm"] for r in _run("dst.k8s.name==db", table)[0]] == ["b"]
    assert [r["comm"] for r in _run("dst.k8s.kind!=raw", table)[0]] == ["a", "b"]
    header, *columns = _run("", table, mode="columns")[0]
    assert header.split()[4:7] == ["DST.K8S.KIND", "DST.K8S.NAMESPACE", "DST.K8S.NAME"]
    assert columns[0].split()[4:7] == ["pod", "shop", "web"] and "raw" in columns[2]


def test_without_a_table_nothing_is_added_or_started() -> None:
    rows, _ = _run("", None)
    assert "k8s" not in rows[0]["dst"]
    with pytest.raises(UsageError, match="unknown field 'dst.k8s.name'"):
        _run("dst.k8s.name==web", None)


def _pod(name: str, ip: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "shop", "name": name, "labels": {"b": "2", "a": "1"}},
            "spec": spec, "status": {"phase": "Running", "podIP": ip,
                                     "podIPs": [{"ip": ip}]}}


def test_the_table_follows_objects_as_the_api_reports_them() -> None:
    assert owned_ips("pods", _pod("host", "172.18.0.3", hostNetwork=True)) == []
    done = _pod("job", "10.244.1.9")
    done["status"]["phase"] = "Succeeded"
    assert owned_ips("pods", done) == []
    assert owned_ips("pods", _pod("v6", "fd00:0::0:1")) == ["fd00::1"]
    headless = {"metadata": {"name": "hl"}, "spec": {"clusterIP": "None",
                                                      "clusterIPs": ["None"]}}
    assert owned_ips("services", headless) == []

    pods = AddressIndex("pods")
    pods.replace([_pod("web", "10.244.1.5")])
    assert pods.by_ip["10.244.1.5"] == Owner("pod", "shop", "web", "a=1,b=2")
    pods.update(_pod("new", "10.244.1.5"))  # the address moved on before the old pod's delete
    pods.delete(_pod("web", "10.244.1.5"))
    assert pods.by_ip["10.244.1.5"].name == "new"
    pods.update(_pod("new", "10.244.1.6"))
    assert set(pods.by_ip) == {"10.244.1.6"}
    pods.delete(_pod("new", "10.244.1.6"))
    assert pods.by_ip == {}

"""Reference parsing and the allowlist: pure functions, no network."""

from __future__ import annotations

import pytest

from node_runner.errors import ImageError
from node_runner.oci.policy import Allowlist
from node_runner.oci.reference import parse_reference

D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64


@pytest.mark.parametrize(("text", "registry", "repository", "tag", "digest"), [
    ("trace_open", "ghcr.io", "kubectl-gadget/gadgets/trace_open", "latest", ""),
    ("trace_open:v1", "ghcr.io", "kubectl-gadget/gadgets/trace_open", "v1", ""),
    ("127.0.0.1:5000/g/trace_open:v2", "127.0.0.1:5000", "g/trace_open", "v2", ""),
    ("localhost/x", "localhost", "x", "latest", ""),
    ("localhost:5000/a/b/c", "localhost:5000", "a/b/c", "latest", ""),
    (f"ghcr.io/a/b@{D1}", "ghcr.io", "a/b", "", D1),
    (f"ghcr.io/a/b:v1@{D1}", "ghcr.io", "a/b", "", D1),
    (f"trace_exec@{D1}", "ghcr.io", "kubectl-gadget/gadgets/trace_exec", "", D1),
    ("org/thing", "docker.io", "org/thing", "latest", ""),
])
def test_parse(text: str, registry: str, repository: str, tag: str, digest: str) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag,
                                                                    digest)
    assert parse_reference(str(ref)) == ref


def test_default_prefix_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECTL_GADGET_REGISTRY", "127.0.0.1:5000/mine/")
    ref = parse_reference("trace_open")
    assert str(ref) == "127.0.0.1:5000/mine/trace_open:latest"
    assert ref.short == "trace_open:latest"


@pytest.mark.parametrize(("text", "reason"), [
    ("", "empty"), ("Trace", "invalid repository name 'Trace'"),
    ("x@sha256:12", "sha256:<64 hex digits>"), ("x:-bad", "invalid tag"),
    ("ghcr.io//x", "invalid repository name"),
])
def test_parse_errors(text: str, reason: str) -> None:
    with pytest.raises(ImageError, match=reason.replace("(", r"\(").replace("<", "<")):
        parse_reference(text)


def test_allowlist_entries() -> None:
    ref = parse_reference("ghcr.io/org/gadgets/trace_open:v1")
    assert Allowlist.parse([]).allows(ref)
    assert Allowlist.parse(["ghcr.io/org/*"]).allows(ref)
    assert Allowlist.parse(["ghcr.io/org/gadgets/*"]).allows(ref)
    assert not Allowlist.parse(["ghcr.io/or/*"]).allows(ref)
    assert not Allowlist.parse(["ghcr.io/org-evil/*"]).allows(ref)
    assert Allowlist.parse(["ghcr.io/org/gadgets/trace_*"]).allows(ref)
    assert Allowlist.parse(["other/x, ghcr.io/org/gadgets/trace_open:v1"]).allows(ref)
    assert not Allowlist.parse(["ghcr.io/org/gadgets/trace_open:v2"]).allows(ref)
    assert not Allowlist.parse(["ghcr.io/org/gadgets/trace_open"]).allows(ref)  # = :latest
    assert Allowlist.parse([D1]).allows(ref, (D2, D1))
    assert not Allowlist.parse([D1]).allows(ref, (D2,))
    assert Allowlist.parse([f"ghcr.io/org/gadgets/trace_open@{D1}"]).allows(ref, (D1,))
    assert not Allowlist.parse([f"ghcr.io/org/gadgets/other@{D1}"]).allows(ref, (D1,))


def test_allowlist_short_names_and_message() -> None:
    allow = Allowlist.parse(["trace_open"])
    assert allow.allows(parse_reference("ghcr.io/kubectl-gadget/gadgets/trace_open:latest"))
    ref = parse_reference("trace_exec")
    with pytest.raises(ImageError) as err:
        allow.check(ref)
    assert str(err.value) == ("gadget ghcr.io/kubectl-gadget/gadgets/trace_exec:latest is not "
                              "in the allowed list (allowed: "
                              "ghcr.io/kubectl-gadget/gadgets/trace_open:latest)")

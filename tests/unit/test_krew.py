"""The krew manifest `make dist` writes, and the checks that stand in for krew offline.

Each rule is shown to catch the mistake it is for (a manifest breaking it is refused with a
message naming it), and a manifest generated for a real archive passes, including the
install-time checks (digest, `bin` present and executable after the `files` operations).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from kubectl_gadget.errors import BuildError
from kubectl_gadget.release import dist, krew

BASE = "https://example.com/releases/v1.2.3"


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    binary = tmp_path / "kubectl-gadget"
    binary.write_bytes(b"#!/bin/sh\necho hi\n")
    return dist.archive(binary, tmp_path / "out" / "kubectl-gadget_v1.2.3_linux_amd64.tar.gz")


@pytest.fixture
def doc(archive: Path) -> dict:
    return krew.manifest("1.2.3", {("linux", "amd64"): archive}, BASE)


def test_generated_manifest_is_valid_and_round_trips_through_yaml(doc: dict,
                                                                  archive: Path) -> None:
    loaded = yaml.safe_load(krew.dump(doc))
    assert loaded == doc
    krew.check(loaded, {f"{BASE}/{archive.name}": archive})
    assert loaded["spec"]["version"] == "v1.2.3"
    platform = loaded["spec"]["platforms"][0]
    assert platform["selector"] == {"matchLabels": {"os": "linux", "arch": "amd64"}}
    assert platform["uri"] == f"{BASE}/{archive.name}"
    assert platform["sha256"] == krew.sha256_file(archive)


def test_archive_is_reproducible(tmp_path: Path, archive: Path) -> None:
    again = dist.archive(tmp_path / "kubectl-gadget", tmp_path / "again.tar.gz")
    assert again.read_bytes() == archive.read_bytes()


def _broken(doc: dict, path: str, value: object) -> dict:
    out = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return out


@pytest.mark.parametrize(("path", "value", "message"), [
    ("apiVersion", "krew.googlecontainertools.github.com/v1alpha1", "apiVersion"),
    ("kind", "PluginList", "kind"),
    ("metadata.name", "gadget/evil", "metadata.name"),
    ("spec.version", "1.2.3", "spec.version"),
    ("spec.version", "v1.2", "spec.version"),
    ("spec.shortDescription", "two\nlines", "line break"),
    ("spec.shortDescription", "x" * 51, "at most 50"),
    ("spec.shortDescription", KeyError, "shortDescription is missing"),
    ("spec.homepage", KeyError, "homepage"),
    ("spec.platforms", [], "at least one platform"),
    ("spec.platforms.0.sha256", "ABC", "sha256"),
    ("spec.platforms.0.uri", "kubectl-gadget.tar.gz", "uri"),
    ("spec.platforms.0.bin", KeyError, "bin is missing"),
    ("spec.platforms.0.files", [], "files"),
    ("spec.platforms.0.files", [{"from": "kubectl-gadget"}], "files"),
    ("spec.platforms.0.selector", KeyError, "selector is missing"),
    ("spec.platforms.0.selector", {"matchLabels": {}}, "selector is empty"),
    ("spec.platforms.0.selector", {"matchLabels": {"os": "linux", "distro": "debian"}},
     "'distro' is not supported"),
])
def test_each_rule_refuses_its_mistake(doc: dict, path: str, value: object,
                                       message: str) -> None:
    bad = _broken(doc, path, value)
    assert any(message in p for p in krew.problems(bad)), krew.problems(bad)
    with pytest.raises(BuildError, match="checking the krew manifest"):
        krew.check(bad)


def test_install_checks_catch_a_wrong_digest_and_a_missing_bin(doc: dict, archive: Path) -> None:
    uri = doc["spec"]["platforms"][0]["uri"]
    wrong = _broken(doc, "spec.platforms.0.sha256", "0" * 64)
    with pytest.raises(BuildError, match="sha256 is"):
        krew.check(wrong, {uri: archive})
    renamed = _broken(doc, "spec.platforms.0.bin", "kubectl-other")
    with pytest.raises(BuildError, match="bin 'kubectl-other' is not among"):
        krew.check(renamed, {uri: archive})
    missing = _broken(doc, "spec.platforms.0.files", [{"from": "LICENSE", "to": "."}])
    with pytest.raises(BuildError, match="matches nothing"):
        krew.check(missing, {uri: archive})


def test_check_krew_command_reads_a_manifest_file(doc: dict, archive: Path,
                                                  tmp_path: Path) -> None:
    from kubectl_gadget.release.__main__ import main

    manifest = tmp_path / "gadget.yaml"
    manifest.write_text(krew.dump(doc))
    assert main(["check-krew", str(manifest), "--archive", str(archive)]) == 0
    manifest.write_text(krew.dump(_broken(doc, "kind", "Nope")))
    assert main(["check-krew", str(manifest), "--archive", str(archive)]) == 3

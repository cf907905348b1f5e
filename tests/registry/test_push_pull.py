"""Push to a real registry, pull back, and what independent readers (skopeo) see.

Covers: build -> push -> remove from the store -> the runner pulls the reference by itself;
skopeo reads the index and per-arch manifests with Inspektor Gadget's media types and copies
the image to an OCI layout and back with the same digest; basic auth from a docker config file
(and a one-line 401 without it); tampered blobs in the registry or in the store are refused.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from node_runner.errors import ImageError
from node_runner.oci import media as M
from node_runner.oci.reference import parse_reference
from node_runner.oci.registry import RegistryClient, RegistryOptions
from node_runner.oci.resolve import ResolveOptions, resolve
from node_runner.oci.store import Store
from node_runner.packaged import oci_arch
from tests.registry.conftest import Registry, docker_config
from tests.registry.util import image, image_ok, runner_error

pytestmark = pytest.mark.registry


def _push(capsys: pytest.CaptureFixture[str], reg: Registry, name: str, *extra: str) -> str:
    ref = f"{reg.host}/gadgets/{name}"
    image_ok(capsys, "tag", "trace_open", ref)
    image_ok(capsys, "push", ref, "--insecure-registries", reg.host, *extra)
    return ref


def test_push_remove_pull_restores_same_digest(capsys: pytest.CaptureFixture[str],
                                               registry: Registry, built_store: str,
                                               store_dir: Path) -> None:
    ref = _push(capsys, registry, "trace_open:roundtrip")
    image_ok(capsys, "remove", ref, "trace_open")
    assert not list((store_dir / "blobs" / "sha256").iterdir()), "remove left blobs behind"
    out = image_ok(capsys, "pull", ref, "--insecure-registries", registry.host)
    assert out.strip() == f"{ref}@{built_store} (not signed)"
    listed = image_ok(capsys, "list", "--no-trunc")
    assert ref in listed and built_store in listed


def _skopeo(*args: str) -> str:
    if not shutil.which("skopeo"):
        pytest.skip("skopeo not installed (apt-get install skopeo)")
    proc = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_skopeo_reads_index_and_manifests(capsys: pytest.CaptureFixture[str],
                                          registry: Registry, built_store: str) -> None:
    ref = _push(capsys, registry, "trace_open:skopeo")
    index = json.loads(_skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}"))
    assert index["mediaType"] == M.OCI_INDEX
    plats = {(m["platform"]["os"], m["platform"]["architecture"]): m for m in index["manifests"]}
    assert ("linux", "amd64") in plats
    child = plats[("linux", "amd64")]["digest"]
    name = ref.rsplit(":", 1)[0]
    manifest = json.loads(_skopeo("inspect", "--raw", "--tls-verify=false",
                                  f"docker://{name}@{child}"))
    assert manifest["mediaType"] == M.OCI_MANIFEST
    assert manifest["artifactType"] == M.ARTIFACT_TYPE
    assert manifest["config"]["mediaType"] == M.CONFIG_YAML
    assert [lay["mediaType"] for lay in manifest["layers"]] == [M.EBPF_LAYER]
    assert manifest["annotations"][M.TITLE] == "trace open"
    assert manifest["annotations"][M.SOURCE].endswith("/gadgets/trace_open")


def test_skopeo_copy_to_oci_layout_and_back(capsys: pytest.CaptureFixture[str],
                                            registry: Registry, built_store: str,
                                            tmp_path: Path) -> None:
    ref = _push(capsys, registry, "trace_open:copy-src")
    layout = tmp_path / "layout"
    _skopeo("copy", "--all", "--preserve-digests", "--src-tls-verify=false",
            f"docker://{ref}", f"oci:{layout}:v1")
    index = json.loads((layout / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [built_store]
    back = f"{registry.host}/gadgets/trace_open_copy:v1"
    _skopeo("copy", "--all", "--preserve-digests", "--dest-tls-verify=false",
            f"oci:{layout}:v1", f"docker://{back}")
    opts = ResolveOptions(pull="always", verify=False,
                          registry=RegistryOptions((registry.host,)))
    resolved = resolve(back, opts)
    assert resolved.digest == built_store
    program = (Path(resolved.path) / "program.bpf.o").read_bytes()
    assert program[:4] == b"\x7fELF"


def test_basic_auth_with_docker_config(capsys: pytest.CaptureFixture[str],
                                       auth_registry: Registry, built_store: str,
                                       tmp_path: Path) -> None:
    config = docker_config(tmp_path / "auth.json", auth_registry.host)
    ref = _push(capsys, auth_registry, "trace_open:auth", "--authfile", str(config))
    # the default docker config ($HOME/.docker/config.json) is read too
    home_cfg = Path.home() / ".docker" / "config.json"
    home_cfg.parent.mkdir(parents=True)
    docker_config(home_cfg, auth_registry.host)
    image_ok(capsys, "remove", ref)
    image_ok(capsys, "pull", ref, "--insecure-registries", auth_registry.host)
    home_cfg.unlink()
    code, _, err = image(capsys, "pull", ref, "--insecure-registries", auth_registry.host)
    assert code == 7
    assert "requires authentication (401 Unauthorized)" in err and auth_registry.host in err
    assert len(err.strip().splitlines()) == 1
    bad = docker_config(tmp_path / "bad.json", auth_registry.host, password="wrong")
    msg = runner_error("--gadget", ref, "--pull", "always", "--verify-image=false",
                       "--insecure-registries", auth_registry.host, "--authfile", str(bad))
    assert "rejected the credentials" in msg and "401" in msg


def test_unreachable_and_missing_are_one_line_errors(registry: Registry, store_dir: Path
                                                     ) -> None:
    opts = RegistryOptions((registry.host,))
    with pytest.raises(ImageError, match=r"not found in .*\(404"):
        resolve(f"{registry.host}/gadgets/nothing_here:v1",
                ResolveOptions(verify=False, registry=opts))
    with pytest.raises(ImageError, match=r"cannot reach registry 127\.0\.0\.1:1 "):
        resolve("127.0.0.1:1/gadgets/x:v1",
                ResolveOptions(verify=False, registry=RegistryOptions(("127.0.0.1:1",))))
    msg = runner_error("--gadget", "127.0.0.1:1/g/x:v1", "--verify-image=false",
                       "--insecure-registries", "127.0.0.1:1")
    assert "cannot reach registry 127.0.0.1:1" in msg


def _program_digest(store: Store, digest: str) -> str:
    """The program layer of this machine's architecture (the one the runner extracts)."""
    index = store.read_manifest(digest)
    (entry,) = [m for m in index["manifests"] if m["platform"]["architecture"] == oci_arch()]
    manifest = store.read_manifest(entry["digest"])
    return str(manifest["layers"][0]["digest"])


def test_tampered_registry_blob_is_refused(capsys: pytest.CaptureFixture[str],
                                           registry: Registry, built_store: str,
                                           store_dir: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    ref = _push(capsys, registry, "trace_open_tampered:v1")
    store = Store(store_dir)
    program = _program_digest(store, built_store)
    blob = registry.blob_file(program)
    good = blob.read_bytes()
    blob.write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))
    try:
        # a fresh store: the pull is refused and nothing is tagged
        monkeypatch.setenv("KUBECTL_GADGET_STORE", str(tmp_path / "fresh"))
        msg = runner_error("--gadget", ref, "--verify-image=false",
                           "--insecure-registries", registry.host)
        assert f"blob {program} does not match its digest" in msg
        assert Store(tmp_path / "fresh").lookup(ref + "") is None
        # the store with the good copy: pulling again keeps it and the image still runs
        monkeypatch.setenv("KUBECTL_GADGET_STORE", str(store_dir))
        client = RegistryClient(registry.host, RegistryOptions((registry.host,)))
        with pytest.raises(ImageError, match="does not match its digest"):
            client.get_blob(parse_reference(ref), {"digest": program, "size": len(good)})
        image_ok(capsys, "pull", ref, "--insecure-registries", registry.host)
        assert store.read_blob(program) == good
    finally:
        blob.write_bytes(good)


def test_tampered_store_blob_is_refused_and_repaired(capsys: pytest.CaptureFixture[str],
                                                     registry: Registry, built_store: str,
                                                     store_dir: Path) -> None:
    ref = _push(capsys, registry, "trace_open_store:v1")
    store = Store(store_dir)
    program = _program_digest(store, built_store)
    path = store.blob_path(program)
    good = path.read_bytes()
    path.write_bytes(good.replace(b"\x00", b"\x01", 1))
    msg = runner_error("--gadget", ref, "--pull", "never", "--verify-image=false")
    assert f"blob {program} does not match its digest in the local store" in msg
    # a tampered download never replaces a good copy; a good one replaces a bad copy
    with pytest.raises(ImageError):
        store.write_blob(b"evil", program)
    assert path.read_bytes() != good
    image_ok(capsys, "pull", ref, "--insecure-registries", registry.host)
    assert path.read_bytes() == good
    resolved = resolve(ref, ResolveOptions(pull="never", verify=False))
    assert (Path(resolved.path) / "program.bpf.o").read_bytes() == good

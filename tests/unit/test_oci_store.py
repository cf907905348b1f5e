"""The local store as an OCI image layout: atomic, digest-checked, garbage-collected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node_runner.errors import ImageError
from node_runner.oci import media as M
from node_runner.oci.store import Store, default_store_root


def _image(store: Store, payload: bytes) -> dict:
    store.write_blob(payload)
    manifest = M.canonical_json({"schemaVersion": 2, "mediaType": M.OCI_MANIFEST,
                                 "config": M.descriptor(M.OCI_EMPTY, M.EMPTY_JSON),
                                 "layers": [M.descriptor(M.EBPF_LAYER, payload)]})
    store.write_blob(M.EMPTY_JSON)
    store.write_blob(manifest)
    return M.descriptor(M.OCI_MANIFEST, manifest)


def test_layout_files_and_ref_names(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    desc = _image(store, b"program")
    store.tag("ghcr.io/a/b:v1", desc)
    store.tag("ghcr.io/a/b:v2", desc)
    assert json.loads((tmp_path / "s" / "oci-layout").read_text()) == {
        "imageLayoutVersion": "1.0.0"}
    index = json.loads((tmp_path / "s" / "index.json").read_text())
    assert index["mediaType"] == M.OCI_INDEX and index["schemaVersion"] == 2
    names = [m["annotations"][M.REF_NAME] for m in index["manifests"]]
    assert names == ["ghcr.io/a/b:v1", "ghcr.io/a/b:v2"]
    assert store.lookup("ghcr.io/a/b:v1")["digest"] == desc["digest"]
    assert store.complete(desc["digest"], M.OCI_MANIFEST)
    assert not list((tmp_path / "s").glob("**/.tmp-*"))


def test_tampered_blob_is_refused_and_good_copy_kept(tmp_path: Path) -> None:
    store = Store(tmp_path)
    digest = store.write_blob(b"good bytes")
    with pytest.raises(ImageError, match=f"blob {digest} does not match its digest"):
        store.write_blob(b"evil bytes", digest)
    assert store.read_blob(digest) == b"good bytes"
    store.blob_path(digest).write_bytes(b"evil bytes")
    with pytest.raises(ImageError) as err:
        store.read_blob(digest)
    assert str(err.value) == (f"blob {digest} does not match its digest in the local store "
                              f"{tmp_path} (the file was changed; pull the image again)")
    assert store.write_blob(b"good bytes") == digest  # a good copy repairs a bad one
    assert store.read_blob(digest) == b"good bytes"


def test_untag_and_garbage_collect(tmp_path: Path) -> None:
    store = Store(tmp_path)
    keep, drop = _image(store, b"keep"), _image(store, b"drop")
    store.tag("x/a:1", keep)
    store.tag("x/b:1", drop)
    assert store.untag("x/b:1") and not store.untag("x/b:1")
    removed = store.garbage_collect()
    assert removed == 2  # drop's manifest and its layer; the shared empty config stays
    assert store.read_blob(M.sha256_digest(b"keep")) == b"keep"
    assert not store.has_blob(M.sha256_digest(b"drop"))


def test_missing_blob_message(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="is missing from the local store"):
        Store(tmp_path).read_blob("sha256:" + "0" * 64)
    with pytest.raises(ImageError, match="invalid digest"):
        Store(tmp_path).read_blob("sha256:../../etc/passwd")


def test_default_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECTL_GADGET_STORE", str(tmp_path / "x"))
    assert default_store_root() == tmp_path / "x"
    monkeypatch.delenv("KUBECTL_GADGET_STORE")
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_store_root() == tmp_path / "data" / "kubectl-gadget" / "store"
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert default_store_root() == Path("/var/lib/kubectl-gadget/store")

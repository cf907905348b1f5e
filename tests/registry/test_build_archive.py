"""Reproducible builds and the export/import round trip (no registry needed).

The same sources, copied to two different directories, give byte-identical images; an
OCI layout tarball carries images and their signatures to another store with the same digests,
and a tarball whose blob was changed is refused without tagging anything.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from node_runner.oci import media as M
from node_runner.oci.store import Store
from tests.conftest import GADGETS_SRC
from tests.registry.util import image, image_ok, write_keys


def test_same_sources_give_the_same_digest(capsys: pytest.CaptureFixture[str],
                                           store_dir: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    if not shutil.which("clang"):
        pytest.skip("clang not installed")
    first = shutil.copytree(GADGETS_SRC / "trace_open", tmp_path / "one" / "trace_open")
    second = shutil.copytree(GADGETS_SRC / "trace_open", tmp_path / "elsewhere" / "copy")
    out1 = image_ok(capsys, "build", str(first), "-t", "repro:a").strip()
    out2 = image_ok(capsys, "build", str(second), "-t", "repro:b").strip()
    assert out1.split("@")[1] == out2.split("@")[1]
    index = Store(store_dir).read_manifest(out1.split("@")[1])
    assert M.CREATED not in index["annotations"]
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    out3 = image_ok(capsys, "build", str(first), "-t", "repro:c").strip()
    out4 = image_ok(capsys, "build", str(second), "-t", "repro:d").strip()
    assert out3.split("@")[1] == out4.split("@")[1] != out1.split("@")[1]
    index = Store(store_dir).read_manifest(out3.split("@")[1])
    assert index["annotations"][M.CREATED] == "2023-11-14T22:13:20Z"
    # a change in the sources changes the digest
    meta = second / "gadget.yaml"
    meta.write_text(meta.read_text().replace("description: Trace", "description: Traces", 1))
    out5 = image_ok(capsys, "build", str(second), "-t", "repro:e").strip()
    assert out5.split("@")[1] != out4.split("@")[1]


def test_export_import_round_trip(capsys: pytest.CaptureFixture[str], built_store: str,
                                  store_dir: Path, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    key, _ = write_keys(tmp_path, "k")
    image_ok(capsys, "tag", "trace_open", "example.com/team/trace_open:v2")
    image_ok(capsys, "sign", "trace_open", "--key", str(key), "--push=false")
    archive = tmp_path / "gadgets.tar"
    image_ok(capsys, "export", "trace_open", "example.com/team/trace_open:v2", str(archive))
    before = {name: e["digest"] for name, e in Store(store_dir).refs()}
    assert len(before) == 3  # two names and the signature
    again = tmp_path / "again.tar"
    image_ok(capsys, "export", "trace_open", "example.com/team/trace_open:v2", str(again))
    assert again.read_bytes() == archive.read_bytes(), "export is not deterministic"
    other = tmp_path / "other-store"
    monkeypatch.setenv("KUBECTL_GADGET_STORE", str(other))
    out = image_ok(capsys, "import", str(archive))
    assert f"ghcr.io/kubectl-gadget/gadgets/trace_open:latest@{built_store}" in out
    after = {name: e["digest"] for name, e in Store(other).refs()}
    assert after == before
    assert sorted(p.name for p in (other / "blobs" / "sha256").iterdir()) == sorted(
        p.name for p in (store_dir / "blobs" / "sha256").iterdir())
    assert "yes" in image_ok(capsys, "list")


def test_import_refuses_a_changed_blob(capsys: pytest.CaptureFixture[str], built_store: str,
                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "gadgets.tar"
    image_ok(capsys, "export", "trace_open", str(archive))
    bad = tmp_path / "bad.tar"
    with tarfile.open(archive) as src, tarfile.open(bad, "w") as dst:
        for member in src.getmembers():
            fh = src.extractfile(member) if member.isfile() else None
            data = fh.read() if fh else b""
            if member.name.startswith("blobs/sha256/") and member.size > 10000:
                data = data[:-1] + b"\x00" if data[-1:] != b"\x00" else data[:-1] + b"\x01"
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if member.isfile() else None)
    monkeypatch.setenv("KUBECTL_GADGET_STORE", str(tmp_path / "fresh"))
    code, _, err = image(capsys, "import", str(bad))
    assert code == 7 and "does not match its digest" in err
    assert Store(tmp_path / "fresh").refs() == []
    index = json.loads(tarfile.open(archive).extractfile("index.json").read())  # type: ignore
    assert index["manifests"][0]["digest"] == built_store


def test_no_manifest_for_this_architecture(built_store: str) -> None:
    from node_runner.errors import ImageError
    from node_runner.oci.resolve import ResolveOptions, resolve

    with pytest.raises(ImageError) as err:
        resolve("trace_open", ResolveOptions(pull="never", verify=False, arch="riscv64"))
    assert str(err.value) == ("gadget image ghcr.io/kubectl-gadget/gadgets/trace_open:latest "
                              "has no manifest for linux/riscv64 (it has: linux/arm64, "
                              "linux/amd64)")
    objects = set()
    for arch in ("amd64", "arm64"):
        resolved = resolve("trace_open", ResolveOptions(pull="never", verify=False, arch=arch))
        assert resolved.digest == built_store and resolved.platform == f"linux/{arch}"
        assert Path(resolved.path).name == "trace_open"
        objects.add((Path(resolved.path) / "program.bpf.o").read_bytes())
    assert len(objects) == 2  # one object per architecture

"""Packing a gadget source directory into an OCI image in the local store.

One job: compile the gadget for every architecture that has a vmlinux.h under the include root,
and write one manifest per architecture (IG media types, artifact type, gadget.yaml as the
config blob, `org.opencontainers.image.*` annotations) plus an image index, then tag it.
Builds are reproducible: the object files are (see `build`), JSON is written with sorted keys,
and `created` comes from SOURCE_DATE_EPOCH or is left out, so the same sources give the same
digest on any machine. The trap avoided: a wall-clock timestamp or a temporary path leaking
into a manifest and giving every build, and every node's cache entry, a new digest.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kubectl_gadget.errors import BuildError, ImageError
from kubectl_gadget.image import build
from node_runner.errors import RunnerError
from node_runner.gadget.errors import GadgetFormatError
from node_runner.gadget.metadata import GadgetMetadata, parse_metadata
from node_runner.oci import media as M
from node_runner.oci.reference import Reference, parse_reference
from node_runner.oci.store import Store


@dataclass(frozen=True)
class PackResult:
    ref: str
    digest: str  # of the index
    platforms: tuple[tuple[str, str], ...]  # (os/arch, manifest digest)


def created_annotation() -> str:
    """RFC 3339 time from SOURCE_DATE_EPOCH, or "" (then `created` is omitted)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not epoch:
        return ""
    try:
        when = datetime.fromtimestamp(int(epoch), tz=timezone.utc)
    except (ValueError, OverflowError):
        raise BuildError(f"SOURCE_DATE_EPOCH={epoch!r} is not a Unix time") from None
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def image_annotations(meta: GadgetMetadata, fallback_title: str) -> dict[str, str]:
    pairs = {M.TITLE: meta.name or fallback_title, M.DESCRIPTION: meta.description,
             M.URL: meta.homepage_url, M.DOCUMENTATION: meta.documentation_url,
             M.SOURCE: meta.source_url, M.CREATED: created_annotation()}
    return {k: v for k, v in pairs.items() if v}


def _read_metadata(src: Path) -> tuple[bytes | None, GadgetMetadata]:
    path = src / build.METADATA_FILE
    build.check_metadata_file(src)
    if not path.is_file():
        return None, GadgetMetadata()
    data = path.read_bytes()
    try:
        return data, parse_metadata(data.decode("utf-8"), str(path))
    except (GadgetFormatError, UnicodeDecodeError) as exc:
        raise BuildError(f"packing gadget {src.name}: {exc}") from None


def _manifest(store: Store, program: bytes, config: bytes | None,
              annotations: dict[str, str]) -> tuple[bytes, str]:
    if config is None:
        config_desc = M.descriptor(M.OCI_EMPTY, M.EMPTY_JSON)
        store.write_blob(M.EMPTY_JSON)
    else:
        config_desc = M.descriptor(M.CONFIG_YAML, config)
        store.write_blob(config)
    store.write_blob(program)
    manifest: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": M.OCI_MANIFEST, "artifactType": M.ARTIFACT_TYPE,
        "config": config_desc,
        "layers": [M.descriptor(M.EBPF_LAYER, program, annotations={M.TITLE: "program.bpf.o"})],
        "annotations": annotations}
    data = M.canonical_json(manifest)
    return data, store.write_blob(data)


def _compile(src: Path, arch: str, include: str | None) -> bytes:
    with tempfile.TemporaryDirectory(prefix="gadget-build-") as tmp:
        out = Path(tmp) / build.OBJECT_FILE
        build.compile_object(src, out, arch, include)
        return out.read_bytes()


def pack(src_dir: str | Path, tag: str | None = None, store: Store | None = None,
         include: str | None = None, arches: tuple[str, ...] = ()) -> PackResult:
    """Build `src_dir` for every available architecture and store it as `tag`."""
    src = Path(src_dir).resolve()
    if not build.is_source_dir(src):
        raise BuildError(f"building image from {src_dir}: no {build.SOURCE_FILE} there")
    try:
        ref = parse_reference(tag or src.name)
    except RunnerError as exc:
        raise ImageError(f"building image from {src_dir}: {exc.message}") from None
    store = store or Store()
    wanted = arches or tuple(build.available_arches(build.include_root(src, include)))
    if not wanted:
        raise BuildError(f"building image from {src_dir}: no <arch>/vmlinux.h under the "
                         "include root")
    config, meta = _read_metadata(src)
    annotations = image_annotations(meta, src.name)
    entries, platforms = [], []
    try:
        for arch in wanted:
            data, digest = _manifest(store, _compile(src, arch, include), config, annotations)
            entries.append({"mediaType": M.OCI_MANIFEST, "digest": digest, "size": len(data),
                            "platform": {"architecture": arch, "os": "linux"}})
            platforms.append((f"linux/{arch}", digest))
        # artifactType stays on the manifests: OCI 1.0 readers (skopeo 1.9) rewrite an index
        # that carries one, and so change its digest
        index = {"schemaVersion": 2, "mediaType": M.OCI_INDEX, "manifests": entries,
                 "annotations": annotations}
        data = M.canonical_json(index)
        digest = store.write_blob(data)
        store.tag(str(ref), M.descriptor(M.OCI_INDEX, data))
    except RunnerError as exc:
        raise ImageError(f"storing image {ref}: {exc.message}") from None
    return PackResult(str(ref), digest, tuple(platforms))


def as_reference(text: str) -> Reference:
    try:
        return parse_reference(text)
    except RunnerError as exc:
        raise ImageError(exc.message) from None

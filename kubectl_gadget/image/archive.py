"""`image export` / `image import`: gadget images as an OCI image layout tarball.

One job: move images between local stores without a registry (air-gapped clusters). The
tarball is an OCI image layout (`oci-layout`, `index.json` with ref names, `blobs/sha256/*`),
written deterministically (sorted members, fixed owner and mtime), so the same images give the
same file; the images' stored signatures go along. Import reads only plain files named like
layout members, checks every blob against its digest before it enters the store, and tags an
image only when all its blobs are there. The traps avoided: a tarball member escaping the
store (`../`, links) and a corrupted archive leaving half an image tagged.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from pathlib import Path
from typing import Any

from kubectl_gadget.errors import ImageError
from node_runner.errors import RunnerError
from node_runner.oci.media import LAYOUT_VERSION, OCI_INDEX, REF_NAME, canonical_json
from node_runner.oci.reference import Reference
from node_runner.oci.signing import signature_tag
from node_runner.oci.store import Store, atomic_write

_BLOB = re.compile(r"^(?:\./)?blobs/sha256/([0-9a-f]{64})$")
MAX_MEMBER = 512 << 20


def _mtime() -> int:
    try:
        return int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    except ValueError:
        return 0


def _add(tar: tarfile.TarFile, name: str, data: bytes | None) -> None:
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.uname, info.gname = _mtime(), 0, 0, "", ""
    if data is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        return
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def _entries_for(store: Store, refs: list[Reference]) -> list[dict[str, Any]]:
    entries = []
    for ref in refs:
        entry = store.lookup(str(ref))
        if entry is None:
            raise ImageError(f"exporting {ref}: no such image in the local store {store.root}")
        entries.append(entry)
        sig = store.lookup(str(ref.with_tag(signature_tag(str(entry["digest"])))))
        if sig is not None:
            entries.append(sig)
    return entries


def export_images(store: Store, refs: list[Reference], file: str | Path) -> list[str]:
    """Write `refs` (and their signatures) as an OCI layout tarball; return the ref names."""
    try:
        entries = _entries_for(store, refs)
        digests: set[str] = set()
        for e in entries:
            digests |= store.reachable(str(e["digest"]), str(e.get("mediaType", "")))
        blobs = {d: store.read_blob(d) for d in sorted(digests)}
    except RunnerError as exc:
        raise ImageError(f"exporting images: {exc.message}") from None
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "blobs", None)
        _add(tar, "blobs/sha256", None)
        for digest, data in blobs.items():
            _add(tar, f"blobs/sha256/{digest.split(':', 1)[1]}", data)
        _add(tar, "index.json", canonical_json(index))
        _add(tar, "oci-layout", canonical_json({"imageLayoutVersion": LAYOUT_VERSION}))
    try:
        atomic_write(Path(file), buf.getvalue())
    except OSError as exc:
        raise ImageError(f"writing {file}: {exc.strerror}") from None
    return [str((e.get("annotations") or {}).get(REF_NAME, "")) for e in entries]


def _read_members(file: str | Path) -> tuple[dict[str, bytes], bytes]:
    blobs: dict[str, bytes] = {}
    index = b""
    try:
        with tarfile.open(file, mode="r:*") as tar:
            for member in tar:
                name = member.name
                if member.isdir():
                    continue
                if not member.isfile() or member.size > MAX_MEMBER:
                    raise ImageError(f"importing {file}: unexpected member {name!r}")
                m = _BLOB.match(name)
                if name.lstrip("./") in ("index.json", "oci-layout") or m:
                    fh = tar.extractfile(member)
                    data = fh.read() if fh else b""
                    if m:
                        blobs[f"sha256:{m.group(1)}"] = data
                    elif name.lstrip("./") == "index.json":
                        index = data
    except (OSError, tarfile.TarError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "bad header"
        raise ImageError(f"importing {file}: not a readable tar archive ({reason})") from None
    if not index:
        raise ImageError(f"importing {file}: no index.json (not an OCI image layout)")
    return blobs, index


def import_images(store: Store, file: str | Path) -> list[tuple[str, str]]:
    """Load an OCI layout tarball into the store; return (ref name, digest) per image."""
    blobs, index_bytes = _read_members(file)
    try:
        index = json.loads(index_bytes)
        manifests = [m for m in index.get("manifests") or [] if isinstance(m, dict)]
    except (ValueError, AttributeError):
        raise ImageError(f"importing {file}: index.json is not an OCI index") from None
    out = []
    try:
        for digest, data in blobs.items():
            store.write_blob(data, digest)
        for entry in manifests:
            name = str((entry.get("annotations") or {}).get(REF_NAME, ""))
            digest, media = str(entry.get("digest", "")), str(entry.get("mediaType", ""))
            if not name:
                continue
            if not store.complete(digest, media):
                raise ImageError(f"importing {file}: image {name} lacks some of its blobs")
            store.tag(name, entry)
            out.append((name, digest))
    except RunnerError as exc:
        raise ImageError(f"importing {file}: {exc.message}") from None
    return out

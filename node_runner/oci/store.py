"""The local image store: an OCI image layout on disk (`oci-layout`, `index.json`, `blobs/`).

One job: keep pulled and built gadget images, named by full reference in the index's
`org.opencontainers.image.ref.name` annotations, so that skopeo, oras and IG read the same
directory. Every blob read is checked against its digest, and every write is atomic (temporary
file + rename; the index is rewritten under a lock). The traps avoided: trusting bytes on disk
because their file name is a digest, a half-written blob or index after a crash, and a
tampered download overwriting a good copy (a blob already present and intact is never replaced;
one that fails its digest is replaced only by bytes that pass).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from node_runner.errors import ImageError
from node_runner.oci.media import (
    INDEX_TYPES,
    LAYOUT_VERSION,
    MANIFEST_TYPES,
    OCI_INDEX,
    REF_NAME,
    canonical_json,
    is_digest,
    sha256_digest,
)

STORE_ENV = "KUBECTL_GADGET_STORE"
SYSTEM_ROOT = "/var/lib/kubectl-gadget/store"


def default_store_root() -> Path:
    explicit = os.environ.get(STORE_ENV)
    if explicit:
        return Path(explicit)
    if os.geteuid() == 0:
        return Path(SYSTEM_ROOT)
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"),
                                                           ".local", "share")
    return Path(data) / "kubectl-gadget" / "store"


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def children(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Descriptors a manifest or index points to (config, layers, manifests, subject)."""
    out = list(manifest.get("manifests") or [])
    if isinstance(manifest.get("config"), dict):
        out.append(manifest["config"])
    out += list(manifest.get("layers") or [])
    return [d for d in out if isinstance(d, dict) and "digest" in d]


def parse_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImageError(f"{what}: not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ImageError(f"{what}: expected a JSON object")
    return obj


class Store:
    """An OCI image layout directory; created on first write."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root else default_store_root()

    # blobs ---------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        if not is_digest(digest):
            raise ImageError(f"invalid digest {digest!r}")
        return self.root / "blobs" / "sha256" / digest.split(":", 1)[1]

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def _intact(self, digest: str) -> bool:
        try:
            return sha256_digest(self.blob_path(digest).read_bytes()) == digest
        except OSError:
            return False

    def read_blob(self, digest: str) -> bytes:
        path = self.blob_path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ImageError(f"blob {digest} is missing from the local store {self.root} "
                             "(pull the image again)") from None
        except OSError as exc:
            raise ImageError(f"reading blob {digest} from {self.root}: {exc.strerror}") from None
        if sha256_digest(data) != digest:
            raise ImageError(f"blob {digest} does not match its digest in the local store "
                             f"{self.root} (the file was changed; pull the image again)")
        return data

    def write_blob(self, data: bytes, expected: str | None = None) -> str:
        """Store `data`; when `expected` is given, refuse bytes that do not hash to it."""
        digest = sha256_digest(data)
        if expected is not None and digest != expected:
            raise ImageError(f"blob {expected} does not match its digest (got {digest}); "
                             "refusing it")
        if not self._intact(digest):
            self._ensure_layout()
            atomic_write(self.blob_path(digest), data)
        return digest

    # index ---------------------------------------------------------------------------------
    def _ensure_layout(self) -> None:
        layout = self.root / "oci-layout"
        if not layout.is_file():
            atomic_write(layout, canonical_json({"imageLayoutVersion": LAYOUT_VERSION}))
        if not (self.root / "index.json").is_file():
            self._write_index([])

    def _write_index(self, manifests: list[dict[str, Any]]) -> None:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        atomic_write(self.root / "index.json", canonical_json(index))

    def entries(self) -> list[dict[str, Any]]:
        path = self.root / "index.json"
        if not path.is_file():
            return []
        index = parse_json(path.read_bytes(), f"local store index {path}")
        return [m for m in index.get("manifests") or [] if isinstance(m, dict)]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[list[dict[str, Any]]]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._ensure_layout()
            entries = self.entries()
            yield entries
            self._write_index(entries)

    def tag(self, ref_name: str, desc: dict[str, Any]) -> None:
        """Point `ref_name` at the manifest or index `desc` (replacing an older target)."""
        entry: dict[str, Any] = {k: desc[k] for k in ("mediaType", "digest", "size") if k in desc}
        if "artifactType" in desc:
            entry["artifactType"] = desc["artifactType"]
        entry["annotations"] = {**(desc.get("annotations") or {}), REF_NAME: ref_name}
        with self._locked() as entries:
            entries[:] = [e for e in entries if _ref_name(e) != ref_name]
            entries.append(entry)
            entries.sort(key=_ref_name)

    def untag(self, ref_name: str) -> bool:
        with self._locked() as entries:
            before = len(entries)
            entries[:] = [e for e in entries if _ref_name(e) != ref_name]
            return len(entries) != before

    def lookup(self, ref_name: str) -> dict[str, Any] | None:
        for entry in self.entries():
            if _ref_name(entry) == ref_name:
                return entry
        return None

    def refs(self) -> list[tuple[str, dict[str, Any]]]:
        return [(_ref_name(e), e) for e in self.entries() if _ref_name(e)]

    # graph ---------------------------------------------------------------------------------
    def read_manifest(self, digest: str) -> dict[str, Any]:
        return parse_json(self.read_blob(digest), f"manifest {digest}")

    def reachable(self, digest: str, media_type: str) -> set[str]:
        """Digests of `digest` and of everything below it that is present in the store."""
        seen = {digest}
        if media_type in MANIFEST_TYPES + INDEX_TYPES and self.has_blob(digest):
            for child in children(self.read_manifest(digest)):
                seen |= self.reachable(child["digest"], child.get("mediaType", ""))
        return seen

    def complete(self, digest: str, media_type: str) -> bool:
        """Whether every blob below `digest` is present (not whether it is intact)."""
        if not self.has_blob(digest):
            return False
        if media_type in MANIFEST_TYPES + INDEX_TYPES:
            return all(self.complete(c["digest"], c.get("mediaType", ""))
                       for c in children(self.read_manifest(digest)))
        return True

    def garbage_collect(self) -> int:
        """Delete blobs no index entry reaches; return how many were removed."""
        keep: set[str] = set()
        for entry in self.entries():
            keep |= self.reachable(entry["digest"], entry.get("mediaType", ""))
        removed = 0
        blob_dir = self.root / "blobs" / "sha256"
        for path in blob_dir.glob("*") if blob_dir.is_dir() else []:
            if f"sha256:{path.name}" not in keep and not path.name.startswith("."):
                path.unlink()
                removed += 1
        return removed


def _ref_name(entry: dict[str, Any]) -> str:
    return str((entry.get("annotations") or {}).get(REF_NAME, ""))

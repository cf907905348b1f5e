"""Copying images between the local store and a registry, blob by verified blob.

One job: walk an image graph (index -> manifests -> config and layers) in the right order.
Pulls write children before parents and tag last, so the store never names an image whose
blobs are missing; a blob already in the store and intact is not fetched again (and so a
tampered registry copy can never replace it). Pushes upload blobs, then per-arch manifests by
digest, then the index under its tag. Signatures (`sha256-<hex>.sig`) travel the same way.
The trap avoided: tagging first and leaving a half-pulled image that a later run trusts.
"""

from __future__ import annotations

from typing import Any

from node_runner.errors import ImageError
from node_runner.oci.media import INDEX_TYPES, MANIFEST_TYPES
from node_runner.oci.reference import Reference
from node_runner.oci.registry import RegistryClient
from node_runner.oci.signing import signature_tag
from node_runner.oci.store import Store, children, parse_json


def _pull_tree(store: Store, client: RegistryClient, ref: Reference, digest: str,
               data: bytes, media_type: str) -> None:
    manifest = parse_json(data, f"manifest {digest} of {ref.name}")
    for child in children(manifest):
        cdigest, cmedia = str(child["digest"]), str(child.get("mediaType", ""))
        if cmedia in INDEX_TYPES + MANIFEST_TYPES:
            if _intact(store, cdigest):  # walk it anyway: a leaf below may be damaged
                _pull_tree(store, client, ref, cdigest, store.read_blob(cdigest), cmedia)
                continue
            cdata, cmedia2, _ = client.get_manifest(ref, cdigest)
            _pull_tree(store, client, ref, cdigest, cdata, cmedia2)
        elif not _intact(store, cdigest):
            store.write_blob(client.get_blob(ref, child), cdigest)
    store.write_blob(data, digest)


def _intact(store: Store, digest: str) -> bool:
    try:
        store.read_blob(digest)
    except ImageError:
        return False
    return True


def pull(store: Store, client: RegistryClient, ref: Reference) -> dict[str, Any]:
    """Pull `ref` (all architectures) into the store, tag it there; return its descriptor."""
    data, media_type, digest = client.get_manifest(ref)
    if media_type not in INDEX_TYPES + MANIFEST_TYPES:
        raise ImageError(f"pulling {ref}: unsupported manifest type {media_type!r}")
    _pull_tree(store, client, ref, digest, data, media_type)
    desc: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(data)}
    artifact = parse_json(data, f"manifest {digest}").get("artifactType")
    if artifact:
        desc["artifactType"] = artifact
    store.tag(str(ref), desc)
    return desc


def pull_signature(store: Store, client: RegistryClient, ref: Reference,
                   digest: str) -> bool:
    """Fetch the `.sig` manifest for `digest` into the store; False when there is none."""
    tag = signature_tag(digest)
    if not client.manifest_exists(ref, tag):
        return False
    pull(store, client, ref.with_tag(tag))
    return True


def _push_tree(store: Store, client: RegistryClient, ref: Reference, digest: str,
               media_type: str) -> None:
    manifest = store.read_manifest(digest)
    for child in children(manifest):
        cdigest, cmedia = str(child["digest"]), str(child.get("mediaType", ""))
        if cmedia in INDEX_TYPES + MANIFEST_TYPES:
            _push_tree(store, client, ref, cdigest, cmedia)
            client.put_manifest(ref, store.read_blob(cdigest), cmedia, cdigest)
        else:
            client.put_blob(ref, store.read_blob(cdigest), cdigest)


def push(store: Store, client: RegistryClient, local: Reference, remote: Reference) -> str:
    """Push the store's image `local` to `remote` (and its signature if stored); digest."""
    entry = store.lookup(str(local))
    if entry is None:
        raise ImageError(f"pushing {local}: no such image in the local store {store.root}")
    digest, media_type = str(entry["digest"]), str(entry.get("mediaType", ""))
    _push_tree(store, client, remote, digest, media_type)
    client.put_manifest(remote, store.read_blob(digest), media_type,
                        remote.digest or remote.tag)
    sig = store.lookup(str(local.with_tag(signature_tag(digest))))
    if sig is not None:
        _push_tree(store, client, remote, str(sig["digest"]), str(sig["mediaType"]))
        client.put_manifest(remote, store.read_blob(str(sig["digest"])), str(sig["mediaType"]),
                            signature_tag(digest))
    return digest

"""What the `image` commands do, apart from parsing flags and printing: store and registry work.

One job: the client's image operations (list, inspect, tag, remove, pull, push, sign) as plain
functions on a Store, returning plain values for the CLI to print. Runner-side errors
(`node_runner.errors.RunnerError`, gadget format errors) are translated here into the client's
`ImageError`, so the CLI prints one line and exits 7. The trap avoided: each command catching
(or forgetting to catch) foreign exceptions its own way.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kubectl_gadget.errors import ImageError
from node_runner.errors import RunnerError
from node_runner.gadget.errors import GadgetFormatError
from node_runner.gadget.spec import GadgetSpec, load_spec
from node_runner.oci import signing, transfer
from node_runner.oci.media import INDEX_TYPES, REF_NAME, oci_arch
from node_runner.oci.reference import Reference, parse_reference
from node_runner.oci.registry import RegistryClient, RegistryOptions
from node_runner.oci.resolve import extract, local_descriptor, platform_manifest
from node_runner.oci.store import Store


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn runner-side errors into the client's ImageError, prefixed with `what`."""
    try:
        yield
    except RunnerError as exc:
        raise ImageError(f"{what}: {exc.message}" if what else exc.message) from None
    except GadgetFormatError as exc:
        raise ImageError(f"{what}: {exc}") from None


def ref_of(text: str) -> Reference:
    with translated(""):
        return parse_reference(text)


def entry_of(store: Store, ref: Reference) -> dict[str, Any]:
    with translated(f"reading {ref}"):
        entry = local_descriptor(store, ref)
    if entry is None:
        raise ImageError(f"image {ref} is not in the local store {store.root} "
                         "(image list shows what is; image pull REF fetches one)")
    return entry


@dataclass(frozen=True)
class ImageRow:
    ref: str
    digest: str
    signed: bool
    is_signature: bool


def list_images(store: Store) -> list[ImageRow]:
    rows = []
    with translated("listing images"):
        refs = store.refs()
        names = {name for name, _ in refs}
        for name, entry in refs:
            ref = parse_reference(name)
            digest = str(entry["digest"])
            sig = str(ref.with_tag(signing.signature_tag(digest)))
            rows.append(ImageRow(name, digest, sig in names,
                                 ref.tag.startswith("sha256-") and ref.tag.endswith(".sig")))
    return rows


@dataclass(frozen=True)
class Inspection:
    ref: str
    entry: dict[str, Any]
    document: dict[str, Any]  # the index or manifest
    platforms: list[tuple[str, str, dict[str, Any]]]  # (os/arch, digest, manifest)
    spec: GadgetSpec | None
    signed: bool


def inspect_image(store: Store, ref: Reference) -> Inspection:
    entry = entry_of(store, ref)
    with translated(f"inspecting {ref}"):
        digest = str(entry["digest"])
        doc = store.read_manifest(digest)
        platforms = []
        if entry.get("mediaType") in INDEX_TYPES or "manifests" in doc:
            for child in doc.get("manifests") or []:
                plat = child.get("platform") or {}
                name = f"{plat.get('os', '?')}/{plat.get('architecture', '?')}"
                platforms.append((name, str(child["digest"]),
                                  store.read_manifest(str(child["digest"]))))
        else:
            platforms.append(("any", digest, doc))
        spec = _spec(store, ref, entry)
        signed = store.lookup(str(ref.with_tag(signing.signature_tag(digest)))) is not None
    return Inspection(str(ref), entry, doc, platforms, spec, signed)


def _spec(store: Store, ref: Reference, entry: dict[str, Any]) -> GadgetSpec | None:
    arches = [oci_arch(os.uname().machine), "amd64", "arm64"]
    for arch in arches:
        try:
            mdigest, manifest = platform_manifest(store, ref, entry, arch)
        except RunnerError:
            continue
        path = extract(store, ref, mdigest, manifest)
        return load_spec(str(path), ref.repository.rsplit("/", 1)[-1])
    return None


def tag_image(store: Store, src: Reference, dst: Reference) -> str:
    entry = entry_of(store, src)
    with translated(f"tagging {src} as {dst}"):
        store.tag(str(dst), entry)
    return str(entry["digest"])


def remove_image(store: Store, ref: Reference) -> int:
    """Untag `ref` and delete blobs nothing else uses; return the number of blobs removed."""
    entry = entry_of(store, ref)
    with translated(f"removing {ref}"):
        if not store.untag(str(ref)):
            raise ImageError(f"removing {ref}: it is only known by digest; remove its tag")
        if not any(e["digest"] == entry["digest"] for _, e in store.refs()):
            store.untag(str(ref.with_tag(signing.signature_tag(str(entry["digest"])))))
        return store.garbage_collect()


def pull_image(store: Store, ref: Reference, options: RegistryOptions) -> tuple[str, bool]:
    """Pull `ref` and, when there is one, its signature; (digest, signature found)."""
    with translated(f"pulling {ref}"):
        client = RegistryClient(ref.registry, options)
        desc = transfer.pull(store, client, ref)
        signed = transfer.pull_signature(store, client, ref, str(desc["digest"]))
    return str(desc["digest"]), signed


def push_image(store: Store, ref: Reference, options: RegistryOptions,
               dest: Reference | None = None) -> str:
    entry_of(store, ref)
    target = dest or ref
    with translated(f"pushing {ref}"):
        return transfer.push(store, RegistryClient(target.registry, options), ref, target)


def sign_image(store: Store, ref: Reference, key_file: str, options: RegistryOptions,
               push: bool) -> str:
    """Sign the stored image `ref` (its top-level digest); store and optionally push it."""
    entry = entry_of(store, ref)
    digest = str(entry["digest"])
    sig_ref = ref.with_tag(signing.signature_tag(digest))
    with translated(f"signing {ref}"):
        key = signing.load_private_key(key_file)
        data = signing.payload(ref.name, digest)
        layers = [(data, signing.sign(key, data))]
        old = store.lookup(str(sig_ref))
        if old is not None:  # keep other signers' signatures, as cosign does
            manifest = store.read_manifest(str(old["digest"]))
            kept = signing.signature_layers(manifest, lambda d: store.read_blob(str(d["digest"])))
            layers = kept + layers
        manifest_bytes, config = signing.signature_manifest(layers)
        store.write_blob(config)
        for payload_bytes, _sig in layers:
            store.write_blob(payload_bytes)
        sig_digest = store.write_blob(manifest_bytes)
        store.tag(str(sig_ref), {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                 "digest": sig_digest, "size": len(manifest_bytes)})
        if push:
            transfer.push(store, RegistryClient(ref.registry, options), sig_ref, sig_ref)
    return str(sig_ref)


def ref_name(entry: dict[str, Any]) -> str:
    return str((entry.get("annotations") or {}).get(REF_NAME, ""))

"""From a gadget image reference to a built gadget directory the loader can open.

The orchestrator of this package: parse the reference, check the allowlist, consult the local
store and the pull policy, pull, verify the signature, pick this machine's manifest from the
index, and extract the eBPF object and gadget.yaml (read through the store, so every byte is
digest-checked on every run) into a cache directory keyed by the manifest digest. The runner
calls it before loading anything, so the policy holds whatever client started the runner.
The trap avoided: checking policy on the name the user typed and then running different bytes;
every decision here is made on digests that were verified on the way.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node_runner import constants as C
from node_runner.errors import ImageError
from node_runner.oci import signing, transfer
from node_runner.oci.media import (
    CONFIG_YAML,
    EBPF_LAYER,
    INDEX_TYPES,
    MANIFEST_TYPES,
    WASM_LAYER,
    oci_arch,
)
from node_runner.oci.policy import Allowlist
from node_runner.oci.reference import Reference, parse_reference
from node_runner.oci.registry import RegistryClient, RegistryOptions
from node_runner.oci.store import Store, atomic_write

PULL_POLICIES = C.PULL_POLICIES

OBJECT_FILE = "program.bpf.o"
METADATA_FILE = "gadget.yaml"
WASM_FILE = "program.wasm"  # kept beside the object: the runner says it does not run it


@dataclass(frozen=True)
class ResolveOptions:
    pull: str = "missing"
    verify: bool = True
    public_keys: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()
    registry: RegistryOptions = field(default_factory=RegistryOptions)
    store_root: str = ""
    arch: str = ""  # OCI architecture; default: this machine's


@dataclass(frozen=True)
class ResolvedGadget:
    path: str  # built gadget directory (program.bpf.o, gadget.yaml)
    ref: str  # canonical reference
    digest: str  # top-level digest (index, or manifest when there is no index)
    manifest_digest: str  # the manifest picked for this architecture
    platform: str


def local_descriptor(store: Store, ref: Reference) -> dict[str, Any] | None:
    """The store's descriptor for `ref`, also for `name@digest` of an image pulled by tag."""
    entry = store.lookup(str(ref))
    if entry is None and ref.digest and store.has_blob(ref.digest):
        manifest = store.read_manifest(ref.digest)
        media = manifest.get("mediaType") or (INDEX_TYPES[0] if "manifests" in manifest
                                              else MANIFEST_TYPES[0])
        entry = {"mediaType": media, "digest": ref.digest,
                 "size": len(store.read_blob(ref.digest))}
    return entry


def _obtain(store: Store, ref: Reference, opts: ResolveOptions) -> dict[str, Any]:
    if opts.pull not in PULL_POLICIES:
        raise ImageError(f"--pull {opts.pull!r}: want one of {', '.join(PULL_POLICIES)}")
    entry = local_descriptor(store, ref)
    present = entry is not None and store.complete(str(entry["digest"]),
                                                   str(entry.get("mediaType", "")))
    if opts.pull == "never" or (opts.pull == "missing" and present):
        if entry is None or not present:
            raise ImageError(f"gadget image {ref} is not in the local store {store.root} "
                             "(--pull never)")
        return entry
    return transfer.pull(store, RegistryClient(ref.registry, opts.registry), ref)


def _signature_layers(store: Store, ref: Reference, digest: str,
                      opts: ResolveOptions) -> list[tuple[bytes, str]]:
    sig_ref = ref.with_tag(signing.signature_tag(digest))
    if opts.pull != "never":
        try:
            transfer.pull_signature(store, RegistryClient(ref.registry, opts.registry),
                                    ref, digest)
        except ImageError as exc:
            if store.lookup(str(sig_ref)) is None:
                raise ImageError(f"verifying image {ref}: no signature in the local store, and "
                                 f"fetching one failed: {exc.message}") from None
    entry = store.lookup(str(sig_ref))
    if entry is None:
        return []
    manifest = store.read_manifest(str(entry["digest"]))
    return signing.signature_layers(manifest, lambda d: store.read_blob(str(d["digest"])))


def platform_manifest(store: Store, ref: Reference, entry: dict[str, Any],
                       arch: str) -> tuple[str, dict[str, Any]]:
    digest = str(entry["digest"])
    doc = store.read_manifest(digest)
    if entry.get("mediaType") not in INDEX_TYPES and "manifests" not in doc:
        return digest, doc
    have = []
    for child in doc.get("manifests") or []:
        plat = child.get("platform") or {}
        have.append(f"{plat.get('os', '?')}/{plat.get('architecture', '?')}")
        if plat.get("os", "linux") == "linux" and plat.get("architecture") == arch:
            return str(child["digest"]), store.read_manifest(str(child["digest"]))
    raise ImageError(f"gadget image {ref} has no manifest for linux/{arch} "
                     f"(it has: {', '.join(have) or 'none'})")


def _write_if_changed(path: Path, data: bytes) -> None:
    try:
        if path.read_bytes() == data:
            return
    except OSError:
        pass
    atomic_write(path, data)


def extract(store: Store, ref: Reference, manifest_digest: str,
            manifest: dict[str, Any]) -> Path:
    """Write the eBPF object, gadget.yaml and WASM module (if any) into its cache directory."""
    programs = [lay for lay in manifest.get("layers") or [] if lay.get("mediaType") == EBPF_LAYER]
    if not programs:
        raise ImageError(f"gadget image {ref} has no eBPF program layer ({EBPF_LAYER})")
    leaf = ref.repository.rsplit("/", 1)[-1]  # the loader names the gadget after its dir
    out = store.root / "extracted" / manifest_digest.split(":", 1)[1] / leaf
    out.mkdir(parents=True, exist_ok=True)
    _write_if_changed(out / OBJECT_FILE, store.read_blob(str(programs[0]["digest"])))
    config = manifest.get("config") or {}
    if config.get("mediaType") == CONFIG_YAML:
        _write_if_changed(out / METADATA_FILE, store.read_blob(str(config["digest"])))
    elif (out / METADATA_FILE).exists():
        (out / METADATA_FILE).unlink()
    wasm = [lay for lay in manifest.get("layers") or [] if lay.get("mediaType") == WASM_LAYER]
    if wasm:
        _write_if_changed(out / WASM_FILE, store.read_blob(str(wasm[0]["digest"])))
    elif (out / WASM_FILE).exists():
        (out / WASM_FILE).unlink()
    return out


def resolve(text: str, opts: ResolveOptions) -> ResolvedGadget:
    """Pull (per policy), verify and extract the gadget image `text`; ImageError on refusal."""
    ref = parse_reference(text)
    allow = Allowlist.parse(opts.allowed)
    if allow and not allow.has_digests:
        allow.check(ref)  # refuse before any network access when digests cannot matter
    store = Store(opts.store_root or None)
    entry = _obtain(store, ref, opts)
    digest = str(entry["digest"])
    if opts.verify:
        keys = signing.read_public_keys(opts.public_keys)
        layers = _signature_layers(store, ref, digest, opts) if keys else []
        signing.verify(str(ref), digest, layers, keys)
    arch = opts.arch or oci_arch(os.uname().machine)
    mdigest, manifest = platform_manifest(store, ref, entry, arch)
    allow.check(ref, (digest, mdigest))
    path = extract(store, ref, mdigest, manifest)
    return ResolvedGadget(str(path), str(ref), digest, mdigest, f"linux/{arch}")


def clear_cache(store: Store) -> None:
    shutil.rmtree(store.root / "extracted", ignore_errors=True)

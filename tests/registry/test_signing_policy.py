"""Signature verification and the allowlist, enforced by the runner on registry images.

Each refusal comes out of the runner as one `error` record with code `image` (exit 7) whose
message names the reason: not signed, not signed by any given key, a signature for another
digest, not in the allowed list. A signed image whose key is given resolves.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from node_runner.errors import ImageError
from node_runner.oci import signing
from node_runner.oci.media import COSIGN_PAYLOAD, COSIGN_SIGNATURE, OCI_MANIFEST, sha256_digest
from node_runner.oci.reference import parse_reference
from node_runner.oci.registry import RegistryClient, RegistryOptions
from node_runner.oci.resolve import ResolveOptions, resolve
from tests.registry.conftest import Registry
from tests.registry.util import image_ok, runner_error, write_keys

pytestmark = pytest.mark.registry


@pytest.fixture
def pushed(capsys: pytest.CaptureFixture[str], registry: Registry, built_store: str,
           tmp_path: Path) -> tuple[str, str]:
    """trace_open pushed under a per-test repository: (ref, index digest)."""
    ref = f"{registry.host}/gadgets/{tmp_path.name.lower().replace('-', '_')[:40]}:v1"
    image_ok(capsys, "tag", "trace_open", ref)
    image_ok(capsys, "push", ref, "--insecure-registries", registry.host)
    image_ok(capsys, "remove", ref, "trace_open")
    return ref, built_store


def _args(ref: str, registry: Registry, *extra: str) -> list[str]:
    return ["--gadget", ref, "--insecure-registries", registry.host, "--pull", "always",
            *extra]


def test_signed_image_resolves_with_its_key(capsys: pytest.CaptureFixture[str],
                                            registry: Registry, pushed: tuple[str, str],
                                            tmp_path: Path, store_dir: Path) -> None:
    ref, digest = pushed
    key_a, pub_a = write_keys(tmp_path, "a")
    _, pub_b = write_keys(tmp_path, "b")
    image_ok(capsys, "pull", ref, "--insecure-registries", registry.host)
    sig = image_ok(capsys, "sign", ref, "--key", str(key_a), "--insecure-registries",
                   registry.host).strip()
    assert sig.endswith(":" + signing.signature_tag(digest))
    image_ok(capsys, "remove", ref)
    opts = RegistryOptions((registry.host,))
    resolved = resolve(ref, ResolveOptions(public_keys=(str(pub_b), str(pub_a)), registry=opts))
    assert resolved.digest == digest
    assert (Path(resolved.path) / "program.bpf.o").read_bytes()[:4] == b"\x7fELF"
    # the signature layout is cosign's: one simple-signing layer with the signature annotation
    client = RegistryClient(registry.host, opts)
    raw, media, _ = client.get_manifest(parse_reference(ref), signing.signature_tag(digest))
    assert media == OCI_MANIFEST
    assert b'"' + COSIGN_PAYLOAD.encode() + b'"' in raw and COSIGN_SIGNATURE.encode() in raw


def test_unsigned_image_is_refused(registry: Registry, pushed: tuple[str, str],
                                   tmp_path: Path) -> None:
    ref, digest = pushed
    _, pub = write_keys(tmp_path, "a")
    msg = runner_error(*_args(ref, registry, "--public-key", str(pub)))
    assert msg == (f"image {ref} is not signed (no signature "
                   f"{signing.signature_tag(digest)})")
    msg = runner_error(*_args(ref, registry))
    assert "no public key given" in msg


def test_signed_by_another_key_is_refused(capsys: pytest.CaptureFixture[str],
                                          registry: Registry, pushed: tuple[str, str],
                                          tmp_path: Path) -> None:
    ref, _ = pushed
    key_a, _ = write_keys(tmp_path, "a")
    _, pub_b = write_keys(tmp_path, "b")
    image_ok(capsys, "pull", ref, "--insecure-registries", registry.host)
    image_ok(capsys, "sign", ref, "--key", str(key_a), "--insecure-registries", registry.host)
    image_ok(capsys, "remove", ref)
    msg = runner_error(*_args(ref, registry, "--public-key", str(pub_b)))
    assert msg == (f"image {ref} is not signed by any of the given keys "
                   "(1 signature(s) checked against 1 key(s))")


def _push_signature(registry: Registry, ref: str, digest: str,
                    layers: list[tuple[bytes, str]]) -> None:
    parsed = parse_reference(ref)
    client = RegistryClient(registry.host, RegistryOptions((registry.host,)))
    manifest, config = signing.signature_manifest(layers)
    client.put_blob(parsed, config, sha256_digest(config))
    for payload, _ in layers:
        client.put_blob(parsed, payload, sha256_digest(payload))
    client.put_manifest(parsed, manifest, OCI_MANIFEST, signing.signature_tag(digest))


def test_wrongly_signed_images_are_refused(registry: Registry, pushed: tuple[str, str],
                                           tmp_path: Path) -> None:
    ref, digest = pushed
    key_a, pub_a = write_keys(tmp_path, "a")
    key = signing.load_private_key(str(key_a))
    other = "sha256:" + "0" * 64
    # a valid signature, but over a payload that names another image
    wrong_payload = signing.payload(parse_reference(ref).name, other)
    _push_signature(registry, ref, digest, [(wrong_payload, signing.sign(key, wrong_payload))])
    msg = runner_error(*_args(ref, registry, "--public-key", str(pub_a)))
    assert msg == f"image {ref} has a signature for {other}, not for its digest {digest}"
    # the right payload with a signature of other bytes
    right_payload = signing.payload(parse_reference(ref).name, digest)
    _push_signature(registry, ref, digest, [(right_payload, signing.sign(key, b"other"))])
    msg = runner_error(*_args(ref, registry, "--public-key", str(pub_a)))
    assert "is not signed by any of the given keys" in msg
    with pytest.raises(ImageError, match="is not signed by any"):
        resolve(ref, ResolveOptions(public_keys=(str(pub_a),),
                                    registry=RegistryOptions((registry.host,))))


def test_allowlist(registry: Registry, pushed: tuple[str, str]) -> None:
    ref, digest = pushed
    opts = RegistryOptions((registry.host,))

    def resolves(*allowed: str) -> str:
        return resolve(ref, ResolveOptions(verify=False, allowed=allowed,
                                           registry=opts)).digest

    assert resolves(f"{registry.host}/gadgets/*") == digest
    assert resolves("ghcr.io/x/y:v1", digest) == digest
    assert resolves(ref) == digest
    refusals = [f"{registry.host}/other/*", f"{registry.host}/gad*/x", "sha256:" + "1" * 64,
                f"{registry.host}/gadgets/elsewhere:v1", f"{registry.host}/gadgets"]
    for entry in refusals:
        msg = runner_error(*_args(ref, registry, "--verify-image=false",
                                  "--allowed-gadgets", entry))
        assert msg.startswith(f"gadget {ref} is not in the allowed list (allowed: ")
    # a wildcard that only shares a string prefix does not match
    msg = runner_error(*_args(ref, registry, "--verify-image", "false",
                              "--allowed-gadgets", f"{registry.host}/gadget*/elsewhere,"
                              f"{registry.host}/gadgets-evil/*"))
    assert "not in the allowed list" in msg


def test_directory_gadget_is_refused_under_a_policy(built_gadgets: dict[str, Path]) -> None:
    msg = runner_error("--gadget", str(built_gadgets["trace_open"]),
                       "--allowed-gadgets", "ghcr.io/kubectl-gadget/gadgets/*")
    assert "is a local directory" in msg
    msg = runner_error("--gadget", str(built_gadgets["trace_open"]), "--verify-image")
    assert "has no signature to verify" in msg

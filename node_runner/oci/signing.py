"""Cosign-compatible image signatures: ECDSA P-256 over a simple-signing payload.

One job: make and check the bytes of a signature. A signature of the image whose top-level
(index) digest is D is an OCI manifest tagged `sha256-<hex of D>.sig` in the same repository;
each layer is a simple-signing JSON payload (`application/vnd.dev.cosign.simplesigning.v1+json`)
naming D, with the base64 DER ECDSA-SHA256 signature of the payload bytes in the layer
annotation `dev.cosignproject.cosign/signature`. Keys are PEM (PKCS#8 private, PKIX public), so
`cosign verify --key` accepts our signatures and we accept cosign's. Transport (store, registry)
is the caller's business. The traps avoided: accepting a valid signature whose payload names
another digest, and trusting the payload without checking the signature over its exact bytes.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from node_runner.errors import ImageError
from node_runner.oci.media import (
    COSIGN_PAYLOAD,
    COSIGN_SIGNATURE,
    COSIGN_TYPE,
    OCI_IMAGE_CONFIG,
    OCI_MANIFEST,
    canonical_json,
    descriptor,
    sha256_digest,
)

PASSWORD_ENV = "COSIGN_PASSWORD"


def signature_tag(digest: str) -> str:
    return digest.replace(":", "-") + ".sig"


def generate_key() -> tuple[bytes, bytes]:
    """A new P-256 key pair as (private PKCS#8 PEM, public PKIX PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def _load_pem_private(data: bytes, path: str) -> object:
    password = os.environ.get(PASSWORD_ENV)
    try:
        return serialization.load_pem_private_key(data, password.encode() if password else None)
    except TypeError:  # encrypted without a password, or a password for a plain key
        if password:
            return serialization.load_pem_private_key(data, None)
        raise ImageError(f"reading signing key {path}: it is encrypted; set "
                         f"${PASSWORD_ENV}") from None
    except ValueError:
        raise ImageError(f"reading signing key {path}: not a PEM private key (or a wrong "
                         f"${PASSWORD_ENV})") from None


def load_private_key(path: str) -> ec.EllipticCurvePrivateKey:
    try:
        with open(path, "rb") as fh:
            key = _load_pem_private(fh.read(), path)
    except OSError as exc:
        raise ImageError(f"reading signing key {path}: {exc.strerror}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ImageError(f"signing key {path}: want an ECDSA P-256 key")
    return key


def load_public_key(pem: bytes, where: str) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise ImageError(f"public key {where}: not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ImageError(f"public key {where}: want an ECDSA key")
    return key


def read_public_keys(paths: Sequence[str]) -> list[ec.EllipticCurvePublicKey]:
    keys = []
    for path in paths:
        try:
            with open(path, "rb") as fh:
                keys.append(load_public_key(fh.read(), path))
        except OSError as exc:
            raise ImageError(f"reading public key {path}: {exc.strerror}") from None
    return keys


def payload(docker_reference: str, digest: str) -> bytes:
    return canonical_json({
        "critical": {"identity": {"docker-reference": docker_reference},
                     "image": {"docker-manifest-digest": digest}, "type": COSIGN_TYPE},
        "optional": None})


def sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> str:
    return base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


def signature_manifest(layers: list[tuple[bytes, str]]) -> tuple[bytes, bytes]:
    """(manifest bytes, config bytes) for (payload, base64 signature) layers, cosign layout."""
    config = canonical_json({
        "architecture": "", "os": "", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(p) for p, _ in layers]}})
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_IMAGE_CONFIG, config),
        "layers": [descriptor(COSIGN_PAYLOAD, p, annotations={COSIGN_SIGNATURE: s})
                   for p, s in layers]}
    return canonical_json(manifest), config


def signature_layers(manifest: dict[str, Any], read_blob: Callable[[dict], bytes]
                     ) -> list[tuple[bytes, str]]:
    """(payload, base64 signature) of each signature layer of a `.sig` manifest."""
    out = []
    for layer in manifest.get("layers") or []:
        sig = (layer.get("annotations") or {}).get(COSIGN_SIGNATURE)
        if layer.get("mediaType") == COSIGN_PAYLOAD and sig:
            out.append((read_blob(layer), str(sig)))
    return out


def _named_digest(data: bytes) -> str:
    try:
        doc = json.loads(data)
        critical = doc["critical"]
        if critical.get("type") != COSIGN_TYPE:
            return ""
        return str(critical["image"]["docker-manifest-digest"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""


def _verifies(key: ec.EllipticCurvePublicKey, data: bytes, sig_b64: str) -> bool:
    try:
        key.verify(base64.b64decode(sig_b64, validate=True), data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def verify(image: str, digest: str, layers: list[tuple[bytes, str]],
           keys: Sequence[ec.EllipticCurvePublicKey]) -> None:
    """Raise ImageError unless one layer is signed by one key and names `digest`."""
    if not keys:
        raise ImageError(f"verifying image {image}: no public key given (--public-key FILE), "
                         "or run it with --verify-image=false")
    if not layers:
        raise ImageError(f"image {image} is not signed (no signature {signature_tag(digest)})")
    other = ""
    for data, sig in layers:
        if not any(_verifies(k, data, sig) for k in keys):
            continue
        named = _named_digest(data)
        if named == digest:
            return
        other = named or "no digest"
    if other:
        raise ImageError(f"image {image} has a signature for {other}, not for its digest "
                         f"{digest}")
    raise ImageError(f"image {image} is not signed by any of the given keys "
                     f"({len(layers)} signature(s) checked against {len(keys)} key(s))")

"""Signatures: the cosign payload and layout, and every refusal reason."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from node_runner.errors import ImageError
from node_runner.oci import media as M
from node_runner.oci import signing

DIGEST = "sha256:" + "c" * 64


def _keys() -> tuple[ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey]:
    private, public = signing.generate_key()
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(private, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key, signing.load_public_key(public, "test")


def test_payload_is_simple_signing() -> None:
    doc = json.loads(signing.payload("ghcr.io/a/b", DIGEST))
    assert doc == {"critical": {"identity": {"docker-reference": "ghcr.io/a/b"},
                                "image": {"docker-manifest-digest": DIGEST},
                                "type": "cosign container image signature"},
                   "optional": None}
    assert signing.signature_tag(DIGEST) == "sha256-" + "c" * 64 + ".sig"


def test_signature_is_der_ecdsa_sha256_over_the_payload() -> None:
    key, pub = _keys()
    data = signing.payload("r/x", DIGEST)
    sig = signing.sign(key, data)
    pub.verify(base64.b64decode(sig), data, ec.ECDSA(hashes.SHA256()))  # raises if wrong
    manifest, config = signing.signature_manifest([(data, sig)])
    doc = json.loads(manifest)
    assert doc["mediaType"] == M.OCI_MANIFEST
    assert doc["layers"] == [{"mediaType": M.COSIGN_PAYLOAD, "digest": M.sha256_digest(data),
                              "size": len(data), "annotations": {M.COSIGN_SIGNATURE: sig}}]
    assert doc["config"]["digest"] == M.sha256_digest(config)
    layers = signing.signature_layers(doc, lambda d: data)
    assert layers == [(data, sig)]


def test_verify_accepts_and_refuses() -> None:
    key_a, pub_a = _keys()
    _, pub_b = _keys()
    good = signing.payload("r/x", DIGEST)
    signing.verify("r/x:v1", DIGEST, [(good, signing.sign(key_a, good))], [pub_b, pub_a])
    with pytest.raises(ImageError, match="is not signed by any of the given keys"):
        signing.verify("r/x:v1", DIGEST, [(good, signing.sign(key_a, good))], [pub_b])
    with pytest.raises(ImageError, match=r"^image r/x:v1 is not signed \(no signature"):
        signing.verify("r/x:v1", DIGEST, [], [pub_a])
    other = signing.payload("r/x", "sha256:" + "d" * 64)
    with pytest.raises(ImageError, match="has a signature for sha256:d+, not for its digest"):
        signing.verify("r/x:v1", DIGEST, [(other, signing.sign(key_a, other))], [pub_a])
    with pytest.raises(ImageError, match="no public key given"):
        signing.verify("r/x:v1", DIGEST, [(good, signing.sign(key_a, good))], [])
    with pytest.raises(ImageError, match="not signed by any"):
        signing.verify("r/x:v1", DIGEST, [(good, "not base64!")], [pub_a])


def test_bad_key_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "k.pem"
    path.write_text("nonsense")
    with pytest.raises(ImageError, match="not a PEM private key"):
        signing.load_private_key(str(path))
    with pytest.raises(ImageError, match="not a PEM public key"):
        signing.read_public_keys([str(path)])
    with pytest.raises(ImageError, match="reading public key"):
        signing.read_public_keys([str(tmp_path / "missing.pub")])

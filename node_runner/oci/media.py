"""Names shared by everything that reads or writes gadget images: media types, annotation keys.

One job: hold the OCI and Inspektor Gadget interface names in one place, plus the two helpers
every writer needs (canonical JSON bytes and sha256 digests). The trap avoided: each module
spelling a media type or annotation key by hand and one of them drifting, or serialising the
same manifest two ways and getting two digests.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

ARTIFACT_TYPE = "application/vnd.gadget.v1+binary"
EBPF_LAYER = "application/vnd.gadget.ebpf.program.v1+binary"
WASM_LAYER = "application/vnd.gadget.wasm.program.v1+binary"
BTFGEN_LAYER = "application/vnd.gadget.btfgen.v1+binary"
CONFIG_YAML = "application/vnd.gadget.config.v1+yaml"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)

COSIGN_PAYLOAD = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE = "dev.cosignproject.cosign/signature"
COSIGN_TYPE = "cosign container image signature"

REF_NAME = "org.opencontainers.image.ref.name"
TITLE = "org.opencontainers.image.title"
DESCRIPTION = "org.opencontainers.image.description"
URL = "org.opencontainers.image.url"
DOCUMENTATION = "org.opencontainers.image.documentation"
SOURCE = "org.opencontainers.image.source"
CREATED = "org.opencontainers.image.created"

EMPTY_JSON = b"{}"
LAYOUT_VERSION = "1.0.0"

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_digest(text: str) -> bool:
    return bool(_DIGEST.match(text))


def canonical_json(obj: Any) -> bytes:
    """The one serialisation used for everything we write (sorted keys, no spaces)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    desc: dict[str, Any] = {"mediaType": media_type, "digest": sha256_digest(data),
                            "size": len(data)}
    desc.update({k: v for k, v in extra.items() if v})
    return desc


def oci_arch(machine: str) -> str:
    """`uname -m` -> OCI architecture name."""
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)

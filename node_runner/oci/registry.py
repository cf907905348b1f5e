"""The only module that talks to OCI registries (HTTP, through oras-py's session and auth).

One job: move verified bytes between this process and a registry: manifests and indexes by tag
or digest, blobs by digest, with credentials from a docker config file and plain http for the
registries the user lists as insecure. oras-py is thin, so this adds what it lacks: pushing and
pulling indexes and manifests with any media type, checking every manifest and blob against its
digest (and size) before anyone sees it, Bearer-token challenges, and one-line errors.
The traps avoided: oras's request retry that sleeps for minutes on an unreachable host, its
basic-auth backend raising AttributeError on a 401 when no credentials are configured, and
requests/oras exceptions escaping as tracebacks; here every failure becomes an ImageError
naming the registry and the cause.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import oras.provider
import requests

from node_runner.errors import ImageError
from node_runner.oci.media import INDEX_TYPES, MANIFEST_TYPES, sha256_digest
from node_runner.oci.reference import Reference

TIMEOUT = 30.0
MAX_MANIFEST = 4 << 20
_ACCEPT = ", ".join(INDEX_TYPES + MANIFEST_TYPES)


@dataclass(frozen=True)
class RegistryOptions:
    insecure_registries: tuple[str, ...] = ()
    authfile: str = ""

    def is_insecure(self, registry: str) -> bool:
        return registry in self.insecure_registries or "*" in self.insecure_registries


def default_authfile() -> str:
    for env in ("REGISTRY_AUTH_FILE",):
        if os.environ.get(env):
            return os.environ[env]
    base = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(base, "config.json")


def _credentials(authfile: str, registry: str) -> str | None:
    """base64("user:password") for `registry` from a docker config file, or None."""
    try:
        with open(authfile, encoding="utf-8") as fh:
            config = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ImageError(f"reading registry credentials from {authfile}: {exc}") from None
    auths = config.get("auths") or {} if isinstance(config, dict) else {}
    for key in (registry, f"https://{registry}", f"http://{registry}",
                f"https://{registry}/v1/", f"https://{registry}/v2/"):
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            return str(entry["auth"])
        if entry.get("username"):
            pair = f"{entry['username']}:{entry.get('password', '')}"
            return base64.b64encode(pair.encode()).decode()
    return None


class _Oras(oras.provider.Registry):
    """oras's Registry with a request method that fails fast and answers auth challenges."""

    def __init__(self, registry: str, insecure: bool, basic: str | None) -> None:
        super().__init__(hostname=registry, insecure=insecure, auth_backend="basic")
        self.basic = basic
        self.bearer: str | None = None

    def do_request(self, url: str, method: str = "GET", data: Any = None,
                   headers: dict | None = None, json: Any = None,
                   stream: bool = False) -> requests.Response:
        headers = dict(headers or {})
        if self.bearer:
            headers["Authorization"] = f"Bearer {self.bearer}"
        resp = self._send(method, url, data, headers, stream)
        if resp.status_code != 401:
            return resp
        challenge = resp.headers.get("WWW-Authenticate", "")
        if challenge.lower().startswith("bearer"):
            self.bearer = self._token(challenge)
            if self.bearer is None:
                return resp
            headers["Authorization"] = f"Bearer {self.bearer}"
        elif self.basic:
            headers["Authorization"] = f"Basic {self.basic}"
        else:
            return resp
        resp.close()
        return self._send(method, url, data, headers, stream)

    def _send(self, method: str, url: str, data: Any, headers: dict,
              stream: bool) -> requests.Response:
        return self.session.request(method, url, data=data, headers=headers, stream=stream,
                                    verify=self._tls_verify, timeout=TIMEOUT)

    def _token(self, challenge: str) -> str | None:
        fields = dict(part.split("=", 1) for part in challenge[6:].strip().split(",")
                      if "=" in part)
        params = {k.strip(): v.strip().strip('"') for k, v in fields.items()}
        realm = params.pop("realm", "")
        if not realm:
            return None
        headers = {"Authorization": f"Basic {self.basic}"} if self.basic else {}
        resp = self.session.get(realm, params=params, headers=headers, timeout=TIMEOUT,
                                verify=self._tls_verify)
        if resp.status_code != 200:
            return None
        body = resp.json()
        return body.get("token") or body.get("access_token")


class RegistryClient:
    """Verified manifest and blob transfer with one registry."""

    def __init__(self, registry: str, options: RegistryOptions | None = None) -> None:
        opts = options or RegistryOptions()
        self.registry = registry
        self.authfile = opts.authfile or default_authfile()
        self.insecure = opts.is_insecure(registry)
        self._oras = _Oras(registry, self.insecure, _credentials(self.authfile, registry))
        self.base = f"{'http' if self.insecure else 'https'}://{registry}/v2"

    # plumbing ------------------------------------------------------------------------------
    def _request(self, method: str, url: str, what: str, ok: Iterable[int],
                 **kwargs: Any) -> requests.Response:
        try:
            resp = self._oras.do_request(url, method, **kwargs)
        except requests.exceptions.SSLError:
            raise ImageError(f"{what}: TLS handshake with {self.registry} failed (if it serves "
                             f"plain http, pass --insecure-registries {self.registry})") from None
        except requests.exceptions.ConnectionError as exc:
            reason = "connection refused" if "refused" in str(exc).lower() else "unreachable"
            raise ImageError(f"{what}: cannot reach registry {self.registry} ({reason})") from None
        except requests.exceptions.RequestException as exc:
            raise ImageError(f"{what}: request to {self.registry} failed: "
                             f"{type(exc).__name__}") from None
        if resp.status_code not in ok:
            raise self._status_error(resp, what)
        return resp

    def _status_error(self, resp: requests.Response, what: str) -> ImageError:
        code = resp.status_code
        detail = _registry_message(resp)
        if code == 401:
            if self._oras.basic is None:
                return ImageError(f"{what}: {self.registry} requires authentication (401 "
                                  f"Unauthorized) and {self.authfile} has no credentials for it "
                                  "(docker login, or --authfile FILE)")
            return ImageError(f"{what}: {self.registry} rejected the credentials from "
                              f"{self.authfile} (401 Unauthorized)")
        if code == 403:
            return ImageError(f"{what}: access denied by {self.registry} (403 Forbidden)")
        if code == 404:
            return ImageError(f"{what}: not found in {self.registry} (404{detail})")
        return ImageError(f"{what}: {self.registry} answered {code} {resp.reason}{detail}")

    # reads ---------------------------------------------------------------------------------
    def get_manifest(self, ref: Reference, reference: str | None = None
                     ) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of the manifest or index `ref` names, digest-checked."""
        target = reference or ref.digest or ref.tag
        what = f"pulling manifest {ref.name}{'@' if ':' in target else ':'}{target}"
        resp = self._request("GET", f"{self.base}/{ref.repository}/manifests/{target}", what,
                             (200,), headers={"Accept": _ACCEPT}, stream=True)
        data = _read_limited(resp, MAX_MANIFEST, what)
        digest = sha256_digest(data)
        expected = target if target.startswith("sha256:") else (
            resp.headers.get("Docker-Content-Digest") or digest)
        if digest != expected:
            raise ImageError(f"{what}: manifest {expected} does not match its digest "
                             f"(got {digest}); refusing it")
        media_type = _media_type(data, resp.headers.get("Content-Type", ""))
        return data, media_type, digest

    def manifest_exists(self, ref: Reference, reference: str) -> bool:
        what = f"checking {ref.name}:{reference}"
        resp = self._request("HEAD", f"{self.base}/{ref.repository}/manifests/{reference}",
                             what, (200, 404), headers={"Accept": _ACCEPT})
        return resp.status_code == 200

    def get_blob(self, ref: Reference, desc: dict[str, Any]) -> bytes:
        digest, size = str(desc["digest"]), int(desc.get("size", -1))
        what = f"pulling blob {digest} of {ref.name}"
        resp = self._request("GET", f"{self.base}/{ref.repository}/blobs/{digest}", what,
                             (200,), stream=True)
        data = _read_limited(resp, size + 1 if size >= 0 else 1 << 30, what)
        if sha256_digest(data) != digest or (size >= 0 and len(data) != size):
            raise ImageError(f"{what}: blob {digest} does not match its digest "
                             f"(got {sha256_digest(data)}, {len(data)} bytes); refusing it")
        return data

    def blob_exists(self, ref: Reference, digest: str) -> bool:
        resp = self._request("HEAD", f"{self.base}/{ref.repository}/blobs/{digest}",
                             f"checking blob {digest} in {ref.name}", (200, 404))
        return resp.status_code == 200

    # writes --------------------------------------------------------------------------------
    def put_blob(self, ref: Reference, data: bytes, digest: str) -> None:
        if self.blob_exists(ref, digest):
            return
        what = f"pushing blob {digest} to {ref.name}"
        start = self._request("POST", f"{self.base}/{ref.repository}/blobs/uploads/", what,
                              (202,), headers={"Content-Length": "0"})
        location = start.headers.get("Location", "")
        if not location:
            raise ImageError(f"{what}: {self.registry} gave no upload location")
        if location.startswith("/"):
            location = self.base[: -len("/v2")] + location
        sep = "&" if "?" in location else "?"
        self._request("PUT", f"{location}{sep}digest={digest}", what, (201, 204), data=data,
                      headers={"Content-Type": "application/octet-stream",
                               "Content-Length": str(len(data))})

    def put_manifest(self, ref: Reference, data: bytes, media_type: str, reference: str) -> str:
        """Upload a manifest or index under a tag or its digest; return its digest."""
        what = f"pushing manifest to {ref.name}:{reference}"
        self._request("PUT", f"{self.base}/{ref.repository}/manifests/{reference}", what,
                      (200, 201, 202), data=data, headers={"Content-Type": media_type})
        return sha256_digest(data)


def _read_limited(resp: requests.Response, limit: int, what: str) -> bytes:
    chunks, total = [], 0
    try:
        for chunk in resp.iter_content(65536):
            total += len(chunk)
            if total > limit:
                raise ImageError(f"{what}: larger than expected ({limit} bytes at most)")
            chunks.append(chunk)
    except requests.exceptions.RequestException as exc:
        raise ImageError(f"{what}: download failed: {type(exc).__name__}") from None
    finally:
        resp.close()
    return b"".join(chunks)


def _media_type(data: bytes, header: str) -> str:
    try:
        obj = json.loads(data)
    except ValueError:
        obj = {}
    media = obj.get("mediaType") if isinstance(obj, dict) else None
    if not media and isinstance(obj, dict):
        media = INDEX_TYPES[0] if "manifests" in obj else None
    return str(media or header.split(";")[0].strip())


def _registry_message(resp: requests.Response) -> str:
    try:
        errors = resp.json().get("errors") or []
        msg = errors[0].get("message", "") if errors else ""
    except (ValueError, AttributeError, IndexError):
        msg = ""
    return f": {msg}" if msg else ""

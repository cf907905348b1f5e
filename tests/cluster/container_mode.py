"""Container mode of the cluster tests: runner pods as real OCI containers of the runner image.

With `KUBECTL_GADGET_TEST_CONTAINERS=1` (`make test-containers`) the product fixtures map the
runner image, built from this tree, pushed to a registry on 127.0.0.1 and pulled back
(tests/runner_image.py), so fakekube's kubelet runs every runner pod with runc instead of as a
`python -m node_runner` process, and target pods are runc containers too (unless
KUBECTL_GADGET_TEST_TARGETS says otherwise). A gadget given as a directory reaches the runner
containers as the client ships it to any cluster (a ConfigMap mounted into the pod).
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.runner_image import UnpackedImage

CONTAINERS_ENV = "KUBECTL_GADGET_TEST_CONTAINERS"


def container_mode() -> bool:
    """Are runner pods OCI containers of the runner image rather than processes?"""
    return os.environ.get(CONTAINERS_ENV, "") not in ("", "0")


def runner_image(request: pytest.FixtureRequest) -> UnpackedImage | None:
    """In container mode the runner image (the session's `pulled_runner_image`), else None."""
    if not container_mode():
        return None
    if not shutil.which("runc"):
        pytest.skip(f"{CONTAINERS_ENV}=1 runs runner pods with runc: apt-get install runc")
    image: UnpackedImage = request.getfixturevalue("pulled_runner_image")
    return image

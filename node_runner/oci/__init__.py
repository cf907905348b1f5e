"""Gadget images as OCI artifacts: references, local store, registry, signatures, policy.

Runner-side and free of Kubernetes imports, so the runner image can pull and verify on its own;
the client uses the same modules as a lower layer. `resolve` is the orchestrator; the other
modules do not import each other except for `media` (shared names) and `digests`.
"""

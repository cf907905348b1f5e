"""How the tool is shipped: the wheel and sdist, the one-file binary, the krew manifest.

Used by `make wheel` and `make dist` (`python -m kubectl_gadget.release`), and by the binary
itself (`frozen`, its entry point). Nothing here runs during a gadget run.
"""

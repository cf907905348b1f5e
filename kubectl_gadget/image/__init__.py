"""The image wing: building gadgets, the local OCI store commands, push/pull and signing.

`build` compiles a gadget source directory (also used alone, by the runner image build), `pack`
turns it into an OCI image, `ops` and `archive` are the store and registry operations, `show`
renders an inspection, `run_flags` the image flags of `run`, and `cli` the `image` commands.
Kept free of imports so `python -m kubectl_gadget.image.build` needs nothing else.
"""

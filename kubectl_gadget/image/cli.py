"""`kubectl gadget image ...`: build, store, share and sign gadget images.

One job: flags in, one line or one table out; the work is in `pack`, `ops` and
`archive`. Every boolean flag also takes `--flag=true|false` (BoolFlagCommand). The trap
avoided: commands that print tracebacks or exit on their own; errors are `ImageError` (exit 7)
or `BuildError` (exit 3) and the entry point prints them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from kubectl_gadget.boolflags import BoolFlagGroup
from kubectl_gadget.errors import GadgetError, ImageError
from kubectl_gadget.image import archive, ops, pack
from kubectl_gadget.image.run_flags import existing_file
from node_runner.oci.registry import RegistryOptions
from node_runner.oci.signing import generate_key
from node_runner.oci.store import Store

EXAMPLES = """
\b
Examples:
  # build into the local store as trace_open (= <default registry>/trace_open:latest)
  kubectl gadget image build gadgets/trace_open
  # build and name it for a registry, push it, sign it
  kubectl gadget image build gadgets/trace_open -t registry.example.com/gadgets/trace_open:v1
  kubectl gadget image push registry.example.com/gadgets/trace_open:v1
  kubectl gadget image generate-key --output-key-prefix cosign
  kubectl gadget image sign registry.example.com/gadgets/trace_open:v1 --key cosign.key
  # run it, accepting only images signed by that key
  sudo kubectl gadget run registry.example.com/gadgets/trace_open:v1 --local --public-key cosign.pub
  # air-gapped: carry images in a file
  kubectl gadget image export trace_open trace_exec gadgets.tar
  kubectl gadget image import gadgets.tar

The local store is an OCI image layout: /var/lib/kubectl-gadget/store for root,
$XDG_DATA_HOME/kubectl-gadget/store otherwise, or $KUBECTL_GADGET_STORE. Short names use the
prefix $KUBECTL_GADGET_REGISTRY (default ghcr.io/kubectl-gadget/gadgets).
"""


def _store(ctx: click.Context) -> Store:
    return Store(ctx.obj.get("store") if ctx.obj else None)


def registry_options(fn: Any) -> Any:
    fn = click.option("--authfile", default="", metavar="FILE", callback=existing_file,
                      help="Docker config file with credentials (default ~/.docker/config.json)."
                      )(fn)
    return click.option("--insecure-registries", multiple=True, metavar="LIST",
                        help="Comma-separated registries (host:port) to reach over plain http.",
                        )(fn)


def _reg(insecure: tuple[str, ...], authfile: str) -> RegistryOptions:
    items = tuple(p.strip() for item in insecure for p in item.split(",") if p.strip())
    return RegistryOptions(items, authfile)


@click.group("image", cls=BoolFlagGroup, epilog=EXAMPLES,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--store", "store_dir", default=None, metavar="DIR", envvar="KUBECTL_GADGET_STORE",
              help="Local store directory (OCI image layout).")
@click.pass_context
def image(ctx: click.Context, store_dir: str | None) -> None:
    """Build, store, share and sign gadget images (OCI artifacts)."""
    ctx.ensure_object(dict)
    ctx.obj["store"] = store_dir


@image.command("build", epilog="""
\b
Examples:
  kubectl gadget image build gadgets/trace_open
  kubectl gadget image build gadgets/trace_open -t 127.0.0.1:5000/gadgets/trace_open:v1
  SOURCE_DATE_EPOCH=1700000000 kubectl gadget image build gadgets/trace_open
""")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("-t", "--tag", default=None, metavar="REF",
              help="Name of the image (default: the directory's name as a short name).")
@click.option("--arch", "arches", multiple=True, metavar="ARCH",
              help="Only these architectures (amd64, arm64); default: every one with a vmlinux.h.")
@click.pass_context
def build_cmd(ctx: click.Context, directory: str, tag: str | None,
              arches: tuple[str, ...]) -> None:
    """Compile DIRECTORY (program.bpf.c, gadget.yaml) into an image in the local store.

    One manifest per architecture with a vmlinux.h under the include root, in an image index.
    The same sources give the same digest (set SOURCE_DATE_EPOCH to record a creation time).
    """
    res = pack.pack(directory, tag, _store(ctx), arches=arches)
    for platform, digest in res.platforms:
        click.echo(f"{platform}\t{digest}", err=True)
    click.echo(f"{res.ref}@{res.digest}")


@image.command("list", epilog="""
\b
Examples:
  kubectl gadget image list
  kubectl gadget image list --all --no-trunc
""")
@click.option("--all", "show_all", is_flag=True, help="Also list signature manifests (.sig).")
@click.option("--no-trunc", is_flag=True, help="Show full digests.")
@click.pass_context
def list_cmd(ctx: click.Context, show_all: bool, no_trunc: bool) -> None:
    """List the images in the local store."""
    rows = [r for r in ops.list_images(_store(ctx)) if show_all or not r.is_signature]
    width = max([len(r.ref) for r in rows] + [9])
    click.echo(f"{'REFERENCE':<{width}}  {'DIGEST':<{71 if no_trunc else 19}}  SIGNED")
    for r in rows:
        digest = r.digest if no_trunc else r.digest[:19]
        click.echo(f"{r.ref:<{width}}  {digest:<{71 if no_trunc else 19}}  "
                   f"{'yes' if r.signed else '-'}")


@image.command("inspect", epilog="""
\b
Examples:
  kubectl gadget image inspect trace_open
  kubectl gadget image inspect 127.0.0.1:5000/gadgets/trace_open:v1 -o json
""")
@click.argument("ref")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.pass_context
def inspect_cmd(ctx: click.Context, ref: str, output: str) -> None:
    """Show an image's index, manifests, layers, annotations, params and datasources."""
    from kubectl_gadget.image.show import inspection_json, inspection_text

    info = ops.inspect_image(_store(ctx), ops.ref_of(ref))
    if output == "json":
        click.echo(json.dumps(inspection_json(info), indent=2, sort_keys=True))
    else:
        click.echo(inspection_text(info))


@image.command("tag", epilog="""
\b
Examples:
  kubectl gadget image tag trace_open 127.0.0.1:5000/gadgets/trace_open:v1
""")
@click.argument("src")
@click.argument("dst")
@click.pass_context
def tag_cmd(ctx: click.Context, src: str, dst: str) -> None:
    """Give the stored image SRC another name DST."""
    dst_ref = ops.ref_of(dst)
    digest = ops.tag_image(_store(ctx), ops.ref_of(src), dst_ref)
    click.echo(f"{dst_ref}@{digest}")


@image.command("remove", epilog="""
\b
Examples:
  kubectl gadget image remove trace_open
  kubectl gadget image remove 127.0.0.1:5000/gadgets/trace_open:v1 trace_exec
""")
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
def remove_cmd(ctx: click.Context, refs: tuple[str, ...]) -> None:
    """Remove images from the local store (blobs no other image uses are deleted)."""
    store = _store(ctx)
    for ref in refs:
        parsed = ops.ref_of(ref)
        ops.remove_image(store, parsed)
        click.echo(f"removed {parsed}")


@image.command("export", epilog="""
\b
Examples:
  kubectl gadget image export trace_open trace_exec gadgets.tar
""")
@click.argument("args", nargs=-1, required=True, metavar="REF... FILE")
@click.pass_context
def export_cmd(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Write images (and their stored signatures) to FILE, an OCI image layout tarball."""
    if len(args) < 2:
        raise click.UsageError("want at least one REF and a FILE")
    refs = [ops.ref_of(a) for a in args[:-1]]
    names = archive.export_images(_store(ctx), refs, args[-1])
    click.echo(f"exported {len(names)} image(s) to {args[-1]}")


@image.command("import", epilog="""
\b
Examples:
  kubectl gadget image import gadgets.tar
""")
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_context
def import_cmd(ctx: click.Context, file: str) -> None:
    """Load images from an OCI image layout tarball (as written by export) into the store."""
    for name, digest in archive.import_images(_store(ctx), file):
        click.echo(f"{name}@{digest}")


@image.command("push", epilog="""
\b
Examples:
  kubectl gadget image push registry.example.com/gadgets/trace_open:v1
  kubectl gadget image push 127.0.0.1:5000/g/trace_open:v1 --insecure-registries 127.0.0.1:5000
""")
@click.argument("ref")
@registry_options
@click.pass_context
def push_cmd(ctx: click.Context, ref: str, insecure_registries: tuple[str, ...],
             authfile: str) -> None:
    """Push a stored image (all architectures, and its signature if stored) to its registry."""
    parsed = ops.ref_of(ref)
    digest = ops.push_image(_store(ctx), parsed, _reg(insecure_registries, authfile))
    click.echo(f"{parsed}@{digest}")


@image.command("pull", epilog="""
\b
Examples:
  kubectl gadget image pull trace_open
  kubectl gadget image pull 127.0.0.1:5000/g/trace_open:v1 --insecure-registries 127.0.0.1:5000
""")
@click.argument("ref")
@registry_options
@click.pass_context
def pull_cmd(ctx: click.Context, ref: str, insecure_registries: tuple[str, ...],
             authfile: str) -> None:
    """Pull an image (every blob digest-checked) and its signature, if any, into the store."""
    parsed = ops.ref_of(ref)
    digest, signed = ops.pull_image(_store(ctx), parsed, _reg(insecure_registries,
                                                                      authfile))
    click.echo(f"{parsed}@{digest}{'' if signed else ' (not signed)'}")


@image.command("sign", epilog="""
\b
Examples:
  kubectl gadget image sign registry.example.com/gadgets/trace_open:v1 --key cosign.key
  kubectl gadget image sign trace_open --key cosign.key --push=false
""")
@click.argument("ref")
@click.option("--key", "key_file", required=True, type=click.Path(dir_okay=False),
              help="PEM ECDSA P-256 private key ($COSIGN_PASSWORD if encrypted).")
@click.option("--push/--no-push", default=True, show_default=True,
              help="Also upload the signature to the image's registry.")
@registry_options
@click.pass_context
def sign_cmd(ctx: click.Context, ref: str, key_file: str, push: bool,
             insecure_registries: tuple[str, ...], authfile: str) -> None:
    """Sign a stored image with a key (cosign format, tag sha256-<digest>.sig)."""
    parsed = ops.ref_of(ref)
    sig = ops.sign_image(_store(ctx), parsed, key_file,
                               _reg(insecure_registries, authfile), push)
    click.echo(sig)


@image.command("generate-key", epilog="""
\b
Examples:
  kubectl gadget image generate-key --output-key-prefix cosign   # cosign.key, cosign.pub
""")
@click.option("--output-key-prefix", default="cosign", show_default=True,
              help="Write PREFIX.key (private, mode 0600) and PREFIX.pub.")
def generate_key_cmd(output_key_prefix: str) -> None:
    """Create an ECDSA P-256 key pair for `image sign` and `run --public-key`."""
    private, public = generate_key()
    key_path, pub_path = Path(f"{output_key_prefix}.key"), Path(f"{output_key_prefix}.pub")
    if key_path.exists():
        raise ImageError(f"{key_path} exists; not overwriting a private key")
    try:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(private)
        pub_path.write_bytes(public)
    except OSError as exc:
        raise ImageError(f"writing key pair {output_key_prefix}.*: {exc.strerror}") from None
    click.echo(f"private key: {key_path}\npublic key:  {pub_path}")



def main(argv: list[str] | None = None) -> int:
    """`python -m kubectl_gadget.image.cli ...`: the group on its own (used by `make gadgets`)."""
    try:
        image.main(args=argv, prog_name="kubectl-gadget image", standalone_mode=False)
    except GadgetError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())

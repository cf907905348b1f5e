"""The in-tree gadget catalogue behind `kubectl gadget list-gadgets`: one line per gadget.

The gadgets are the ones this tool ships: the `gadgets/` sources of a checkout, or, in an
installed package (wheel, one-file binary), the packaged copy of those sources. A line is the
gadget's directory name (what `kubectl gadget run NAME` takes) and the `description` of its
gadget.yaml, read with the same parser the runner uses; nothing is compiled, so listing needs
neither root nor clang. The trap avoided: a hand-kept list in the code or the README that
drifts from the gadgets actually shipped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from kubectl_gadget.errors import GadgetError
from kubectl_gadget.gadget_arg import IN_TREE
from node_runner import packaged
from node_runner.gadget.errors import GadgetFormatError
from node_runner.gadget.metadata import parse_metadata

SOURCE_FILE = "program.bpf.c"
METADATA_FILE = "gadget.yaml"


@dataclass(frozen=True)
class CatalogueEntry:
    """One shipped gadget."""

    name: str
    description: str
    readme: str  # path of its README.md, "" when there is none


def catalogue_root() -> Path | None:
    """Where the shipped gadget sources are: the checkout's gadgets/, else the packaged copy."""
    for root in (IN_TREE, packaged.SHARE / packaged.SOURCES):
        if root.is_dir() and any(root.glob(f"*/{SOURCE_FILE}")):
            return root
    return None


def load_catalogue(root: Path | None = None) -> list[CatalogueEntry]:
    """Every gadget under `root` (default: catalogue_root()), sorted by name."""
    root = root if root is not None else catalogue_root()
    if root is None:
        raise GadgetError("listing gadgets: this installation carries no gadget sources")
    entries = []
    for src in sorted(p.parent for p in root.glob(f"*/{SOURCE_FILE}")):
        meta_file = src / METADATA_FILE
        try:
            text = meta_file.read_text(encoding="utf-8") if meta_file.is_file() else ""
            meta = parse_metadata(text, str(meta_file))
        except (OSError, UnicodeDecodeError, GadgetFormatError) as exc:
            raise GadgetError(f"listing gadgets: reading {meta_file}: {exc}") from None
        readme = src / "README.md"
        entries.append(CatalogueEntry(src.name, " ".join(meta.description.split()),
                                      str(readme) if readme.is_file() else ""))
    return entries


def format_catalogue(entries: list[CatalogueEntry], output: str = "columns") -> str:
    """The catalogue as aligned columns (NAME, DESCRIPTION) or JSON lines."""
    if output == "json":
        return "".join(json.dumps(asdict(e)) + "\n" for e in entries)
    width = max([len("NAME"), *(len(e.name) for e in entries)]) + 2
    lines = [f"{'NAME':<{width}}DESCRIPTION"]
    lines += [f"{e.name:<{width}}{e.description}".rstrip() for e in entries]
    return "\n".join(lines) + "\n"


@click.command("list-gadgets")
@click.option("-o", "--output", default="columns", show_default=True,
              type=click.Choice(["columns", "json"]), help="columns or json (one object a line).")
def list_gadgets(output: str) -> None:
    """List the gadgets this tool ships (run them by name: kubectl gadget run NAME)."""
    click.echo(format_catalogue(load_catalogue(), output), nl=False)

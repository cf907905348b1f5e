"""`kubectl gadget run GADGET --help`: the run command's help plus that gadget's own params
(type, default, description) and fields (per datasource, with their descriptions).

One job: a click Command class that notices a help flag next to a GADGET argument, resolves
the gadget as `run` would (compiling a source directory, reading a built one; an image's
params need it pulled, so only the in-tree and local cases are described), and appends the
gadget's section to the usual help. Without a GADGET, `run --help` is unchanged.
"""

from __future__ import annotations

import click

from kubectl_gadget.boolflags import BoolFlagCommand
from kubectl_gadget.errors import GadgetError

HELP_FLAGS = ("-h", "--help")


def gadget_section(gadget: str, cluster: bool) -> str:
    """The params and fields of GADGET as help text; a note when they cannot be known here."""
    from kubectl_gadget.gadget_arg import resolve_gadget
    from kubectl_gadget.session import expected_schema

    try:
        spec = resolve_gadget(gadget, cluster=cluster).spec
    except GadgetError as exc:
        return f"Gadget {gadget}: cannot describe it ({exc})\n"
    if spec is None:
        return (f"Gadget {gadget}: an image; its params and fields are known once it is pulled "
                "(kubectl gadget image pull, then image inspect)\n")
    lines = [f"Params of gadget {spec.name} (flags, or --param NAME=VALUE):"]
    for key, p in sorted(spec.params.items()):
        value = "" if p.kind == "bool" else f" {p.kind.upper()}"
        default = f" (default {p.default})" if p.default not in (None, "") else ""
        lines.append(f"  --{key}{value}{default}  {p.description}".rstrip())
    if not spec.params:
        lines.append("  (none)")
    for ds, fields in expected_schema(spec, cluster).items():
        lines.append("")
        lines.append(f"Fields of datasource {ds} (for --fields, --filter, --sort):")
        for f in fields:
            notes = f.get("annotations") or {}
            hidden = " (hidden by default)" if notes.get("columns.hidden") == "true" else ""
            desc = notes.get("description", "")
            lines.append(f"  {f['name']:<28} {f['type']:<8} {desc}{hidden}".rstrip())
    return "\n".join(lines) + "\n"


class GadgetHelpCommand(BoolFlagCommand):
    """`run`: with a GADGET and --help, the help ends with the gadget's params and fields."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not any(a in HELP_FLAGS for a in args):
            return super().parse_args(ctx, args)
        rest = [a for a in args if a not in HELP_FLAGS]
        try:
            with self.make_context(self.name or "run", rest, parent=ctx.parent) as probe:
                gadget = probe.params.get("gadget")
                local = bool(probe.params.get("local"))
        except (click.ClickException, GadgetError):
            gadget = None
        if not gadget:
            return super().parse_args(ctx, args)
        click.echo(self.get_help(ctx))
        click.echo("")
        click.echo(gadget_section(str(gadget), cluster=not local), nl=False)
        ctx.exit(0)
        return []

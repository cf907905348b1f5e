"""Boolean flags the way kubectl users type them: `--flag`, `--no-flag`, `--flag=true|false`.

One job: a click Command class that rewrites `--flag=VALUE` for boolean flags before click
parses, so `--verify-image=false` means `--no-verify-image`. The trap avoided: click's optional
value options (`flag_value`), which swallow the next positional argument
(`--verify-image trace_open` would read `trace_open` as the flag's value).
"""

from __future__ import annotations

import click

from kubectl_gadget.errors import UsageError
from node_runner.constants import FALSE_WORDS, TRUE_WORDS

TRUE = TRUE_WORDS
FALSE = FALSE_WORDS


def rewrite_bool_args(params: list[click.Parameter], args: list[str]) -> list[str]:
    """`--x=true` -> `--x`, `--x=false` -> `--no-x` (or dropped when there is no `--no-x`)."""
    flags: dict[str, click.Option] = {}
    for p in params:
        if isinstance(p, click.Option) and p.is_flag and p.is_bool_flag:
            for name in p.opts:
                flags[name] = p
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            return out + args[i:]
        name, sep, value = arg.partition("=")
        opt = flags.get(name) if sep else None
        if opt is None:
            out.append(arg)
            continue
        low = value.lower()
        if low not in TRUE | FALSE:
            raise UsageError(f"{name}={value}: expected true or false")
        if low in TRUE:
            out.append(opt.opts[0])
        elif opt.secondary_opts:
            out.append(opt.secondary_opts[0])
        elif opt.default:
            raise UsageError(f"{name} cannot be turned off")
    return out


class BoolFlagCommand(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, rewrite_bool_args(self.get_params(ctx), args))


class BoolFlagGroup(click.Group):
    """A group whose subcommands are BoolFlagCommands."""

    command_class = BoolFlagCommand

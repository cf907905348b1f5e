"""Gadget parameters given as command-line flags (`--failed`, `--comm=bash`, `--pid 42`).

A gadget's params are only known once its spec is read, so `run` collects the flags it does
not know itself and they are parsed here against the spec, before any runner starts. A typo is
a usage error that lists the gadget's params (with the closest match), and a bad value is
refused with the param's type. Boolean params accept `--flag`, `--flag=true|false`. Every param
can also be given as `--param NAME=VALUE`, the only way for one whose name a `run` flag
already takes (a param named `timeout`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

from kubectl_gadget.errors import UsageError
from node_runner.gadget.spec import GadgetSpec, ParamSpec, encode_param


def describe_params(spec: GadgetSpec) -> str:
    if not spec.params:
        return f"gadget {spec.name} has no params"
    items = []
    for key, p in sorted(spec.params.items()):
        value = "" if p.kind == "bool" else f"={p.kind.upper()}"
        items.append(f"--{key}{value}")
    return (f"params of gadget {spec.name}: " + ", ".join(items)
            + " (each also as --param NAME=VALUE)")


def _unknown(flag: str, spec: GadgetSpec, key: str | None = None,
             run_flags: Sequence[str] = ()) -> UsageError:
    if key is not None:
        close = difflib.get_close_matches(key, list(spec.params), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return UsageError(f"unknown gadget param {key}{hint}; {describe_params(spec)}")
    params = [f"--{k}" for k in spec.params]
    close = difflib.get_close_matches(flag, [*params, *run_flags], n=1)
    if close and close[0] not in params:  # a typo of a flag of `run`, not of a gadget param
        return UsageError(f"unknown flag {flag} (did you mean {close[0]}?)")
    hint = f" (did you mean {close[0]}?)" if close else ""
    return UsageError(f"unknown flag {flag}{hint}; {describe_params(spec)}")


def _check(flag: str, p: ParamSpec | None, value: str) -> None:
    if p is None:
        return
    try:
        encode_param(p, value)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}" if flag.startswith("--param") else str(exc)) from None


def parse_param_options(items: Sequence[str], spec: GadgetSpec | None) -> dict[str, str]:
    """`--param NAME=VALUE` (repeatable): any param, also one whose name a `run` flag takes."""
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UsageError(f"--param {item!r}: expected NAME=VALUE")
        p: ParamSpec | None = spec.params.get(key) if spec else None
        if spec is not None and p is None:
            raise _unknown(f"--param {key}", spec, key)
        _check(f"--param {key}", p, value)
        out[key] = value
    return out


def parse_param_flags(args: Sequence[str], spec: GadgetSpec | None,
                      run_flags: Sequence[str] = ()) -> dict[str, str]:
    """Turn leftover CLI args into {param key: value}; validate against `spec` when given.
    `run_flags` (the command's own flags) are offered for typos that look like one of them."""
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or arg == "--":
            raise UsageError(f"unexpected argument {arg!r}")
        key, eq, value = arg[2:].partition("=")
        p: ParamSpec | None = spec.params.get(key) if spec else None
        if spec is not None and p is None:
            raise _unknown(f"--{key}", spec, run_flags=run_flags)
        if not eq:
            is_bool = p is not None and p.kind == "bool"
            nxt = args[i + 1] if i + 1 < len(args) else None
            if is_bool or nxt is None or nxt.startswith("--"):
                if not is_bool and p is not None:
                    raise UsageError(f"--{key} needs a value ({p.kind})")
                value = "true"
            else:
                value, i = nxt, i + 1
        _check(f"--{key}", p, value)
        out[key] = value
        i += 1
    return out


def runner_param_args(params: Mapping[str, str]) -> list[str]:
    args: list[str] = []
    for key, value in params.items():
        args += ["--param", f"{key}={value}"]
    return args

"""`kubectl gadget`: the command line. It parses flags, calls, and prints errors as exit codes.

Everything below raises typed errors (`GadgetError` and subclasses carry `exit_code`); here they
become one line on stderr, never a traceback. User input (filters, fields, sort keys, gadget
params) is parsed into plain values before any runner starts, so a typo costs nothing.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from kubectl_gadget import __version__
from kubectl_gadget.array_flags import array_options
from kubectl_gadget.cluster.cli import cluster_options
from kubectl_gadget.completion import (
    complete_gadgets,
    complete_namespaces,
    complete_nodes,
    complete_output,
    complete_pods,
    kubectl_complete,
    started_as_plugin_completer,
)
from kubectl_gadget.errors import GadgetError, UsageError
from kubectl_gadget.gadget_help import GadgetHelpCommand
from kubectl_gadget.image.run_flags import image_run_options
from kubectl_gadget.numflags import SECONDS, Count

if TYPE_CHECKING:
    from kubectl_gadget.launch import RunRequest
    from kubectl_gadget.pipeline import Operators

RUN_EXAMPLES = """
\b
Examples:
  # trace exec() in the pods labelled app=cart of namespace shop, on every node they run on
  kubectl gadget run trace_exec -n shop -l app=cart
  # failed opens anywhere in the cluster, as JSON lines, for 30 seconds
  kubectl gadget run trace_open -A --failed -o json --timeout 30
  # trace programs started on this host for 10 seconds
  sudo kubectl gadget run trace_exec --local --timeout 10
  # failed opens only, as JSON lines, from one container of this host
  sudo kubectl gadget run trace_open --local --failed -c web -o json
  # a gadget from a source directory, compiled on the fly, with a filter
  sudo kubectl gadget run ./gadgets/trace_open --local --filter 'comm==cat,error~^E'
  # only some columns
  sudo kubectl gadget run trace_open --local --fields pid,comm,fname

Gadget params are flags too (e.g. --failed for trace_open; --pid, --uid, --comm for most
gadgets); an unknown flag lists the gadget's params.
"""


class _Commands(click.Group):
    """The top-level group: `gc`, `list`, `list-gadgets` and `image` are imported when used, so
    `version` and `run --local` never load the Kubernetes client or the registry stack."""

    lazy = {"gc": ("kubectl_gadget.cluster.cli", "gc"),
            "list": ("kubectl_gadget.cluster.cli", "list_sessions"),
            "list-gadgets": ("kubectl_gadget.catalogue", "list_gadgets"),
            "completion": ("kubectl_gadget.completion", "completion"),
            "image": ("kubectl_gadget.image.cli", "image")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module, attr = self.lazy[cmd_name]
            command: click.Command = getattr(importlib.import_module(module), attr)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="kubectl-gadget",
                      message="%(prog)s %(version)s")
def cli() -> None:
    """Inspect Kubernetes clusters and Linux hosts with eBPF gadgets, installing nothing."""


@cli.command()
def version() -> None:
    """Print the client version."""
    click.echo(f"kubectl-gadget {__version__}")


def _run_flags(ctx: click.Context) -> tuple[str, ...]:
    return tuple(o for p in ctx.command.params for o in (*p.opts, *p.secondary_opts)
                 if o.startswith("--"))


def _split_nodes(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(n.strip() for v in values for n in v.split(",") if n.strip())


def _terminal_width() -> int | None:
    """Columns fit `COLUMNS` when set, else the terminal's width; piped output is not cut."""
    import os
    import shutil

    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def _operators(output: str, fields: str | None, filter_expr: str | None, sort: str | None,
               max_entries: int | None, headers: bool = True) -> Operators:
    from kubectl_gadget.operators.fields import parse_fields
    from kubectl_gadget.operators.filter import parse_filters
    from kubectl_gadget.operators.sort import check_max_entries, parse_sort
    from kubectl_gadget.output import parse_output_mode
    from kubectl_gadget.pipeline import Operators

    return Operators(
        filters=parse_filters(filter_expr) if filter_expr else (),
        selection=parse_fields(fields), mode=parse_output_mode(output),
        sort=parse_sort(sort) if sort else (), max_entries=check_max_entries(max_entries),
        headers=headers, width=_terminal_width() if output == "columns" else None)


@cli.command(cls=GadgetHelpCommand,
             context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
             epilog=RUN_EXAMPLES)
@click.argument("gadget", shell_complete=complete_gadgets)
@click.option("--local", is_flag=True, help="Run on this host instead of a cluster.")
@click.option("-n", "--namespace", default=None, shell_complete=complete_namespaces,
              help="Namespace of the target pods (default: the context's).")
@click.option("-A", "--all-namespaces", is_flag=True, help="Target pods of every namespace.")
@click.option("-l", "--selector", default="", help="Label selector of the target pods.")
@click.option("-p", "--podname", default="", shell_complete=complete_pods,
              help="Name of the target pod.")
@click.option("-c", "--containername", "container_names", multiple=True,
              help="Only trace containers with this name.")
@click.option("--container-id", "container_ids", multiple=True,
              help="Local: only trace this container (full id or unique prefix of 12+ chars).")
@click.option("--node", "nodes", multiple=True, shell_complete=complete_nodes,
              help="Only these nodes (a,b or repeated).")
@click.option("-o", "--output", "output", default="columns", show_default=True,
              shell_complete=complete_output,
              help="columns, json, jsonpretty, yaml, pcap (packets of tcpdump), or none "
              "(nothing on stdout: diagnostics and the exit code only).")
@click.option("--no-headers", is_flag=True, help="Columns without the header line.")
@click.option("--fields", default=None, help="Columns to show: a,b (exactly) or +a,-b.")
@click.option("-F", "--filter", "filter_expr", default=None,
              help="Keep events matching all of: f==v, !=, <, <=, >, >=, ~ regex; comma = and.")
@click.option("--sort", default=None, help="Sort array outputs: field,-field.")
@click.option("--max-entries", type=Count(0), default=None, help="Rows to keep per array output.")
@click.option("--timeout", type=SECONDS, default=None, help="Stop after this many seconds.")
@click.option("-v", "--verbose", is_flag=True, help="Show runner details (verifier log).")
@click.option("--param", "param_options", multiple=True, metavar="NAME=VALUE",
              help="Set a gadget param (repeatable); params are also flags (--NAME VALUE) "
              "unless a run flag has their name.")
@click.option("--fail-on-lost", is_flag=True,
              help="Exit 1 when events were lost (full ring buffers), for CI scripts.")
@cluster_options
@image_run_options
@array_options
@click.pass_context
def run(ctx: click.Context, **flags: Any) -> None:
    """Run GADGET and show its events until Ctrl-C or --timeout."""
    from kubectl_gadget.launch import launch  # the run machinery, only for `run`

    ctx.exit(launch(_request(ctx, **flags)))


def run_request(argv: Sequence[str]) -> RunRequest:
    """The request `run ARGV` makes, parsed and checked as on the command line (the Python
    API's way in); UsageError for anything the command line would refuse."""
    try:
        with run.make_context("run", list(argv)) as ctx:
            return _request(ctx, **ctx.params)
    except click.ClickException as exc:
        raise UsageError(exc.format_message()) from None


def _request(ctx: click.Context, gadget: str, local: bool, namespace: str | None,
             all_namespaces: bool, selector: str, podname: str,
             container_names: tuple[str, ...], container_ids: tuple[str, ...],
             nodes: tuple[str, ...], output: str, fields: str | None,
             filter_expr: str | None, sort: str | None, max_entries: int | None,
             timeout: float | None, verbose: bool, param_options: tuple[str, ...],
             fail_on_lost: bool, no_headers: bool, **cluster: object) -> RunRequest:
    from kubectl_gadget.launch import RunRequest

    ops = _operators(output, fields, filter_expr, sort, max_entries, headers=not no_headers)
    return RunRequest(gadget, local, ops,
                      namespace, all_namespaces, selector, podname, container_names,
                      container_ids, _split_nodes(nodes), timeout, verbose, tuple(ctx.args),
                      param_options, fail_on_lost, _run_flags(ctx), dict(cluster))



def main(argv: list[str] | None = None) -> int:
    if argv is None and started_as_plugin_completer():
        return kubectl_complete()
    if argv is not None:  # called in-process (tests, the Python API's callers)
        return _main(argv)
    try:
        code = _main(argv)
    finally:  # the process exits next: the client's background threads stop writing
        session = sys.modules.get("kubectl_gadget.session")  # none ran if it was never loaded
        if session is not None:
            session.close_diag()
    _exit(code)
    return code  # not reached


def _exit(code: int) -> None:
    """End the process without the interpreter's shutdown. Daemon threads of a run (log
    followers, watches, the owners' lookups) can still be inside a write to stdout or stderr,
    and Python aborts (SIGABRT, after the run's summary) when its shutdown meets a stream lock
    held by one; nothing at exit is left to run for the command line, so output is flushed and
    the process ends."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`), a closed stream
            pass
    os._exit(code)


def _main(argv: list[str] | None) -> int:
    try:
        rv = cli.main(args=argv, prog_name="kubectl-gadget", standalone_mode=False)
    except GadgetError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        print("Aborted.", file=sys.stderr)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())

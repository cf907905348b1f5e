"""Shell completion: `kubectl gadget completion bash|zsh|fish` and kubectl's plugin completion.

One job: offer candidates for what is being typed, from click's completion machinery over the
real command tree (subcommands, flags) plus the values this tool knows: gadget names (in-tree
and the local image store), `-o` modes, and namespaces, pods and nodes read from the API. The
API is asked only when one of those three is being completed (one list call; any failure
completes nothing, a TAB never prints an error). kubectl 1.26+ completes `kubectl gadget ...`
by running `kubectl_complete-gadget ARGS... WORD` from PATH and reading cobra's format (one
candidate a line, `value<TAB>help`, then `:DIRECTIVE`); the same program answers when it is
started under that name (a symlink to `kubectl-gadget`).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click
from click.shell_completion import CompletionItem, ShellComplete, get_completion_class

PROG = "kubectl-gadget"
COMPLETE_VAR = "_KUBECTL_GADGET_COMPLETE"
PLUGIN_COMPLETER = "kubectl_complete-gadget"
# cobra's ShellCompDirective values (kubectl reads them from the plugin completer)
DIRECTIVE_DEFAULT = 0  # the shell may complete file names
DIRECTIVE_NO_FILES = 4


def complete_gadgets(ctx: click.Context, param: click.Parameter,
                     incomplete: str) -> list[CompletionItem]:
    """In-tree gadget names, the local store's images, and paths (a gadget directory)."""
    if incomplete.startswith((".", "/", "~")):
        return [CompletionItem(incomplete, type="dir")]
    names = set(_in_tree_names()) | set(_store_names())
    return [CompletionItem(n) for n in sorted(names) if n.startswith(incomplete)]


def complete_output(ctx: click.Context, param: click.Parameter,
                    incomplete: str) -> list[CompletionItem]:
    from kubectl_gadget.output.formatter import OUTPUT_MODES

    return [CompletionItem(m) for m in OUTPUT_MODES if m.startswith(incomplete)]


def complete_namespaces(ctx: click.Context, param: click.Parameter,
                        incomplete: str) -> list[CompletionItem]:
    return _from_api(ctx, incomplete, lambda kube: _names(kube.list_namespaces()))


def complete_pods(ctx: click.Context, param: click.Parameter,
                  incomplete: str) -> list[CompletionItem]:
    def pods(kube: Any) -> list[str]:
        namespace = None if ctx.params.get("all_namespaces") else (
            ctx.params.get("namespace") or kube.namespace)
        return _names(kube.list_pods(namespace))
    return _from_api(ctx, incomplete, pods)


def complete_nodes(ctx: click.Context, param: click.Parameter,
                   incomplete: str) -> list[CompletionItem]:
    return _from_api(ctx, incomplete, lambda kube: _names(kube.list_nodes()))


def _names(items: list[dict[str, Any]]) -> list[str]:
    return [str(i.get("metadata", {}).get("name", "")) for i in items]


def _from_api(ctx: click.Context, incomplete: str, fetch: Any) -> list[CompletionItem]:
    from kubectl_gadget.cluster.kube import Kube, KubeConfig  # only when completing these
    from kubectl_gadget.errors import GadgetError

    try:
        kube = Kube(KubeConfig(ctx.params.get("kubeconfig"), ctx.params.get("context")))
        names = fetch(kube)
    except GadgetError:
        return []
    return [CompletionItem(n) for n in sorted(set(names)) if n and n.startswith(incomplete)]


def _in_tree_names() -> list[str]:
    from kubectl_gadget.catalogue import SOURCE_FILE, catalogue_root

    root = catalogue_root()
    return [p.parent.name for p in root.glob(f"*/{SOURCE_FILE}")] if root else []


def _store_names() -> list[str]:
    from node_runner.oci.store import Store

    try:
        refs = Store().refs()
    except Exception:  # noqa: BLE001 - an unreadable store completes nothing, never a traceback
        return []
    return [name for name, _entry in refs if not name.endswith(".sig")]


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the completion script of SHELL.

    \b
      source <(kubectl-gadget completion bash)      # bash, e.g. in ~/.bashrc
      kubectl-gadget completion zsh > "${fpath[1]}/_kubectl-gadget"
      kubectl-gadget completion fish > ~/.config/fish/completions/kubectl-gadget.fish
    For `kubectl gadget <TAB>` (kubectl 1.26+), put `kubectl_complete-gadget` on PATH (a
    symlink to kubectl-gadget, or the installed entry point of that name).
    """
    from kubectl_gadget.cli import cli

    cls = get_completion_class(shell)
    assert cls is not None  # click.Choice let only known shells through
    click.echo(cls(cli, {}, PROG, COMPLETE_VAR).source())


class _Plugin(ShellComplete):
    """click's machinery, answered in cobra's format for kubectl."""

    name = "kubectl"
    source_template = ""


def plugin_candidates(args: list[str]) -> tuple[list[str], int]:
    """Candidates (`value` or `value<TAB>help`) and the cobra directive for `args`, the last
    being the word under the cursor (kubectl passes "" for a new word)."""
    from kubectl_gadget.cli import cli

    words, incomplete = (args[:-1], args[-1]) if args else ([], "")
    items = _Plugin(cli, {}, PROG, COMPLETE_VAR).get_completions(words, incomplete)
    lines, directive = [], DIRECTIVE_NO_FILES
    for item in items:
        if item.type in ("file", "dir"):
            directive = DIRECTIVE_DEFAULT
            continue
        help_text = " ".join(str(item.help or "").split())
        lines.append(f"{item.value}\t{help_text}" if help_text else str(item.value))
    return lines, directive


def kubectl_complete(argv: list[str] | None = None) -> int:
    """The `kubectl_complete-gadget` program: kubectl's plugin completion protocol."""
    lines, directive = plugin_candidates(list(sys.argv[1:] if argv is None else argv))
    sys.stdout.write("".join(f"{line}\n" for line in lines) + f":{directive}\n")
    return 0


def started_as_plugin_completer() -> bool:
    return os.path.basename(sys.argv[0]) == PLUGIN_COMPLETER


if __name__ == "__main__":
    sys.exit(kubectl_complete())

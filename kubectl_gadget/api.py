"""The Python API: `kubectl_gadget.run(...)` yields a gadget's events as objects.

One job: turn keyword arguments into the `run` command line's flags, parse them with that very
command (same checks, same defaults, same targets: `local=True` on this host, else the cluster
of the kubeconfig), and run the request through the same `launch` and `Session` as the CLI,
in a worker thread, with a pipeline whose formatters hand `Event`s and `Rows` over instead of
printing. Diagnostics go to `diag` (stderr by default). Leaving the loop early (break, an
exception, Ctrl-C) stops the runners gracefully and waits for them; a run that fails raises
`GadgetError` with the exit code the CLI would return (README, "Exit codes").
"""

from __future__ import annotations

import atexit
import io
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kubectl_gadget.errors import GadgetError
from kubectl_gadget.operators.fields import FieldSelection
from kubectl_gadget.output.objects import Event, Item, ObjectFormatter, Rows
from kubectl_gadget.pipeline import Operators, Pipeline
from kubectl_gadget.session import stderr_diag

__all__ = ["Event", "Rows", "RunFailed", "run", "run_args"]

_SHORT = {"namespace": "--namespace", "containers": "--containername", "filter": "--filter",
          "container_ids": "--container-id", "nodes": "--node", "params": "--param"}


def run_args(gadget: str, options: Mapping[str, Any]) -> list[str]:
    """The `run` command line of `run(gadget, **options)`: names as flags (`all_namespaces`
    -> `--all-namespaces`), True as a bare flag, False/None left out, lists repeated,
    `params={"name": value}` as `--param name=value`."""
    argv = [gadget, "-o", "jsonpretty"]  # a structured mode (never forwarded as raw text)
    for name, value in options.items():
        flag = _SHORT.get(name, "--" + name.replace("_", "-"))
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif name == "params":
            argv += [a for k, v in dict(value).items() for a in (flag, f"{k}={_text(v)}")]
        elif isinstance(value, (list, tuple, set, frozenset)):
            argv += [a for v in value for a in (flag, _text(v))]
        else:
            argv += [flag, _text(value)]
    return argv


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


@dataclass
class _Done:
    code: int = 0
    error: BaseException | None = None


def run(gadget: str, *, diag: Callable[[str], None] = stderr_diag,
        **options: Any) -> Iterator[Event | Rows]:
    """Run `gadget` and yield its events (`Event`) and array batches (`Rows`) as they come.

    Options are the `run` flags by name: local, namespace, all_namespaces, selector, podname,
    containers, container_ids, nodes, fields, filter, sort, max_entries, timeout, verbose,
    params (a dict), fail_on_lost, kubeconfig, context, and the runner pod and image flags.
    """
    from kubectl_gadget.cli import run_request
    from kubectl_gadget.launch import launch

    request = run_request(run_args(gadget, options))
    items: queue.Queue[Item | _Done] = queue.Queue()
    made: list[Pipeline] = []
    left = threading.Event()  # the caller left the loop

    def make_pipeline(ops: Operators) -> Pipeline:
        pipeline = Pipeline(ops, io.StringIO(), diag)

        def formatter(ds: str, fields: Any, selection: FieldSelection) -> ObjectFormatter:
            return ObjectFormatter(ds, fields, selection, items.put, diag)

        pipeline.formatters = formatter
        pipeline.cancelled = left.is_set()
        made.append(pipeline)
        return pipeline

    def work() -> None:
        try:
            items.put(_Done(launch(request, make_pipeline)))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            items.put(_Done(error=exc))

    def stop() -> None:
        """Stop the runners gracefully and wait for them (also at interpreter exit)."""
        left.set()
        for pipeline in made:
            pipeline.cancelled = True
        worker.join()

    worker = threading.Thread(target=work, name="kubectl-gadget-run", daemon=True)
    worker.start()
    atexit.register(stop)
    done = _Done()
    try:
        while True:
            item = items.get()
            if isinstance(item, _Done):
                done = item
                break
            yield item
    finally:
        stop()  # at once when the caller left early (break, an exception, Ctrl-C)
        atexit.unregister(stop)
    if done.error is not None:
        raise done.error
    if done.code != 0:
        raise RunFailed(gadget, done.code)


class RunFailed(GadgetError):
    """The run ended with a non-zero exit code (README, "Exit codes"); `exit_code` is it."""

    def __init__(self, gadget: str, code: int) -> None:
        super().__init__(f"running {gadget}: exit code {code} (see the diagnostics)")
        self.exit_code = code

"""Boolean flags in every spelling, on the runner (argparse) and the client (click)."""

from __future__ import annotations

import argparse

import click
import pytest
from click.testing import CliRunner

from kubectl_gadget.boolflags import BoolFlagCommand
from kubectl_gadget.image.run_flags import ImageRunFlags, image_run_options
from node_runner.image_args import add_image_arguments


def _runner_ns(*args: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_image_arguments(p)
    return p.parse_args(list(args))


@pytest.mark.parametrize(("args", "value"), [
    ((), None), (("--verify-image",), True), (("--no-verify-image",), False),
    (("--verify-image=false",), False), (("--verify-image=true",), True),
    (("--verify-image", "false"), False), (("--verify-image=0",), False),
])
def test_runner_verify_image(args: tuple[str, ...], value: bool | None) -> None:
    assert _runner_ns(*args).verify_image is value


def test_runner_rejects_bad_bool() -> None:
    with pytest.raises(SystemExit):
        _runner_ns("--verify-image=maybe")


@click.command(cls=BoolFlagCommand)
@click.argument("gadget")
@image_run_options
def _cmd(gadget: str, **kwargs: object) -> None:
    flags = ImageRunFlags.pop(kwargs)
    click.echo(" ".join([gadget, *flags.runner_args()]))


@pytest.mark.parametrize(("args", "expected"), [
    (["g"], "g --pull missing"),
    (["--verify-image", "g"], "g --pull missing --verify-image=true"),
    (["--verify-image=false", "g"], "g --pull missing --verify-image=false"),
    (["g", "--verify-image=TRUE"], "g --pull missing --verify-image=true"),
    (["g", "--no-verify-image", "--pull", "never"], "g --pull never --verify-image=false"),
    (["g", "--public-key", "a.pub", "--public-key", "b.pub", "--allowed-gadgets", "x/*,y",
      "--insecure-registries", "h:1", "--authfile", "c.json"],
     "g --pull missing --public-key a.pub --public-key b.pub --allowed-gadgets x/*,y "
     "--insecure-registries h:1 --authfile c.json"),
])
def test_client_flags_forward_to_the_runner(args: list[str], expected: str) -> None:
    runner = CliRunner()
    with runner.isolated_filesystem():
        with open("c.json", "w") as fh:  # --authfile must name an existing file
            fh.write("{}")
        result = runner.invoke(_cmd, args)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == expected
    # and the runner parses what the client forwards
    forwarded = expected.split()[1:]
    _runner_ns(*forwarded)


def test_client_rejects_bad_bool() -> None:
    result = CliRunner().invoke(_cmd, ["g", "--verify-image=maybe"])
    assert result.exit_code != 0

"""Bad command lines and bad gadgets end with one clear line and the documented exit code.

Every case runs the real client (`python -m kubectl_gadget`) and fails before any runner
starts, so none needs root: numeric flags out of range or not finite (2), a GADGET argument
longer than a file name (2, or 7 when it can only be an image), a gadget.yaml that is a
directory, a param default its type refuses, a directory that is no gadget (3).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kubectl_gadget.cli import main
from tests.conftest import GADGETS_SRC, REPO

LONG = "g" * 300


def client(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(tmp / "no-kubeconfig"),
           "KUBECTL_GADGET_STORE": str(tmp / "store")}
    return subprocess.run([sys.executable, "-m", "kubectl_gadget", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env=env,
                          stdin=subprocess.DEVNULL)


def assert_clean(proc: subprocess.CompletedProcess[str], code: int, needle: str) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == code, proc.stderr
    assert needle in proc.stderr, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 or needle in proc.stderr.splitlines()[-1]


@pytest.mark.parametrize(("flag", "value"), [
    *[(flag, value) for flag in ("--timeout", "--startup-timeout")
      for value in ("nan", "inf", "-inf", "1e309", "0", "-1", "abc")],
    ("--runner-deadline", "0"), ("--runner-deadline", "-5"), ("--runner-deadline", "1e12"),
    ("--runner-deadline", "nan"), ("--max-entries", "-1"), ("--max-entries", "1e3"),
    ("--max-entries", "99999999999"),
])
@pytest.mark.parametrize("where", [["--local"], []], ids=["local", "cluster"])
def test_numeric_flags_are_finite_and_in_range(flag: str, value: str, where: list[str],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # In-process: the command line refuses the value before the gadget is even resolved.
    code = main(["run", "trace_open", *where, f"{flag}={value}"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"Invalid value for '{flag}'" in err and "Traceback" not in err


def test_numeric_flags_in_range_are_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    # The same flags with good values get past parsing: the run fails later, on the GADGET.
    code = main(["run", "./no-such-gadget", "--timeout", "2.5", "--startup-timeout", "30",
                 "--runner-deadline", "600", "--max-entries", "0"])
    assert code == 2
    assert "gadget directory ./no-such-gadget does not exist" in capsys.readouterr().err


def test_gadget_argument_longer_than_a_file_name(tmp_path: Path) -> None:
    proc = client("run", f"./{LONG}", "--local", tmp=tmp_path)
    assert_clean(proc, 2, "does not exist")
    # A bare long name can only be an image: looked up in the (empty) local store, never pulled.
    proc = client("run", LONG, "--local", "--pull", "never", tmp=tmp_path)
    assert_clean(proc, 7, "Error:")


@pytest.fixture
def trace_open_copy(tmp_path: Path) -> Path:
    src = tmp_path / "src" / "trace_open"
    shutil.copytree(GADGETS_SRC / "trace_open", src)
    return src


def test_gadget_yaml_that_is_a_directory(trace_open_copy: Path, built_gadgets: dict[str, Path],
                                         tmp_path: Path) -> None:
    (trace_open_copy / "gadget.yaml").unlink()
    (trace_open_copy / "gadget.yaml").mkdir()
    proc = client("run", str(trace_open_copy), "--local", tmp=tmp_path)
    assert_clean(proc, 3, "gadget.yaml is not a regular file")
    proc = client("image", "build", str(trace_open_copy), "-t", "x", tmp=tmp_path)
    assert_clean(proc, 3, "gadget.yaml is not a regular file")

    built = tmp_path / "built" / "trace_open"
    built.mkdir(parents=True)
    shutil.copy(built_gadgets["trace_open"] / "program.bpf.o", built)
    (built / "gadget.yaml").mkdir()
    proc = client("run", str(built), "--local", tmp=tmp_path)
    assert_clean(proc, 3, "gadget.yaml: Is a directory")


def test_param_default_the_type_refuses_is_an_invalid_gadget(trace_open_copy: Path,
                                                            tmp_path: Path) -> None:
    yaml_path = trace_open_copy / "gadget.yaml"
    text = yaml_path.read_text()
    assert 'defaultValue: "false"' in text
    yaml_path.write_text(text.replace('defaultValue: "false"', 'defaultValue: "maybe"'))
    proc = client("run", str(trace_open_copy), "--local", "--timeout", "1", tmp=tmp_path)
    assert_clean(proc, 3, "default of param targ_failed")


def test_directory_that_is_no_gadget(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = client("run", str(empty), "--local", tmp=tmp_path)
    assert_clean(proc, 3, "holds neither program.bpf.c nor program.bpf.o")


@pytest.mark.parametrize("argv", [
    ["run", "trace_open", "--local"], ["run", "trace_open"],
    ["image", "pull", "127.0.0.1:1/g:v1"], ["image", "push", "127.0.0.1:1/g:v1"],
], ids=["run-local", "run-cluster", "pull", "push"])
def test_missing_authfile_is_an_error(argv: list[str], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-auth.json"
    assert main([*argv, "--authfile", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "Invalid value for '--authfile'" in err and "does not exist" in err


def test_runner_refuses_a_missing_authfile(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "node_runner", "run", "--gadget",
                           "127.0.0.1:1/g:v1", "--pull", "never", "--authfile",
                           str(tmp_path / "no-auth.json")], cwd=REPO, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, proc.stderr
    assert "--authfile" in proc.stderr and "no such file" in proc.stderr


FAKE_RUNNER = """
import sys
open(sys.argv[1], "w").write("\\n".join(sys.argv[2:]))
"""


@pytest.fixture
def fake_runner(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A runner stand-in that only records the arguments the client gave it."""
    marker = tmp_path / "runner-args"
    script = tmp_path / "fake_runner.py"
    script.write_text(FAKE_RUNNER)
    return {**os.environ, "KUBECTL_GADGET_RUNNER": f"{sys.executable} {script} {marker}",
            "KUBECTL_GADGET_STORE": str(tmp_path / "store")}, marker


@pytest.mark.skipif(os.geteuid() != 0, reason="a local run needs root to start its runner")
def test_param_whose_name_is_a_run_flag_is_set_with_param(
        trace_open_copy: Path, fake_runner: tuple[dict[str, str], Path]) -> None:
    yaml_path = trace_open_copy / "gadget.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("key: failed", "key: timeout"))
    env, marker = fake_runner
    proc = subprocess.run([sys.executable, "-m", "kubectl_gadget", "run", str(trace_open_copy),
                           "--local", "--param", "timeout=true", "--timeout", "3"],
                          cwd=REPO, capture_output=True, text=True, timeout=120, env=env,
                          stdin=subprocess.DEVNULL)
    assert marker.exists(), proc.stderr
    args = marker.read_text().splitlines()
    assert "timeout=true" in args and args[args.index("timeout=true") - 1] == "--param"
    assert args[args.index("--timeout") + 1] == "3.0"

    bad = subprocess.run([sys.executable, "-m", "kubectl_gadget", "run", str(trace_open_copy),
                          "--local", "--param", "timeout=maybe"], cwd=REPO,
                         capture_output=True, text=True, timeout=120, env=env,
                         stdin=subprocess.DEVNULL)
    assert bad.returncode == 2 and "--param timeout" in bad.stderr, bad.stderr
    typo = subprocess.run([sys.executable, "-m", "kubectl_gadget", "run", str(trace_open_copy),
                           "--local", "--param", "timeuot=true"], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env=env,
                          stdin=subprocess.DEVNULL)
    assert typo.returncode == 2 and "did you mean timeout?" in typo.stderr, typo.stderr


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("kubectl-gadget ") and out.split()[1][0].isdigit()


@pytest.mark.parametrize(("typo", "meant", "blames_params"), [
    ("--timout", "--timeout", False), ("--max-entrys", "--max-entries", False),
    ("--faild", "--failed", True),
])
def test_unknown_flag_names_the_closest_real_flag(
        typo: str, meant: str, blames_params: bool, built_gadgets: dict[str, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", str(built_gadgets["trace_open"]), "--local", typo, "3"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"unknown flag {typo} (did you mean {meant}?)" in err
    assert ("params of gadget" in err) == blames_params, err


def test_unknown_flag_before_the_gadget_is_named_not_taken_for_an_image(
        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--timout", "3", "trace_exec"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "unknown flag --timout (did you mean --timeout?)" in err
    assert "image reference '--timout'" not in err, err


def test_run_gadget_help_lists_its_params_and_fields(built_gadgets: dict[str, Path],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(built_gadgets["trace_open"]), "--local", "--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage: kubectl-gadget run [OPTIONS] GADGET" in out  # the command's own help first
    assert "Params of gadget trace_open" in out
    assert "--failed (default false)  only show failed opens" in out
    assert "Fields of datasource open" in out
    fname = next(line for line in out.splitlines() if line.split()[:1] == ["fname"])
    assert "string" in fname and "path" in fname

    assert main(["run", "--help"]) == 0
    assert "Params of gadget" not in capsys.readouterr().out
    assert main(["run", "ghcr.io/example/gadget:v1", "--help"]) == 0
    assert "known once it is pulled" in capsys.readouterr().out


def test_invalid_gadget_inside_an_image_exits_3(trace_open_copy: Path, tmp_path: Path) -> None:
    yaml_path = trace_open_copy / "gadget.yaml"
    yaml_path.write_text(yaml_path.read_text().replace('defaultValue: "false"',
                                                       'defaultValue: "maybe"'))
    built = client("image", "build", str(trace_open_copy), "-t", "bad-default", tmp=tmp_path)
    assert built.returncode == 0, built.stderr
    proc = client("run", "bad-default", "--local", "--pull", "never", "--verify-image=false",
                  tmp=tmp_path)
    assert_clean(proc, 3, "default of param targ_failed")


def test_a_source_gadget_is_compiled_once_then_taken_from_the_cache(
        trace_open_copy: Path, tmp_path: Path) -> None:
    if not shutil.which("clang"):
        pytest.skip("clang not installed: cannot compile a gadget")
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}

    def help_of(gadget: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kubectl_gadget", "run", str(gadget),
                               "--local", "--help"], cwd=REPO, capture_output=True, text=True,
                              timeout=120, env={**os.environ, **env})

    first, second = help_of(trace_open_copy), help_of(trace_open_copy)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert "compiling gadget trace_open" in first.stderr
    assert "compiling" not in second.stderr  # same sources: the cached build, said nothing
    assert "Params of gadget trace_open" in second.stdout
    (trace_open_copy / "program.bpf.c").write_text(
        (trace_open_copy / "program.bpf.c").read_text() + "\n/* changed */\n")
    assert "compiling gadget trace_open" in help_of(trace_open_copy).stderr

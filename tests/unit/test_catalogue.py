"""`kubectl gadget list-gadgets`: every in-tree gadget, one line each, from its gadget.yaml."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from kubectl_gadget.catalogue import format_catalogue, load_catalogue
from kubectl_gadget.cli import main
from kubectl_gadget.errors import GadgetError

REPO = Path(__file__).resolve().parent.parent.parent
IN_TREE = sorted(p.parent.name for p in (REPO / "gadgets").glob("*/program.bpf.c"))


def test_catalogue_lists_every_in_tree_gadget_with_its_description() -> None:
    entries = load_catalogue()
    assert [e.name for e in entries] == IN_TREE
    assert {"trace_exec", "trace_exit", "trace_signal"} <= set(IN_TREE)
    for entry in entries:
        meta = yaml.safe_load((REPO / "gadgets" / entry.name / "gadget.yaml").read_text())
        assert entry.description == " ".join(meta["description"].split()) != ""
        assert entry.readme.endswith(f"{entry.name}/README.md")


def test_list_gadgets_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list-gadgets"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["NAME", "DESCRIPTION"]
    assert [row.split()[0] for row in rows] == IN_TREE
    column = header.index("DESCRIPTION")
    assert all(row[column - 2:column] == "  " and row[column] != " " for row in rows)
    assert main(["list-gadgets", "-o", "json"]) == 0
    got = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [g["name"] for g in got] == IN_TREE


def test_readme_gadget_table_lists_every_gadget() -> None:
    readme = (REPO / "README.md").read_text()
    linked = set(re.findall(r"^\| \[(\w+)\]\(gadgets/\1/README\.md\) \|", readme, re.M))
    assert linked == set(IN_TREE)


def test_broken_gadget_yaml_is_a_gadget_error(tmp_path: Path) -> None:
    for name, text in (("good", "description: fine\n"), ("bad", "description: [unclosed\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "program.bpf.c").write_text("")
        (tmp_path / name / "gadget.yaml").write_text(text)
    with pytest.raises(GadgetError, match=r"listing gadgets: reading .*bad/gadget.yaml"):
        load_catalogue(tmp_path)
    (tmp_path / "bad" / "gadget.yaml").unlink()
    entries = load_catalogue(tmp_path)
    assert [(e.name, e.description, e.readme) for e in entries] == [
        ("bad", "", ""), ("good", "fine", "")]
    assert format_catalogue(entries) == "NAME  DESCRIPTION\nbad\ngood  fine\n"

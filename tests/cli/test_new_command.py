"""A command module written here, out of tree, and registered with ``add_command_module`` becomes an
``fpar`` command as fpar's own are (``--help`` lists it, its errors are one line): nothing under
``src/`` knows it (ARCHITECTURE.md, "How to add a command"). A registered module that cannot be
found is an error, not a command quietly missing."""

from __future__ import annotations

import pkgutil

import pytest

import fpar.cli as cli
from fpar.cli import add_command_module, main

COMMAND = '''
"""fpar count: the clips of a dataset, per subject."""

from fpar.errors import FparError


def register(subparsers):
    count = subparsers.add_parser("count", help="count a dataset's clips per subject")
    count.add_argument("--data", metavar="ROOT", required=True, help="dataset root")
    count.set_defaults(func=run_count)


def run_count(args):
    from fpar.data import load_index

    index = load_index(args.data, "auto")
    if not index.instances:
        raise FparError(f"{args.data}: no clips")
    for subject in index.subjects:
        print(subject, sum(inst.subject == subject for inst in index.instances))
    return 0
'''


@pytest.fixture
def registry(monkeypatch):
    """fpar's command registry, restored after the test."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", list(cli.COMMAND_MODULES))


def test_an_out_of_tree_command_module_becomes_a_command(registry, tmp_path, monkeypatch, tiny_data, capsys):
    (tmp_path / "count_commands.py").write_text(COMMAND)
    monkeypatch.syspath_prepend(str(tmp_path))
    add_command_module("count_commands")
    assert "count a dataset's clips per subject" in cli.build_parser().format_help()
    capsys.readouterr()
    assert main(["count", "--data", str(tiny_data)]) == 0
    from fpar.data import load_index

    index = load_index(tiny_data, "auto")
    expected = [f"{s} {sum(i.subject == s for i in index.instances)}" for s in index.subjects]
    assert capsys.readouterr().out.splitlines() == expected
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["count", "--data", str(empty)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fpar: error:")


def test_a_registered_module_that_is_missing_is_an_error(registry, capsys):
    add_command_module("fpar.cli.no_such_commands")
    assert main(["--version"]) == 1
    assert capsys.readouterr().err.strip() == ("fpar: error: command module fpar.cli.no_such_commands is registered "
                                               "(fpar.cli.COMMAND_MODULES) but not found")


def test_every_command_module_of_fpar_is_registered():
    found = {f"fpar.cli.{m.name}" for m in pkgutil.iter_modules(cli.__path__) if m.name.endswith("_commands")}
    assert found == set(cli.COMMAND_MODULES)

"""The docs are self-contained: no citation of files or issue threads outside the repository, and
every pointer into docs/method.md names a section that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
METHOD = ROOT / "docs" / "method.md"
CHECKED_DIRS = ("src", "docs")  # the configs are under src/fpar/configs
CHECKED_FILES = ("README.md", "ARCHITECTURE.md")
# where pointers into docs/method.md may live
POINTER_DIRS = (*CHECKED_DIRS, "tests")
POINTER_FILES = (*CHECKED_FILES, "Makefile", "pyproject.toml")
SKIPPED_PARTS = {"__pycache__", ".git", ".venv", "node_modules"}

# spelt in pieces so that this file never matches its own patterns
EXTERNAL_SPEC = re.compile("REFERENCE" + r"\.md", re.IGNORECASE)
ISSUE_REFERENCE = re.compile(r"\bissues?\s*#?\d+|(?<![\w&/#(])#\d{1,5}\b", re.IGNORECASE)
POINTER = re.compile(r"docs/method\.md((?:\s*(?:,|-|–|and)?\s*§\d+)+)")
SECTION_NUMBER = re.compile(r"§(\d+)")
HEADING = re.compile(r"^## (\d+)\. (.+)$", re.MULTILINE)
IN_PAGE_LINK = re.compile(r"\]\(#([^)]+)\)")


def _text_files(dirs: tuple[str, ...], files: tuple[str, ...]) -> list[Path]:
    found = [ROOT / name for name in files if (ROOT / name).is_file()]
    for top in dirs:
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and not SKIPPED_PARTS & set(path.relative_to(ROOT).parts):
                found.append(path)
    texts = []
    for path in found:
        try:
            path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # images and other binaries
        texts.append(path)
    return texts


def _hits(pattern: re.Pattern[str], paths: list[Path]) -> list[str]:
    hits = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return hits


def _sections() -> dict[int, str]:
    return {int(n): title for n, title in HEADING.findall(METHOD.read_text(encoding="utf-8"))}


def _slug(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces -> hyphens."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


@pytest.fixture(scope="module")
def checked_files() -> list[Path]:
    paths = _text_files(CHECKED_DIRS, CHECKED_FILES)
    assert METHOD in paths
    return paths


def test_no_citation_of_the_external_spec(checked_files):
    hits = _hits(EXTERNAL_SPEC, checked_files)
    assert not hits, "cite docs/method.md instead of a file outside the repository:\n" + "\n".join(hits)


def test_no_issue_numbers(checked_files):
    hits = _hits(ISSUE_REFERENCE, checked_files)
    assert not hits, "say why in words instead of citing an issue:\n" + "\n".join(hits)


def test_method_sections_are_numbered_in_order():
    numbers = [int(n) for n, _ in HEADING.findall(METHOD.read_text(encoding="utf-8"))]
    assert numbers == list(range(1, len(numbers) + 1)), numbers
    assert len(numbers) >= 10


def test_method_in_page_links_resolve():
    anchors = {_slug(f"{n}. {title}") for n, title in _sections().items()}
    links = IN_PAGE_LINK.findall(METHOD.read_text(encoding="utf-8"))
    assert links
    assert sorted(set(links) - anchors) == []


def test_every_pointer_names_an_existing_section():
    sections = _sections()
    pointers, broken = 0, []
    for path in _text_files(POINTER_DIRS, POINTER_FILES):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in POINTER.finditer(line):
                for section in SECTION_NUMBER.findall(match.group(1)):
                    pointers += 1
                    if int(section) not in sections:
                        broken.append(f"{path.relative_to(ROOT)}:{number}: §{section}")
    assert pointers > 0
    assert not broken, "pointers to sections docs/method.md does not have:\n" + "\n".join(broken)


def test_readme_links_method():
    assert "(docs/method.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


ARCHITECTURE = ROOT / "ARCHITECTURE.md"
SOURCE_PATH = re.compile(r"`((?:src/)?fpar/[\w/]+(?:\.py|/))`")
DOTTED_NAME = re.compile(r"`(fpar(?:\.\w+)+)")
COMMAND = re.compile(r"`fpar ([a-z][a-z-]*)")
# dotted names that are no module: a checkpoint's entries (``fpar.clip``, ...) and an export's file
NOT_MODULES = {"fpar.clip", "fpar.model", "fpar.classes", "fpar.config", "fpar.label_classes", "fpar.json"}


def test_every_file_module_and_command_architecture_md_names_exists():
    """ARCHITECTURE.md is a map a newcomer trusts: each source file, module (or name in one) and
    command it names is there."""
    import importlib

    from fpar.cli import build_parser

    text = ARCHITECTURE.read_text(encoding="utf-8")
    missing = [path for path in SOURCE_PATH.findall(text)
               if not (ROOT / "src" / path.removeprefix("src/")).exists()]
    for dotted in sorted(set(DOTTED_NAME.findall(text)) - NOT_MODULES):
        parts = dotted.split(".")
        for end in range(len(parts), 0, -1):  # the longest importable prefix, then attributes
            try:
                target = importlib.import_module(".".join(parts[:end]))
            except ModuleNotFoundError:
                continue
            for attribute in parts[end:]:
                target = getattr(target, attribute, None)
            if target is None:
                missing.append(dotted)
            break
    commands = build_parser()._subparsers._group_actions[0].choices
    missing += [f"fpar {name}" for name in sorted(set(COMMAND.findall(text))) if name not in commands]
    assert SOURCE_PATH.findall(text) and DOTTED_NAME.findall(text) and COMMAND.findall(text)
    assert not missing, f"ARCHITECTURE.md names what does not exist: {missing}"


def test_every_test_the_reliability_table_names_exists():
    """docs/reliability.md's table of faults names the tests that hold each one: they must exist,
    in the file named (a ``::name`` alone belongs to the file named before it in the same cell)."""
    text = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    table = text[text.index("## Bad inputs and faults the tests cover"):]
    missing, named = [], 0
    for line in table.splitlines():
        if not re.match(r"\| \d+ \|", line):
            continue
        current = None
        for ref in re.findall(r"`([^`]+)`", line.rstrip(" |").split(" | ")[-1]):
            path, _, name = (f"{current}{ref}" if ref.startswith("::") else ref).partition("::")
            name = name.split("[")[0]  # a parametrised case: its test function
            current = path
            source = ROOT / "tests" / path
            named += 1
            if not source.is_file() or (name and not re.search(rf"^def {re.escape(name)}\(", source.read_text(),
                                                                re.MULTILINE)):
                missing.append(f"{path}::{name}")
    assert named > 100 and not missing, missing

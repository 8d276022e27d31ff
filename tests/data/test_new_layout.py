"""A new dataset layout is one module registering ``name -> detect, scan`` (ARCHITECTURE.md, "How to
add ... a layout"): this file is that module, and touches nothing under src/. Once registered, the
layout is detected by ``auto``, accepted by ``data.layout`` and offered by ``--layout``, and every
shared rule (frame listing, numbering gaps, short instances, the store) applies to it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from fpar.cli import main
from fpar.data.layouts import FILE_KINDS, Candidate, Scan, load_index, register_layout
from fpar.data.settings import DataSettings

from .conftest import write_png

LIST_NAME = "clips.txt"  # one line per instance: subject, class, folder of frames 1.png, 2.png, ...


def _detect(root: Path) -> bool:
    return root.is_dir() and (root / LIST_NAME).is_file()


def _scan(root: Path) -> Scan:
    scan = Scan(candidates=[], class_names=set(), patterns={kind: re.compile(r"^(\d+)\.png$") for kind in FILE_KINDS})
    for line in (root / LIST_NAME).read_text().splitlines():
        subject, label, folder = line.split()
        scan.class_names.add(label)
        scan.candidates.append(Candidate(subject, label, f"{subject}/{folder}",
                                         {**dict.fromkeys(FILE_KINDS), "rgb": root / folder}))
    return scan


register_layout("clip_list", _detect, _scan, looks_like=f"a {LIST_NAME}")


@pytest.fixture
def clip_list(tmp_path) -> Path:
    root = tmp_path / "clips"
    rng = np.random.default_rng(0)
    lines = []
    for k, (subject, label, frames) in enumerate([("S1", "pour", 6), ("S1", "stir", 6), ("S2", "pour", 6),
                                                   ("S2", "stir", 3)]):  # the last is shorter than the flow stack
        for number in range(1, frames + 1):
            write_png(root / f"clip{k}" / f"{number}.png", rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
        lines.append(f"{subject} {label} clip{k}")
    (root / LIST_NAME).write_text("\n".join(lines) + "\n")
    return root


def test_a_layout_registered_out_of_tree_is_detected_and_obeys_the_shared_rules(clip_list):
    index = load_index(clip_list)
    assert index.layout == "clip_list" and index.classes == ["pour", "stir"]
    assert [inst.instance_id for inst in index.instances] == ["S1/clip0", "S1/clip1", "S2/clip2"]
    assert [inst.instance_id for inst in index.skipped] == ["S2/clip3"]  # too short: the shared rule
    assert index.instances[0].rgb[0] == clip_list / "clip0" / "1.png"


def test_a_registered_layout_is_a_setting_a_cli_choice_and_a_store(clip_list, tmp_path, capsys):
    assert DataSettings(layout="clip_list").layout == "clip_list"
    assert main(["data", "check", str(clip_list), "--layout", "clip_list"]) == 1  # the short instance is named
    assert "clip3" in capsys.readouterr().out  # named by its folder
    store = tmp_path / "store"
    assert main(["cache", str(clip_list), "--layout", "clip_list", "--out", str(store), "--resize", "24"]) == 0
    assert main(["cache", str(clip_list), "--layout", "clip_list", "--out", str(store), "--verify"]) == 0

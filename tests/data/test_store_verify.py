"""A store's index is checked against its frame table and its dataset: `fpar cache --verify` and
`fpar data check --deep` report swapped, edited and stale entries, and training refuses such a
store in one line before reading a clip (docs/reliability.md)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from fpar.cli import main
from fpar.data import load_index
from fpar.data.store import FrameStore, build_store, ensure_store, open_store
from fpar.data.synth import generate
from fpar.errors import FparError

RESIZE = 40


@pytest.fixture(scope="module")
def source(module_tmp) -> Path:
    return generate(module_tmp("synth") / "ds", subjects=1, classes=3, videos_per_class=1,
                    frames=8, size=(60, 40), seed=5)


@pytest.fixture(params=["raw", "jpeg"])
def cached(request, source, tmp_path) -> tuple[Path, Path]:
    """A private copy of the dataset and its store (``raw``, or ``jpeg`` re-encoded at quality 90)."""
    root = shutil.copytree(source, tmp_path / "ds")
    quality = 90 if request.param == "jpeg" else None
    store = build_store(root, tmp_path / "st", resize=RESIZE, codec=request.param, quality=quality, progress=False)
    return root, store


def _edit_index(store: Path, edit) -> None:
    meta = json.loads((store / "index.json").read_text())
    edit(meta["instances"])
    (store / "index.json").write_text(json.dumps(meta))


def _swap_two_classes(instances: dict) -> tuple[str, str]:
    first = sorted(instances)[0]
    second = next(name for name in sorted(instances) if name.split("/")[1] != first.split("/")[1])  # another class
    instances[first], instances[second] = instances[second], instances[first]
    return first, second


def _verify(root: Path, store: Path, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["cache", str(root), "--out", str(store), "--verify"])
    captured = capsys.readouterr()
    return code, captured.err.strip()


def test_an_intact_store_verifies(cached, capsys):
    root, store = cached
    capsys.readouterr()
    assert main(["cache", str(root), "--out", str(store), "--verify"]) == 0
    assert capsys.readouterr().out.startswith(f"store {store} verified: ")
    assert FrameStore(store).verify(load_index(root))["frames"] > 0


def test_two_instances_of_different_classes_swapped_in_the_index(cached, capsys):
    root, store = cached
    first, second = None, None

    def swap(instances):
        nonlocal first, second
        first, second = _swap_two_classes(instances)

    _edit_index(store, swap)
    code, err = _verify(root, store, capsys)
    assert code == 1 and err.count("\n") == 0
    assert f"instance {first}: its rgb entry holds the frames of instance {second} (swapped)" in err
    assert "does not verify" in err and "--rebuild" in err
    # training opens the store the same way: one line, before any clip is read
    index = load_index(root)
    for opener in (open_store, ensure_store):
        with pytest.raises(FparError, match=rf"index.json does not verify \(instance {first}: .* \(swapped\)"):
            opener(index, store, resize=RESIZE, modalities=["frames", "flow"])


def test_a_source_frame_changed_after_caching_is_stale(cached, capsys):
    root, store = cached
    frame = sorted((root / "processed_frames").rglob("rgb0003.png"))[0]
    stat, image = os.stat(frame), cv2.imread(str(frame))
    data = bytearray(frame.read_bytes())
    data[len(data) // 2] ^= 0xFF
    frame.write_bytes(bytes(data))
    os.utime(frame, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same time: found by its bytes
    code, err = _verify(root, store, capsys)
    assert code == 1 and f"its rgb source frames ({frame.parent}) changed since the store was built (stale)" in err
    cv2.imwrite(str(frame), 255 - image)  # other pixels, a new time: the store is also out of date for training
    code, err = _verify(root, store, capsys)
    assert code == 1 and "changed since the store was built (stale)" in err
    with pytest.raises(FparError, match="is out of date"):
        open_store(load_index(root), store, resize=RESIZE, modalities=["frames"])


def test_an_edited_shape_entry_is_refused_not_a_reshape_error(cached, capsys):
    root, store = cached
    victim = sorted(json.loads((store / "index.json").read_text())["instances"])[0]

    def edit(instances):
        instances[victim]["rgb"][2][1] += 4  # h, w, 3: the width

    _edit_index(store, edit)
    code, err = _verify(root, store, capsys)
    assert code == 1 and f"instance {victim}: its rgb entry (rows 0-7, shape [40, 64, 3]) is not the one it was " \
                         "built with (edited)" in err
    with pytest.raises(FparError, match=rf"does not verify \(instance {victim}: its rgb entry .* \(edited\)"):
        open_store(load_index(root), store, resize=RESIZE, modalities=["frames"])


def test_an_entry_pointing_at_other_rows_is_edited(cached, capsys):
    root, store = cached

    def edit(instances):
        first, second = sorted(instances)[:2]
        first_row, second_row = instances[first]["rgb"][0], instances[second]["rgb"][0]
        instances[first]["rgb"][0], instances[second]["rgb"][0] = second_row, first_row

    _edit_index(store, edit)
    code, err = _verify(root, store, capsys)
    assert code == 1 and "is not the one it was built with (edited)" in err


def test_data_check_deep_reports_a_swapped_store(source, tmp_path, capsys):
    root = shutil.copytree(source, tmp_path / "ds")
    assert main(["cache", str(root), "--resize", str(RESIZE)]) == 0
    store = root / ".fpar-store" / f"r{RESIZE}"
    assert main(["data", "check", str(root), "--deep"]) == 0
    _edit_index(store, _swap_two_classes)
    capsys.readouterr()
    assert main(["data", "check", str(root), "--deep"]) == 1
    assert "(swapped)" in capsys.readouterr().out


def test_training_refuses_a_store_whose_index_does_not_verify(tiny_data, tmp_path, capsys):
    from helpers.tiny import tiny_config, write_config

    data = shutil.copytree(tiny_data, tmp_path / "data")
    store = tmp_path / "store"
    config = write_config(tmp_path / "tiny.yaml", tiny_config(data={"store": str(store)}))
    assert main(["cache", str(data), "--out", str(store), "--resize", "48", "--modalities", "frames"]) == 0
    _edit_index(store, _swap_two_classes)
    capsys.readouterr()
    assert main(["train", str(config), "--data", str(data), "--out", str(tmp_path / "runs"), "--no-progress"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("fpar:") or "Traceback" in line]
    assert len(err) == 1 and "index.json does not verify" in err[0] and "(swapped)" in err[0], err
    assert not (tmp_path / "runs" / "tiny").exists()


def test_an_entrys_seal_covers_its_rows_in_order_and_its_shape_wherever_they_lie():
    from fpar.data.store.format import entry_seals

    hashes = np.array([11, 2**63 + 5, 7, 2**64 - 1, 3], np.uint64)

    def seal(rows, shape=(4, 6, 3), start=0):
        table = np.concatenate([np.zeros(start, np.uint64), hashes[list(rows)]])
        return int(entry_seals(table, np.array([start]), np.array([len(rows)]), np.array([shape]))[0])

    assert seal([0, 1, 2]) == seal([0, 1, 2], start=9)  # rows renumbered (parts merged): the same seal
    assert len({seal([0, 1, 2]), seal([1, 0, 2]), seal([0, 1, 3]), seal([0, 1, 2], (4, 7, 3))}) == 4

"""The dataset store: same tensors as the image files, invalidation, resumable and locked builds."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fpar.cli import main
from fpar.data import ClipDataset, load_index
from fpar.data.store import writer as store_module
from fpar.data.store import FrameStore, build_store, default_store_path, ensure_store, open_store
from fpar.data.settings import ClipSettings
from fpar.data.synth import generate
from fpar.errors import FparError

from .conftest import write_png

RESIZE, CROP = 40, 32
ALL = ("frames", "flow", "mmaps")


@pytest.fixture(scope="module")
def synth_root(module_tmp) -> Path:
    # 70x50 frames: odd margins after resizing (56x40), so centre crops round as the image path does.
    return generate(module_tmp("synth") / "ds", subjects=1, classes=3, videos_per_class=1,
                    frames=12, size=(70, 50), seed=3)


@pytest.fixture(scope="module")
def built(synth_root: Path) -> tuple:
    index = load_index(synth_root)
    path = build_store(synth_root, resize=RESIZE, progress=False)
    return index, FrameStore(path)


def _pair(index, frame_store, *, train: bool = False, views: str = "center", **clip) -> tuple[ClipDataset, ClipDataset]:
    settings = ClipSettings(resize=RESIZE, crop=CROP, **clip)
    images, stored = (ClipDataset(index.instances, settings, train=train, views=views, seed=7) for _ in range(2))
    stored.use_store(frame_store)
    return images, stored


@pytest.mark.parametrize("settings", [
    dict(modalities=ALL, flow_mode="stack", train=True, num_frames=6, stack_size=5),
    dict(modalities=ALL, flow_mode="pairs", train=True, num_frames=5),
    dict(modalities=("frames", "mmaps"), train=True, num_frames=7),
    dict(modalities=ALL, flow_mode="stack", num_frames=6, stack_size=5),
    dict(modalities=ALL, flow_mode="pairs", num_frames=5, views="five"),
    dict(modalities=ALL, flow_mode="stack", num_frames=4, stack_size=3, views="ten"),
], ids=["train-stack", "train-pairs", "train-rgb-mmaps", "eval-center", "eval-five-pairs", "eval-ten"])
def test_store_gives_the_image_path_tensors(built, settings):
    images, stored = _pair(*built, **settings)
    for epoch in range(4):  # several draws: flips, scales and corners differ between epochs
        for i in range(len(images)):
            want, got = images[(i, epoch)], stored[(i, epoch)]
            assert want.keys() == got.keys()
            for key in set(settings["modalities"]) | {"label"}:
                assert want[key].dtype == got[key].dtype and torch.equal(want[key], got[key]), (key, i, epoch)


def test_every_draw_of_a_training_clip_matches(built):
    """All 40 flip/scale/corner combinations on x-flow, which is inverted when flipped."""
    from fpar.data import transforms

    index, frame_store = built
    inst = index.instances[0]
    images, stored = _pair(index, frame_store, modalities=ALL)
    for flip in (False, True):
        for scale in transforms.SCALES:
            for position in transforms.POSITIONS:
                draw = transforms.TrainDraw(flip, scale, position)
                for kind in ("rgb", "flow_x", "flow_y", "mmaps"):
                    numbers = [1, 3, 3, 12]
                    np.testing.assert_array_equal(stored._load(inst, kind, numbers, draw),
                                                  images._load(inst, kind, numbers, draw))


def test_store_is_pickled_without_its_maps(built):
    _, frame_store = built
    frame_store.frames(next(iter(frame_store.instances)), "rgb")  # opens the rgb map
    assert len(pickle.dumps(frame_store)) < 100_000


def test_a_frame_past_the_end_is_refused(built):
    index, frame_store = built
    with pytest.raises(FparError, match="frame 13 requested but the instance has 12"):
        frame_store.clip(index.instances[0], "rgb", [1, 13], None, CROP, "center")


def _copy_dataset(src: Path, dst: Path) -> Path:
    for path in src.rglob("*"):
        if path.is_file() and ".fpar-store" not in path.parts:
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    return dst


def test_a_changed_frame_makes_the_store_out_of_date(synth_root, tmp_path):
    root = _copy_dataset(synth_root, tmp_path / "ds")
    index = load_index(root)
    build_store(root, resize=RESIZE, progress=False)
    frame = index.instances[1].rgb[2]
    before = os.stat(frame).st_mtime_ns
    write_png(frame, np.zeros((50, 70, 3), np.uint8))
    os.utime(frame, ns=(before + 10**9, before + 10**9))  # a coarse clock could keep the old mtime
    with pytest.raises(FparError, match=r"out of date \(.*rgb0003.png changed since the store was built\)"):
        open_store(index, resize=RESIZE, modalities=ALL)
    with pytest.raises(FparError, match="--rebuild"):
        build_store(root, resize=RESIZE, progress=False)
    frame_store = ensure_store(index, None, resize=RESIZE, modalities=ALL)  # first use rebuilds
    clip = frame_store.frames(index.instances[1].instance_id, "rgb")[2]
    assert clip.max() == 0


def test_other_settings_make_the_store_out_of_date(synth_root, tmp_path):
    index = load_index(synth_root)
    path = build_store(synth_root, tmp_path / "st", resize=RESIZE, modalities=["frames"], progress=False)
    with pytest.raises(FparError, match="built with resize 40, wanted 48"):
        open_store(index, path, resize=48, modalities=["frames"])
    with pytest.raises(FparError, match="holds no flow_x frames"):
        open_store(index, path, resize=RESIZE, modalities=["flow"])


def test_an_interrupted_build_resumes_to_the_same_bytes(synth_root, tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "COMMIT_SECONDS", 0)  # progress recorded after every instance
    whole = build_store(synth_root, tmp_path / "whole", resize=RESIZE, progress=False)
    real_read = store_module.read_frame
    calls = {"n": 0}

    def failing_read(path, color):
        calls["n"] += 1
        if calls["n"] == 60:  # inside the second instance (48 frames each)
            raise KeyboardInterrupt
        return real_read(path, color)

    monkeypatch.setattr(store_module, "read_frame", failing_read)
    with pytest.raises(KeyboardInterrupt):
        build_store(synth_root, tmp_path / "resumed", resize=RESIZE, progress=False)
    monkeypatch.setattr(store_module, "read_frame", real_read)
    resumed = tmp_path / "resumed"
    assert (resumed / "progress.json").is_file() and not (resumed / "index.json").exists()
    with pytest.raises(FparError, match="no finished store"):
        FrameStore(resumed)
    build_store(synth_root, resumed, resize=RESIZE, progress=False)
    assert not (resumed / "progress.json").exists()
    for name in ("index.json", "frames.tbl", "shard-00000.fpk", "sources.jsonl"):
        assert (resumed / name).read_bytes() == (whole / name).read_bytes(), name


def test_a_killed_build_resumes_to_the_same_bytes(synth_root, tmp_path):
    whole = build_store(synth_root, tmp_path / "whole", resize=RESIZE, progress=False)
    killed = tmp_path / "killed"
    # The child dies (SIGKILL-like os._exit) while writing the third instance's frames.
    script = (
        "import os, sys\n"
        "from fpar.data.store import writer as store\n"
        "real, n = store.read_frame, [0]\n"
        "def read(path, color):\n"
        "    n[0] += 1\n"
        "    if n[0] == 110: os._exit(9)\n"
        "    return real(path, color)\n"
        "store.read_frame = read\n"
        "store.COMMIT_SECONDS = 0\n"
        f"store.build_store({str(synth_root)!r}, {str(killed)!r}, resize={RESIZE}, progress=False)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(store_module.__file__).parents[3])}
    assert subprocess.run([sys.executable, "-c", script], env=env).returncode == 9
    build_store(synth_root, killed, resize=RESIZE, progress=False)
    for name in ("index.json", "frames.tbl", "shard-00000.fpk", "sources.jsonl"):
        assert (killed / name).read_bytes() == (whole / name).read_bytes(), name


def test_a_second_builder_gets_a_clear_error(synth_root, tmp_path):
    path = tmp_path / "st"
    path.mkdir()
    holder = store_module._build_lock(path)
    with holder:
        with pytest.raises(FparError, match=r"being built by another process.*lock .*build.lock is held by pid"):
            build_store(synth_root, path, resize=RESIZE, progress=False)
    build_store(synth_root, path, resize=RESIZE, progress=False)  # free again once released


def test_fpar_cache_command(synth_root, tmp_path, capsys):
    out = tmp_path / "st"
    assert main(["cache", str(synth_root), "--out", str(out), "--resize", str(RESIZE)]) == 0
    assert capsys.readouterr().out.strip() == f"store ready: {out} (raw)"
    assert (out / "index.json").is_file()
    assert default_store_path(synth_root, 256) == synth_root / ".fpar-store" / "r256"


def test_a_dataset_refuses_a_store_of_other_settings(synth_root, tmp_path):
    index = load_index(synth_root)
    frame_store = FrameStore(build_store(synth_root, tmp_path / "st", resize=RESIZE, modalities=["frames"],
                                         progress=False))
    with pytest.raises(FparError, match="resized to 40, the dataset wants 48"):
        ClipDataset(index.instances, ClipSettings(resize=48, crop=CROP)).use_store(frame_store)
    with pytest.raises(FparError, match="holds no flow_x, flow_y frames"):
        ClipDataset(index.instances, ClipSettings(modalities=["flow"], resize=RESIZE, crop=CROP)).use_store(frame_store)


def test_clip_loading_benchmark_runs_on_a_given_dataset(built, synth_root):
    from fpar.bench import bench_clip_loading

    rows = bench_clip_loading(synth_root, resize=RESIZE, crop=CROP, repeats=1)
    assert len(rows) == 6 and all(row["fpar_s"] > 0 and row["speedup"] > 0 for row in rows)


def test_dataloader_workers_share_the_store(built):
    from torch.utils.data import DataLoader

    images, stored = _pair(*built, modalities=ALL, train=True, num_frames=6)
    batches = [list(DataLoader(ds, batch_size=2, num_workers=2)) for ds in (images, stored)]
    for want, got in zip(*batches):
        assert all(torch.equal(want[k], got[k]) for k in ALL)

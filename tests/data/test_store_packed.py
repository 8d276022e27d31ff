"""The packed store: the jpeg codec, the codec choice, shards, builds in parts, and integrity
(a damaged, truncated, deleted or tampered store is one line naming the file, never read as data)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fpar.cli import main
from fpar.data import ClipDataset, load_index
from fpar.data.store import writer as store_module
from fpar.data.frames import decode
from fpar.data.settings import ClipSettings
from fpar.data.store import FrameStore, build_store, choose_codec, decode_jpeg, ensure_store, open_store
from fpar.data.synth import generate
from fpar.errors import FparError

RESIZE, CROP = 40, 32
ALL = ("frames", "flow", "mmaps")
TWO_STREAM = ("frames", "flow")


@pytest.fixture(scope="module")
def png_root(module_tmp) -> Path:
    return generate(module_tmp("synth") / "ds", subjects=1, classes=3, videos_per_class=1,
                    frames=10, size=(70, 50), seed=5)


@pytest.fixture(scope="module")
def jpeg_root(png_root, module_tmp) -> Path:
    """The synthetic set as an Ego-RNN tree of JPEGs (RGB 4:2:0, grey flow), as datasets publish frames."""
    root = module_tmp("jpeg") / "ds"
    index = load_index(png_root)
    for inst in index.instances:
        for kind, tree, prefix in (("rgb", "frames", "image_"), ("flow_x", "flow_x", "flow_x_"),
                                   ("flow_y", "flow_y", "flow_y_")):
            folder = root / tree / inst.instance_id
            folder.mkdir(parents=True)
            for k, path in enumerate(inst.frames(kind), 1):
                image = cv2.imread(str(path), cv2.IMREAD_COLOR if kind == "rgb" else cv2.IMREAD_GRAYSCALE)
                cv2.imwrite(str(folder / f"{prefix}{k:05d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return root


def _error_line(err: str) -> str:
    """fpar's one error line (the progress bar shares stderr): there is exactly one, it is the last."""
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("fpar:") or "Traceback" in line]
    assert len(lines) == 1 and err.endswith(lines[0] + "\n"), err
    return lines[0]


def _jpeg_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.jpg"))


def _same_tensors(index, frame_store, **clip) -> None:
    train = clip.pop("train", False)
    views = clip.pop("views", "center")
    settings = ClipSettings(resize=RESIZE, crop=CROP, **clip)
    images, stored = (ClipDataset(index.instances, settings, train=train, views=views, seed=3) for _ in range(2))
    stored.use_store(frame_store)
    for epoch in range(3):
        for i in range(len(images)):
            want, got = images[(i, epoch)], stored[(i, epoch)]
            for key in settings.modalities:
                assert torch.equal(want[key], got[key]), (key, i, epoch)


# --- the jpeg codec ------------------------------------------------------------------------------


@pytest.mark.parametrize("clip", [
    dict(modalities=TWO_STREAM, flow_mode="stack", train=True, num_frames=6, stack_size=5),
    dict(modalities=TWO_STREAM, flow_mode="pairs", num_frames=5, views="ten"),
], ids=["train-stack", "eval-ten-pairs"])
def test_a_jpeg_store_of_published_jpegs_gives_the_image_path_tensors_at_their_size(jpeg_root, tmp_path, clip):
    index = load_index(jpeg_root)
    path = build_store(jpeg_root, tmp_path / "st", resize=RESIZE, codec="jpeg", shard_bytes=20_000, progress=False)
    frame_store = FrameStore(path)
    assert frame_store.codec == "jpeg" and frame_store.quality is None and len(frame_store.shard_names) > 1
    packed = sum(f.stat().st_size for f in path.iterdir() if f.name.endswith(".fpk"))
    assert packed <= 1.1 * _jpeg_bytes(jpeg_root)  # the bytes as published, plus 64 bytes per shard
    _same_tensors(index, frame_store, **clip)


def test_the_jpeg_decoder_gives_opencvs_pixels(tmp_path):
    """The store decodes with simplejpeg, the image path with OpenCV: the pixels must be the same,
    for 4:2:0, 4:4:4, grey and colour-read-as-grey JPEGs, and for one with an EXIF orientation."""
    from PIL import Image

    rng = np.random.default_rng(0)
    picture = cv2.GaussianBlur(rng.integers(0, 255, (48, 80, 3), dtype=np.uint8), (5, 5), 0)
    samples = []
    for sampling in (cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444):
        samples.append(cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 85,
                                                      cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling])[1].tobytes())
    samples.append(cv2.imencode(".jpg", picture[..., 0])[1].tobytes())
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees
    Image.fromarray(picture).save(rotated, "JPEG", exif=exif.tobytes())
    samples.append(rotated.getvalue())
    for data in samples:
        for color in (True, False):
            want = decode(data, color)
            assert np.array_equal(decode_jpeg(np.frombuffer(data, np.uint8), color), want)
    assert decode(samples[-1], True).shape[:2] == (80, 48)  # the orientation was applied


def test_the_codec_is_chosen_by_size_and_never_lossy_unless_asked(png_root, jpeg_root, tmp_path, capsys):
    jpegs, pngs = load_index(jpeg_root), load_index(png_root)
    kinds = ("rgb", "flow_x", "flow_y")
    assert choose_codec(jpegs, kinds, RESIZE) == "raw"  # a small dataset: raw pixels, fastest to read
    assert choose_codec(jpegs, kinds, RESIZE, raw_limit=0) == "jpeg"  # past the limit: the JPEGs as they are
    assert choose_codec(pngs, kinds, RESIZE, raw_limit=0) == "raw"  # PNGs are never re-encoded unasked
    out = tmp_path / "st"
    assert main(["cache", str(png_root), "--out", str(out), "--resize", str(RESIZE), "--codec", "jpeg"]) == 1
    err = _error_line(capsys.readouterr().err)
    assert "rgb0001.png: not a JPEG" in err and "--quality Q (lossy)" in err
    assert main(["cache", str(png_root), "--out", str(out), "--resize", str(RESIZE), "--codec", "jpeg",
                 "--quality", "90", "--modalities", "frames"]) == 0
    assert capsys.readouterr().out.strip() == f"store ready: {out} (jpeg, frames re-encoded at JPEG quality 90 (lossy))"
    frame_store = open_store(pngs, out, resize=RESIZE, modalities=["frames"])
    inst = pngs.instances[0]
    stored = frame_store.frames(inst.instance_id, "rgb")
    exact = FrameStore(build_store(png_root, tmp_path / "raw", resize=RESIZE, modalities=["frames"],
                                   progress=False)).frames(inst.instance_id, "rgb")
    assert stored.shape == exact.shape and 0 < np.abs(stored.astype(int) - exact).mean() < 4
    # asked again with another codec: the store says so instead of passing for the one asked
    with pytest.raises(FparError, match="out of date .built with codec jpeg, wanted raw"):
        build_store(png_root, out, resize=RESIZE, modalities=["frames"], codec="raw", progress=False)


# --- builds: resumed, in parts -------------------------------------------------------------------


def test_a_killed_jpeg_build_resumes_to_the_same_bytes(jpeg_root, tmp_path):
    whole = build_store(jpeg_root, tmp_path / "whole", resize=RESIZE, codec="jpeg", shard_bytes=20_000,
                        progress=False)
    killed = tmp_path / "killed"
    # The child dies (as with SIGKILL: no clean-up) while reading the third instance's frames.
    script = (
        "import os\n"
        "from fpar.data.store import writer as store\n"
        "real, n = store._read_bytes, [0]\n"
        "def read(path):\n"
        "    n[0] += 1\n"
        "    if n[0] == 70: os._exit(9)\n"
        "    return real(path)\n"
        "store._read_bytes = read\n"
        "store.COMMIT_SECONDS = 0\n"  # progress recorded after every instance
        f"store.build_store({str(jpeg_root)!r}, {str(killed)!r}, resize={RESIZE}, codec='jpeg', shard_bytes=20_000,"
        " progress=False)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(store_module.__file__).parents[3])}
    assert subprocess.run([sys.executable, "-c", script], env=env).returncode == 9
    assert (killed / "progress.json").is_file() and not (killed / "index.json").exists()
    build_store(jpeg_root, killed, resize=RESIZE, codec="jpeg", shard_bytes=20_000, progress=False)
    names = sorted(p.name for p in whole.iterdir() if not p.name.startswith("build.lock"))
    assert names == sorted(p.name for p in killed.iterdir() if not p.name.startswith("build.lock"))
    assert len([n for n in names if n.endswith(".fpk")]) > 1
    for name in names:
        assert (killed / name).read_bytes() == (whole / name).read_bytes(), name


def test_parts_built_apart_merge_into_one_store(jpeg_root, tmp_path, capsys):
    index = load_index(jpeg_root)
    out = tmp_path / "st"
    common = ["cache", str(jpeg_root), "--out", str(out), "--resize", str(RESIZE), "--codec", "jpeg"]
    assert main([*common, "--shard", "3/3"]) == 0
    assert main([*common, "--shard", "1/3"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"store part 1/3 ready: {out}/part-1-of-3 (the store is merged when all 3 parts are done)")
    with pytest.raises(FparError, match="no finished store here"):
        open_store(index, out, resize=RESIZE, modalities=TWO_STREAM)
    assert main(common) == 1  # a whole build over unfinished parts would throw them away
    assert "being built in 3 parts (2 finished)" in capsys.readouterr().err
    with pytest.raises(FparError, match="is being built in parts: finish them"):  # data.store leaves them too
        ensure_store(index, out, resize=RESIZE, modalities=TWO_STREAM)
    assert main([*common, "--shard", "2/3"]) == 0
    assert capsys.readouterr().out.strip() == f"store ready: {out} (jpeg)"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("build.lock")) == [
        "frames.tbl", "index.json", "shard-00000.fpk", "shard-00001.fpk", "shard-00002.fpk", "sources.jsonl"]
    merged = open_store(index, out, resize=RESIZE, modalities=TWO_STREAM)
    assert merged.verify()["frames"] == sum(len(i.rgb) + len(i.flow_x) + len(i.flow_y) for i in index.instances)
    _same_tensors(index, merged, modalities=TWO_STREAM, train=True, num_frames=6, stack_size=5)
    assert main(common) == 0  # finished: left as it is


# --- integrity -----------------------------------------------------------------------------------


def _overwrite_with_garbage(file: Path) -> None:
    file.write_bytes(np.random.default_rng(1).integers(0, 256, file.stat().st_size, dtype=np.uint8).tobytes())


def _garbage_in_the_middle(file: Path) -> None:
    data = bytearray(file.read_bytes())
    data[len(data) // 2: len(data) // 2 + 100] = bytes(100)
    file.write_bytes(bytes(data))


def _truncate(file: Path) -> None:
    os.truncate(file, file.stat().st_size - 1000)


DAMAGE = {
    "shard overwritten with same-size garbage": ("shard-00000.fpk", _overwrite_with_garbage,
                                                  "has another header than the one it was built with"),
    "shard truncated": ("shard-00000.fpk", _truncate, "bytes, it was built with"),
    "shard deleted": ("shard-00000.fpk", Path.unlink, "shard-00000.fpk is missing"),
    "frame table overwritten": ("frames.tbl", _overwrite_with_garbage, "does not match its recorded size and hash"),
    "frame table deleted": ("frames.tbl", Path.unlink, "frames.tbl is missing"),
    "index.json garbage": ("index.json", _overwrite_with_garbage, "index.json is unreadable or malformed"),
    "index.json not a mapping": ("index.json", lambda f: f.write_text("[1, 2]"), "index.json is unreadable or malformed"),
}


@pytest.mark.parametrize("codec", ["raw", "jpeg"])
@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_store_is_one_line_naming_the_file_and_rebuild_really_rebuilds(jpeg_root, tmp_path, capsys,
                                                                                  case, codec):
    index = load_index(jpeg_root)
    out = tmp_path / "st"
    common = ["cache", str(jpeg_root), "--out", str(out), "--resize", str(RESIZE), "--codec", codec]
    assert main(common) == 0
    capsys.readouterr()
    pristine = {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith("build.lock")}
    name, damage, reason = DAMAGE[case]
    damage(out / name)
    for argv in (common, ["cache", str(jpeg_root), "--out", str(out), "--resize", str(RESIZE), "--verify"]):
        assert main(argv) == 1  # not "store ready"
        err = _error_line(capsys.readouterr().err)
        assert reason in err and f"store {out}" in err, err
        assert f"rebuild it with `fpar cache {jpeg_root} --rebuild`" in err
    with pytest.raises(FparError, match=reason):
        open_store(index, out, resize=RESIZE, modalities=TWO_STREAM)
    with pytest.raises(FparError, match=reason):  # data.store: a damaged store is not rebuilt behind one's back
        ensure_store(index, out, resize=RESIZE, modalities=TWO_STREAM)
    assert main([*common, "--rebuild"]) == 0 and "store ready" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith("build.lock")} == pristine


@pytest.mark.parametrize("codec", ["raw", "jpeg"])
def test_garbage_inside_a_shard_is_caught_on_read_never_trained_on(jpeg_root, tmp_path, capsys, codec):
    """Same size, header intact: opening passes, but every frame read is checked against its hash."""
    from torch.utils.data import DataLoader

    index = load_index(jpeg_root)
    out = build_store(jpeg_root, tmp_path / "st", resize=RESIZE, codec=codec, progress=False)
    _garbage_in_the_middle(out / "shard-00000.fpk")
    frame_store = open_store(index, out, resize=RESIZE, modalities=TWO_STREAM)
    dataset = ClipDataset(index.instances, ClipSettings(modalities=["frames"], num_frames=10, resize=RESIZE,
                                                        crop=CROP), train=True, seed=0)
    dataset.use_store(frame_store)
    with pytest.raises(FparError, match=r"shard-00000.fpk is damaged \(frame \d+ of the \w+ frames of .* fails its "
                                        r"checksum\): rebuild it with"):
        for _ in DataLoader(dataset, batch_size=1, num_workers=1):
            pass
    assert main(["cache", str(jpeg_root), "--out", str(out), "--resize", str(RESIZE), "--verify"]) == 1
    err = _error_line(capsys.readouterr().err)
    assert "shard-00000.fpk is damaged (1 of its frames fail their checksums)" in err


def test_verify_reports_an_intact_store(jpeg_root, tmp_path, capsys):
    out = tmp_path / "st"
    assert main(["cache", str(jpeg_root), "--out", str(out), "--resize", str(RESIZE), "--codec", "jpeg"]) == 0
    assert main(["cache", str(jpeg_root), "--out", str(out), "--resize", str(RESIZE), "--verify"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"store {out} verified: 90 frames in 1 shard(s)")


def test_a_store_folder_holding_other_files_is_refused_and_left_untouched(jpeg_root, tmp_path, capsys):
    """`data.store: /elsewhere` (or --out) naming a folder of someone else's files: nothing deleted there."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "index.json").write_text("mine")
    (elsewhere / "rgb.u8").write_bytes(b"precious")
    for attempt in (lambda: main(["cache", str(jpeg_root), "--out", str(elsewhere), "--resize", str(RESIZE)]),
                    lambda: main(["cache", str(jpeg_root), "--out", str(elsewhere), "--resize", str(RESIZE),
                                  "--rebuild"])):
        assert attempt() == 1
        err = _error_line(capsys.readouterr().err)
        assert f"store folder {elsewhere} holds files that are not a store's" in err
    with pytest.raises(FparError, match="holds files that are not a store's"):
        ensure_store(load_index(jpeg_root), elsewhere, resize=RESIZE, modalities=TWO_STREAM)
    (elsewhere / "rgb.u8").unlink()  # an index.json alone that is not a store's is refused too
    assert main(["cache", str(jpeg_root), "--out", str(elsewhere), "--resize", str(RESIZE)]) == 1
    assert sorted(p.name for p in elsewhere.iterdir()) == ["index.json"]
    assert (elsewhere / "index.json").read_text() == "mine"


def test_a_link_planted_as_a_shard_is_never_written_through(jpeg_root, tmp_path, capsys):
    out = build_store(jpeg_root, tmp_path / "st", resize=RESIZE, codec="jpeg", progress=False)
    target = tmp_path / "target"
    target.write_bytes(b"keep me")
    (out / "shard-00000.fpk").unlink()
    (out / "shard-00000.fpk").symlink_to(target)
    assert main(["cache", str(jpeg_root), "--out", str(out), "--resize", str(RESIZE), "--rebuild"]) == 1
    assert "shard-00000.fpk" in capsys.readouterr().err
    assert target.read_bytes() == b"keep me"


def test_a_full_disk_during_cache_names_the_path(jpeg_root, tmp_path, small_disk, capsys):
    disk = small_disk("64k")
    out = disk / "st"
    assert main(["cache", str(jpeg_root), "--out", str(out), "--resize", str(RESIZE), "--codec", "raw"]) == 1
    err = _error_line(capsys.readouterr().err)
    assert f"cannot write {out}/" in err and "no space left on the device" in err, err
    assert not (out / "index.json").exists()


def test_reduced_size_decoding_is_opt_in_and_close_to_the_exact_frames(jpeg_root, tmp_path):
    """Frames twice the resize (70x50 at resize 20): the default store gives the image path's pixels;
    --reduced-decode decodes them at half size first (faster, not the same pixels, recorded in the store)."""
    index = load_index(jpeg_root)
    exact = FrameStore(build_store(jpeg_root, tmp_path / "exact", resize=20, codec="jpeg", progress=False))
    reduced = FrameStore(build_store(jpeg_root, tmp_path / "reduced", resize=20, codec="jpeg", reduced_decode=True,
                                     progress=False))
    assert reduced.reduced_decode and not exact.reduced_decode
    inst = index.instances[0]
    images = ClipDataset(index.instances, ClipSettings(modalities=["frames"], num_frames=5, resize=20, crop=16))
    want = np.stack([images._read(inst, inst.rgb, k, True) for k in range(1, 11)])
    from fpar.data.transforms import resize_short

    want = np.stack([resize_short(frame, 20) for frame in want])
    assert np.array_equal(exact.frames(inst.instance_id, "rgb"), want)
    got = reduced.frames(inst.instance_id, "rgb")
    assert got.shape == want.shape and not np.array_equal(got, want)
    assert np.abs(got.astype(int) - want).mean() < 6
    with pytest.raises(FparError, match="out of date .built with reduced_decode True, wanted False"):
        build_store(jpeg_root, tmp_path / "reduced", resize=20, codec="jpeg", progress=False)


def test_data_check_deep_verifies_the_datasets_stores(jpeg_root, tmp_path, capsys):
    root = tmp_path / "ds"
    shutil.copytree(jpeg_root, root)
    assert main(["cache", str(root), "--resize", str(RESIZE), "--codec", "jpeg"]) == 0
    assert main(["data", "check", str(root), "--deep"]) == 0
    store = root / ".fpar-store" / f"r{RESIZE}"
    _garbage_in_the_middle(store / "shard-00000.fpk")
    assert main(["data", "check", str(root)]) == 0  # the frames themselves are fine
    capsys.readouterr()
    assert main(["data", "check", str(root), "--deep"]) == 1
    out = capsys.readouterr().out
    assert f"  {store}: shard-00000.fpk is damaged (1 of its frames fail their checksums): rebuild it with" in out


def test_a_merge_killed_between_its_renames_is_finished_by_the_next_run(jpeg_root, tmp_path):
    index = load_index(jpeg_root)
    out = tmp_path / "st"
    for k in (1, 2):
        build_store(jpeg_root, out, resize=RESIZE, codec="jpeg", shard=(k, 3), progress=False)
    # The third part's builder dies (as with SIGKILL) right after the merge's first rename.
    script = (
        "import os\n"
        "from fpar.data.store import writer as store\n"
        "real = os.replace\n"
        "def replace(a, b):\n"
        "    real(a, b)\n"
        "    if str(a).endswith('.fpk'): os._exit(9)\n"
        "os.replace = replace\n"
        f"store.build_store({str(jpeg_root)!r}, {str(out)!r}, resize={RESIZE}, codec='jpeg', shard=(3, 3),"
        " progress=False)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(store_module.__file__).parents[3])}
    assert subprocess.run([sys.executable, "-c", script], env=env).returncode == 9
    assert (out / "merge.json").is_file() and (out / "shard-00000.fpk").is_file()
    with pytest.raises(FparError, match="no finished store here"):
        open_store(index, out, resize=RESIZE, modalities=TWO_STREAM)
    build_store(jpeg_root, out, resize=RESIZE, codec="jpeg", progress=False)  # the next run finishes the merge
    assert not (out / "merge.json").exists() and not list(out.glob("part-*"))
    merged = open_store(index, out, resize=RESIZE, modalities=TWO_STREAM)
    assert merged.verify()["shards"] == 3
    _same_tensors(index, merged, modalities=TWO_STREAM, num_frames=5, stack_size=5)


def test_a_store_of_the_previous_format_is_rebuilt_on_first_use(jpeg_root, tmp_path):
    """A format-1 store (one flat .u8 file per kind) left in a dataset by an older fpar."""
    old = tmp_path / "st"
    old.mkdir()
    (old / "index.json").write_text('{"settings": {"format": 1, "resize": 40, "kinds": ["rgb"]}, "instances": {}}')
    (old / "rgb.u8").write_bytes(bytes(1000))
    index = load_index(jpeg_root)
    with pytest.raises(FparError, match=r"out of date \(format 1, this fpar reads format 3\)"):
        open_store(index, old, resize=RESIZE, modalities=["frames"])
    frame_store = ensure_store(index, old, resize=RESIZE, modalities=["frames"])
    assert not (old / "rgb.u8").exists() and frame_store.verify()["frames"] == 90


def test_training_from_a_tampered_store_stops_with_one_line_and_no_run_folder(tiny_data, tmp_path, capsys):
    """`data.store` built, then bytes of a frame the first epoch reads changed: training never sees them."""
    from helpers.tiny import tiny_config, write_config

    data = shutil.copytree(tiny_data, tmp_path / "data")
    store = tmp_path / "store"
    config = write_config(tmp_path / "tiny.yaml", tiny_config(data={"store": str(store)}))
    assert main(["cache", str(data), "--out", str(store), "--resize", "48", "--modalities", "frames"]) == 0
    frame_store = FrameStore(store)
    row = frame_store.instances["S1/close_red/1"]["rgb"][0]  # its frame 1, in every clip of two frames
    _, length, offset, _ = frame_store.table[row].tolist()
    with open(store / "shard-00000.fpk", "r+b") as shard:
        shard.seek(offset + length // 2)
        shard.write(bytes(16))
    capsys.readouterr()
    assert main(["train", str(config), "--data", str(data), "--out", str(tmp_path / "runs"), "--no-progress"]) == 1
    err = _error_line(capsys.readouterr().err)
    assert f"store {store}: shard-00000.fpk is damaged (frame 1 of the rgb frames of S1/close_red/1 fails its " \
           "checksum)" in err
    assert not (tmp_path / "runs" / "tiny").exists()

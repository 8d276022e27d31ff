"""Small hostile files that would take gigabytes, minutes or the stack: a YAML "billion laughs",
deep nesting, a huge config, a decompression-bomb PNG or GIF, odd checkpoints. Each is one line."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from fpar.cli import main
from fpar.data.frames import read_frame
from fpar.engine.config import load_config, parse_override
from fpar.errors import FparError

LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + k)}: &{chr(98 + k)} [" + ", ".join([f"*{chr(97 + k)}"] * 9) + "]\n" for k in range(12))
YAMLS = [
    ("billion laughs", LAUGHS.encode(), "more than 100 aliases"),
    ("deep nesting", b"experiment: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested more than 50 levels deep"),
    ("deep block nesting", "".join(" " * k + f"k{k}:\n" for k in range(60)).encode(), "nested more than 50 levels"),
    ("two megabytes", b"# " + b"x" * (2 << 20) + b"\n", "more than the 1024 KiB fpar reads"),
]


@pytest.mark.parametrize("name, text, message", YAMLS, ids=[y[0] for y in YAMLS])
def test_a_hostile_config_is_one_line(tmp_path, name, text, message, capsys):
    path = tmp_path / "hostile.yaml"
    path.write_bytes(text)
    with pytest.raises(FparError, match=message):
        load_config(path)
    assert main(["train", str(path), "--out", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("item, message", [
    ("model.x=" + "[" * 5000 + "]" * 5000, "nested more than 50 levels deep"),
    ("a." * 5000 + "b=1", "nested more than 50 levels deep"),
    ("data=" + LAUGHS.replace("\n", ", ").join("{}"), "more than 100 aliases"),
])
def test_a_hostile_override_is_one_line(item, message):
    with pytest.raises(FparError, match=message):
        parse_override(item)


def png_header_only(path, width, height):
    """A tiny PNG whose header claims ``width`` x ``height`` (what a decompression bomb does)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_frame_is_refused_before_decoding(tmp_path, monkeypatch):
    bomb = png_header_only(tmp_path / "rgb0001.png", 100_000, 100_000)
    with pytest.raises(FparError, match=r"rgb0001.png: a 100000x100000 picture is more than the 67108864 pixels"):
        read_frame(bomb, color=True)
    monkeypatch.setenv("FPAR_MAX_PIXELS", "100")
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(small)
    with pytest.raises(FparError, match="20x20 picture is more than the 100 pixels .*FPAR_MAX_PIXELS"):
        read_frame(small, color=True)
    monkeypatch.setenv("FPAR_MAX_PIXELS", "400")
    assert read_frame(small, color=True).shape == (20, 20, 3)


def gif_with_screen(path, width, height):
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path, format="GIF")
    data = bytearray(path.read_bytes())
    data[6:10] = struct.pack("<HH", width, height)  # the logical screen
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("kind", ["a 40000x40000 screen", "truncated frame data"])
def test_a_hostile_gif_is_one_line(tmp_path, kind, capsys):
    if kind == "truncated frame data":
        gif = tmp_path / "clip.gif"
        frames = [Image.fromarray(np.random.default_rng(k).integers(0, 255, (64, 64, 3), np.uint8)) for k in range(3)]
        frames[0].save(gif, save_all=True, append_images=frames[1:])
        gif.write_bytes(gif.read_bytes()[:-900])
        message = "cannot read GIF"
    else:
        gif = gif_with_screen(tmp_path / "clip.gif", 40000, 40000)
        message = "more than the 67108864 pixels"
    assert main(["flow", str(gif), "--out", str(tmp_path / "flow.gif")]) == 1
    err = capsys.readouterr().err
    assert message in err and str(gif) in err and err.count("\n") == 1
    assert not (tmp_path / "flow.gif").exists()


@pytest.mark.parametrize("args, message", [
    (["--resize", "100000"], "argument --resize: must be at most 8192"),
])
def test_cache_sizes_are_bounded_before_anything_is_written(tiny_data, args, message, capsys):
    with pytest.raises(SystemExit):
        main(["cache", str(tiny_data), *args])
    assert message in capsys.readouterr().err and not (tiny_data / ".fpar-store").exists()


def test_a_clip_asking_for_gigabytes_is_refused_by_its_settings(tmp_path):
    """An export whose fpar.json asked for 64 frames at 4096 px took 8.2 GB, then a MemoryError."""
    from fpar.data import ClipSettings

    with pytest.raises(FparError, match="64 frames of 4096x4096 are more than the 268435456 pixels"):
        ClipSettings(modalities=["frames"], num_frames=64, resize=4096, crop=4096)
    ClipSettings(modalities=["frames"], num_frames=64, resize=2048, crop=2048)  # exactly the limit


def test_a_store_link_planted_in_the_dataset_is_refused(tiny_data, tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_data / "processed_frames", data / "processed_frames")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "index.json").write_text("mine")
    (data / ".fpar-store").symlink_to(elsewhere)
    assert main(["cache", str(data), "--resize", "48"]) == 1
    assert "is a symbolic link" in capsys.readouterr().err
    assert [p.name for p in elsewhere.iterdir()] == ["index.json"] and (elsewhere / "index.json").read_text() == "mine"


def test_data_check_reports_a_decompression_bomb_without_decoding_it(tiny_data, tmp_path, capsys):
    """A 3 MB PNG bomb took `data check` to 6.2 GB."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_data / "processed_frames", data / "processed_frames")
    frame = data / "processed_frames" / "S1" / "close_red" / "1" / "rgb" / "rgb0003.png"
    png_header_only(frame, 100_000, 100_000)
    assert main(["data", "check", str(data)]) == 1
    out = capsys.readouterr().out
    assert "rgb0003.png" in out and "100000x100000 picture is more than the 67108864 pixels" in out

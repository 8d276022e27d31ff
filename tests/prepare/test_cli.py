"""The prepare commands end to end through ``fpar``'s entry point."""

from PIL import Image

from fpar.cli import main
from fpar.data import load_index

from .conftest import make_raw_gtea, write_gif


def test_fpar_prepare_two_videos(tmp_path, square_frames, capsys):
    a = write_gif(tmp_path / "take_1.gif", square_frames)
    b = write_gif(tmp_path / "take_2.gif", square_frames[:6])
    argv = ["prepare", str(a), str(b), "--out", str(tmp_path / "out"), "--subject", "S3", "--class", "open_jar",
            "--flow", "dis"]
    assert main(argv) == 0
    index = load_index(tmp_path / "out")
    assert [(i.instance_id, len(i.rgb)) for i in index.instances] == [
        ("S3/open_jar/take_1", 8), ("S3/open_jar/take_2", 6)]
    capsys.readouterr()
    assert main(argv) == 0
    assert "0 instances written (0 frames), 2 already prepared, 0 failed" in capsys.readouterr().out


def test_fpar_prepare_errors(tmp_path, square_frames, capsys):
    a = write_gif(tmp_path / "a.gif", square_frames)
    assert main(["prepare", str(a), str(a), "--out", str(tmp_path), "--subject", "S1", "--class", "x",
                 "--instance", "one"]) == 1
    assert main(["prepare", str(tmp_path / "missing.mp4"), "--out", str(tmp_path), "--subject", "S1",
                 "--class", "x"]) == 1
    err = capsys.readouterr().err
    assert "--instance names one instance" in err and "missing.mp4: no such" in err


def test_two_videos_with_one_name_are_refused_before_anything_is_written(tmp_path, square_frames, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = write_gif(tmp_path / "a" / "clip.gif", square_frames)
    b = write_gif(tmp_path / "b" / "clip.gif", square_frames[:6])
    out = tmp_path / "out"
    assert main(["prepare", str(a), str(b), "--out", str(out), "--subject", "S1", "--class", "x", "--flow", "dis"]) == 1
    assert "same name would be one instance (clip)" in capsys.readouterr().err
    assert not out.exists()


def test_fpar_flow_writes_a_side_by_side_gif(tmp_path, square_frames):
    video = write_gif(tmp_path / "clip.gif", square_frames)
    assert main(["flow", str(video), "--out", str(tmp_path / "flow.gif")]) == 0
    with Image.open(tmp_path / "flow.gif") as gif:
        assert gif.n_frames == len(square_frames) - 1
        assert gif.size == (2 * 96, 72)
        gif.seek(2)
        flow_half = gif.convert("RGB").crop((96, 0, 192, 72))
    assert flow_half.getpixel((40, 36)) != (0, 0, 0)  # the moving square is coloured
    assert max(flow_half.getpixel((85, 5))) < 40  # the still background stays dark


def test_fpar_prepare_gtea(tmp_path, capsys):
    make_raw_gtea(tmp_path / "raw")
    # the segment past the video's last frame fails: the others are written, the exit code says so
    assert main(["prepare-gtea", str(tmp_path / "raw"), "--out", str(tmp_path / "out"), "--flow", "dis"]) == 1
    assert "3 instances written, 0 already done, 1 dropped (Ego-RNN drops), 2 problems" in capsys.readouterr().out
    assert len(load_index(tmp_path / "out").instances) == 3


def test_fpar_flow_with_opencv_tvl1(tmp_path, square_frames):
    video = write_gif(tmp_path / "clip.gif", square_frames[:3])
    assert main(["flow", str(video), "--out", str(tmp_path / "flow.gif"), "--method", "tvl1-opencv"]) == 0
    with Image.open(tmp_path / "flow.gif") as gif:
        assert gif.n_frames == 2

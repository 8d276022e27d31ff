"""The synthetic dataset: determinism, balance, and flow that is the motion actually rendered."""

import hashlib
import json

import cv2
import numpy as np
import pytest

from fpar.cli import main
from fpar.data import load_index
from fpar.data.synth import SYNTH_FLOW_BOUND as FLOW_BOUND, class_names, generate
from fpar.errors import FparError

TINY = dict(subjects=2, classes=8, videos_per_class=2, frames=6, size=(64, 48))


def digest(root):
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def tiny(module_tmp):
    return generate(module_tmp("synth") / "a", seed=5, **TINY)


def test_same_seed_gives_byte_identical_files_and_another_seed_does_not(tiny, tmp_path):
    again = generate(tmp_path / "b", seed=5, **TINY)
    other = generate(tmp_path / "c", seed=6, **TINY)
    assert len(digest(tiny)) == 2 * 8 * 2 * 6 * 4 + 1
    assert digest(again) == digest(tiny)
    assert digest(other) != digest(tiny)


def test_layout_classes_and_balance(tiny):
    index = load_index(tiny)
    assert index.layout == "processed" and index.problems == []
    assert index.classes == sorted(class_names(8))
    assert set(class_names(8)) == {f"{v}_{o}" for v in ("open", "close", "shake", "stir") for o in ("jar", "box")}
    counts = {(s, c): 0 for s in ("S1", "S2") for c in index.classes}
    for inst in index.instances:
        counts[inst.subject, inst.class_name] += 1
        assert len(inst.rgb) == len(inst.mmaps) == len(inst.flow_x) == len(inst.flow_y) == 6
    assert set(counts.values()) == {2}
    assert len({inst.instance_id for inst in index.instances}) == len(index.instances)
    meta = json.loads((tiny / "synth.json").read_text())
    assert meta["flow_bound"] == FLOW_BOUND and meta["classes"] == class_names(8)


def flow_px(path):
    return (cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).astype(float) * 2 * FLOW_BOUND / 255) - FLOW_BOUND


def test_flow_is_the_rendered_motion(tiny):
    # Warping frame t+1 back by the stored flow must give frame t on (almost) every pixel.
    inst = next(i for i in load_index(tiny).instances if i.class_name == "shake_jar")
    for t in range(5):
        now = cv2.imread(str(inst.rgb[t])).astype(int)
        after = cv2.imread(str(inst.rgb[t + 1])).astype(int)
        fx, fy = np.rint(flow_px(inst.flow_x[t])).astype(int), np.rint(flow_px(inst.flow_y[t])).astype(int)
        h, w = fx.shape
        ys, xs = np.mgrid[0:h, 0:w]
        tx, ty = xs + fx, ys + fy
        inside = (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)
        same = (after[ty.clip(0, h - 1), tx.clip(0, w - 1)] == now).all(axis=-1)
        assert same[inside].mean() > 0.97


def test_verbs_move_the_way_they_should(tiny):
    index = load_index(tiny)

    def mean_motion(class_name):
        """Mean (x, y) flow and mean |x| flow of the moving pixels (motion map on) of a class."""
        values = []
        for inst in (i for i in index.instances if i.class_name == class_name):
            for k in range(6):
                moving = cv2.imread(str(inst.mmaps[k]), cv2.IMREAD_GRAYSCALE) > 0
                if not moving.any():  # a swing's turning point: nothing moves by a whole pixel
                    continue
                values.append([flow_px(inst.flow_x[k])[moving].mean(), flow_px(inst.flow_y[k])[moving].mean(),
                               np.abs(flow_px(inst.flow_x[k])[moving]).mean()])
        return np.mean(values, axis=0)

    assert mean_motion("open_jar")[1] < -0.5 < 0.5 < mean_motion("close_jar")[1]  # lid up / lid down
    assert mean_motion("shake_jar")[2] > 2 * abs(mean_motion("shake_jar")[1])  # sideways
    assert abs(mean_motion("open_jar")[0]) < 1


def test_cli_synth_and_bad_arguments(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["synth", str(out), "--subjects", "1", "--classes", "2", "--videos-per-class", "1",
                 "--frames", "5", "--size", "48x40"]) == 0
    assert "wrote 2 videos" in capsys.readouterr().out
    assert cv2.imread(str(out / "processed_frames/S1/open_jar/1/rgb/rgb0001.png")).shape == (40, 48, 3)
    assert main(["synth", str(out)]) == 1  # refuses to overwrite without --force
    assert "--force" in capsys.readouterr().err
    with pytest.raises(FparError, match="^classes must be between 1 and"):  # the API's words, not a flag
        class_names(21)
    with pytest.raises(SystemExit):
        main(["synth", str(out), "--size", "big"])


def test_a_killed_synth_is_refused_by_readers_and_finished_by_the_rerun(tiny, tmp_path, monkeypatch):
    """A kill after 5 of the 32 videos left a partial dataset that training used and the rerun refused."""
    import fpar.data.synth as synth

    real, written = synth._write_video, []

    def killed_after_five(*args):
        if len(written) == 5:
            raise KeyboardInterrupt  # as a kill: nothing after this point runs
        written.append(args[1:4])
        real(*args)

    monkeypatch.setattr(synth, "_write_video", killed_after_five)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "d", seed=5, **TINY)
    monkeypatch.setattr(synth, "_write_video", real)
    with pytest.raises(FparError, match="whose writing was interrupted .*run the command that wrote it again"):
        load_index(tmp_path / "d")
    with pytest.raises(FparError, match="already holds a dataset \\(an unfinished synth with other settings\\)"):
        generate(tmp_path / "d", seed=6, **TINY)
    generate(tmp_path / "d", seed=5, **TINY)  # the same command finishes it
    assert digest(tmp_path / "d") == digest(tiny)
    assert load_index(tmp_path / "d").instances

"""Journey 4, from a trained verb+noun model to deployment, as a user types it: `fpar train` -> `fpar export
--format onnx` -> `fpar predict --runtime onnx` gives the PyTorch model's answer for every head (the
action, verb, noun and EPIC's verb x noun action), and `fpar stream` over the same frames gives the
same action."""

import json

import cv2
import numpy as np
import pytest

from fpar.cli import main

from helpers.tiny import tiny_config, write_config
from helpers.epic_tree import epic_like_dataset


def _video(path, frames: int = 2):
    """A clip of exactly the model's frame count: predict samples every frame, and the stream's window
    (the checkpoint's clip length) holds the same frames at the end."""
    rng = np.random.default_rng(1)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (48, 48))
    for t in range(frames):
        frame = rng.integers(90, 140, size=(48, 48, 3), dtype=np.uint8)
        frame[12:24, 12 + 2 * t:24 + 2 * t] = (40, 200, 60)
        writer.write(frame)
    writer.release()
    return path


def test_export_onnx_predict_and_stream_agree_per_head(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    epic_like_dataset(tmp_path / "data")
    config = tiny_config(experiment="verb-noun", trainer={"epochs": 1, "logger": []})
    config["model"]["heads"] = {"verb": 97, "noun": 300}
    write_config(tmp_path / "verb-noun.yaml", config)
    assert main(["train", "verb-noun.yaml", "--data", "data", "--out", "runs", "--no-progress"]) == 0
    assert main(["export", "runs/verb-noun/best.ckpt", "exported", "--format", "onnx"]) == 0
    _video(tmp_path / "clip.avi")

    answers = {}
    for runtime, model in (("torch", "runs/verb-noun/best.ckpt"), ("onnx", "exported")):
        capsys.readouterr()
        assert main(["predict", model, "clip.avi", "--runtime", runtime, "--top", "3", "--json"]) == 0
        answers[runtime] = json.loads(capsys.readouterr().out)
    torch_answer, onnx_answer = answers["torch"], answers["onnx"]
    assert set(torch_answer["heads"]) == {"verb", "noun", "verb_noun_action"} == set(onnx_answer["heads"])
    for head in ("verb", "noun"):
        assert [e["class"] for e in onnx_answer["heads"][head]] == [e["class"] for e in torch_answer["heads"][head]]
        assert [e["probability"] for e in onnx_answer["heads"][head]] == pytest.approx(
            [e["probability"] for e in torch_answer["heads"][head]], abs=1e-4)
    rule = [(e["verb"], e["noun"]) for e in torch_answer["heads"]["verb_noun_action"]]
    assert [(e["verb"], e["noun"]) for e in onnx_answer["heads"]["verb_noun_action"]] == rule
    assert rule[0] == (torch_answer["heads"]["verb"][0]["class"], torch_answer["heads"]["noun"][0]["class"])

    capsys.readouterr()
    assert main(["predict", "exported", "clip.avi", "--runtime", "onnx", "--top", "2"]) == 0
    text = capsys.readouterr().out
    assert f"verb: 1. {onnx_answer['heads']['verb'][0]['class']} " in text and "verb_noun_action: 1. " in text

    assert main(["stream", "runs/verb-noun/best.ckpt", "clip.avi", "--json", "--top", "3"]) == 0
    frames = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"frame"' in line]
    last = frames[-1]["top"]
    assert [e["class"] for e in last] == [e["class"] for e in torch_answer["top"]]
    # the stream resizes each frame as it arrives, predict the clip's frames together: a few 1e-4 apart
    assert [e["probability"] for e in last] == pytest.approx([e["probability"] for e in torch_answer["top"]],
                                                             abs=1e-3)

    # the stream per head, in PyTorch and from the ONNX streaming graph (no torch needed there)
    assert main(["export", "runs/verb-noun/best.ckpt", "streamed", "--format", "onnx", "--stream"]) == 0
    for runtime, model in (("torch", "runs/verb-noun/best.ckpt"), ("onnx", "streamed")):
        capsys.readouterr()
        assert main(["stream", model, "clip.avi", "--json", "--top", "3", "--runtime", runtime]) == 0
        final = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"frame"' in line][-1]
        assert final["ready"] and set(final["heads"]) == {"verb", "noun", "verb_noun_action"}, final
        for head in ("verb", "noun"):
            assert [e["class"] for e in final["heads"][head]] == [e["class"] for e in torch_answer["heads"][head]]
            assert [e["probability"] for e in final["heads"][head]] == pytest.approx(
                [e["probability"] for e in torch_answer["heads"][head]], abs=1e-3)
        assert [(e["verb"], e["noun"]) for e in final["heads"]["verb_noun_action"]] == rule
    capsys.readouterr()
    assert main(["stream", "streamed", "clip.avi", "--runtime", "onnx", "--top", "1"]) == 0
    assert f"| verb: {torch_answer['heads']['verb'][0]['class']} " in capsys.readouterr().out.splitlines()[-2]

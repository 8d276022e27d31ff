"""Class and instance folders whose names are not UTF-8 (os.listdir gives them surrogate-escaped):
``fpar eval --predictions`` and ``fpar report`` write them backslash-escaped instead of crashing."""

import csv
import json
import os

import torch

from fpar.checkpoint import save_checkpoint
from fpar.cli import main
from fpar.data import load_index
from fpar.data.settings import ClipSettings
from fpar.models import build_model

from helpers.tiny import write_dataset

RAW = b"shake_\xff\xfejar"
ESCAPED = "shake_\\xff\\xfejar"  # what the files show: the bytes, backslash-escaped


def _rename_class(root, old: str, new: bytes) -> None:
    for top in ("processed_frames", "flow_x_processed", "flow_y_processed"):
        for subject in (root / top).iterdir():
            os.rename(os.fsencode(subject / old), os.fsencode(subject) + b"/" + new)


def test_undecodable_class_names_are_written_escaped(tmp_path, capsys):
    data = write_dataset(tmp_path / "data", videos=1)
    _rename_class(data, "stir_blue", RAW)
    index = load_index(data)
    assert os.fsdecode(RAW) in index.classes  # surrogate-escaped, not valid UTF-8 text
    torch.manual_seed(0)
    model = build_model("rgb_attention", num_classes=3, backbone="resnet18", pretrained=None, mem_size=16)
    checkpoint = tmp_path / "run" / "best.ckpt"
    save_checkpoint(checkpoint, model_state=model.state_dict(), model=model.build_spec, classes=index.classes,
                    clip=ClipSettings(modalities=["frames"], num_frames=2, resize=48, crop=48))

    predictions = tmp_path / "pred.csv"
    assert main(["eval", str(checkpoint), "--data", str(data), "--split", "S2", "--predictions",
                 str(predictions)]) == 0
    assert ESCAPED in capsys.readouterr().out
    rows = list(csv.DictReader(predictions.open(encoding="utf-8")))
    assert ESCAPED in rows[0] and any(row["label"] == ESCAPED for row in rows)

    out = tmp_path / "report"
    assert main(["report", str(checkpoint), "--data", str(data), "--split", "S2", "--clips", "3",
                 "--out", str(out)]) == 0
    for name in ("report.md", "index.html", "predictions.csv"):
        assert ESCAPED in (out / name).read_text(encoding="utf-8"), name
    summary = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert ESCAPED in summary["runs"][0]["per_class"]

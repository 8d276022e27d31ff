import json

import torch

from fpar.checkpoint import save_checkpoint
from fpar.cli import main
from fpar.data import load_index
from fpar.data.settings import ClipSettings
from fpar.data.synth import generate
from fpar.engine.config import validate_config
from fpar.models import build_model


def test_report_holds_accuracy_confusion_features_and_explanations(tmp_path, capsys):
    data = tmp_path / "data"
    generate(data, subjects=2, classes=3, videos_per_class=1, frames=8, size=(80, 60), seed=0)
    classes = load_index(data).classes
    torch.manual_seed(0)
    model = build_model("rgb_ms", num_classes=3, backbone="resnet18", input_size=64, ms_head="regression")
    run = tmp_path / "run"
    config = validate_config({"experiment": "tiny-ms", "model": {"name": "rgb_ms", "backbone": "resnet18"},
                              "stage": {"name": "rgb_stage2"}, "loss": {"ms": {"kind": "regression"}},
                              "data": {"modalities": ["frames", "mmaps"], "resize": 72, "crop": 64,
                                       "num_frames": 2, "val_subjects": ["S2"]}})
    save_checkpoint(run / "best.ckpt", model_state=model.state_dict(), model=model.build_spec, classes=classes,
                    clip=config.data.clip, config=config)
    (run / "metrics.json").write_text('[{"epoch": 1, "train_loss": 1.1, "val_loss": 1.0, "val_accuracy": 0.3}]')

    assert main(["report", str(run / "best.ckpt"), "--data", str(data), "--clips", "2"]) == 0
    out = run / "report"
    report = (out / "report.md").read_text()
    assert report.startswith("# tiny-ms")
    assert "| top-1 |" in report and all(f"| {name} |" in report for name in classes)
    for picture in ("curves.png", "confusion.png", "features.png"):
        assert (out / picture).is_file() and f"]({picture})" in report
    explained = sorted(p.name for p in (out / "clips").iterdir())
    assert len(explained) == 2
    assert all((out / "clips" / name / "cam.gif").is_file() and (out / "clips" / name / "ms.png").is_file()
               for name in explained)
    assert "wrote" in capsys.readouterr().out


def test_a_checkpoint_alone_is_evaluated_predicted_on_and_reported(tmp_path, capsys):
    """No config file anywhere: the checkpoint's clip settings say how its inputs are read (a crop of
    64 px for a model built for 64 px: read any other way, its MS head would not fit the grid)."""
    data = tmp_path / "data"
    generate(data, subjects=2, classes=3, videos_per_class=1, frames=8, size=(80, 60), seed=0)
    index = load_index(data)
    torch.manual_seed(0)
    model = build_model("rgb_ms", num_classes=3, backbone="resnet18", input_size=64, ms_head="classification")
    checkpoint = tmp_path / "alone.ckpt"
    save_checkpoint(checkpoint, model_state=model.state_dict(), model=model.build_spec, classes=index.classes,
                    clip=ClipSettings(modalities=["frames"], num_frames=3, resize=72, crop=64))
    assert not list(tmp_path.rglob("*.yaml"))

    assert main(["eval", str(checkpoint), "--data", str(data), "--split", "S2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 3
    video = index.instances[0].frames("rgb")[0].parent
    assert main(["predict", str(checkpoint), str(video), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["top"]) == 3
    assert main(["report", str(checkpoint), "--data", str(data), "--split", "S2", "--clips", "1",
                 "--out", str(tmp_path / "report")]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    assert report.startswith("# alone") and "(3 clips, centre crop)" in report
    assert (tmp_path / "report" / "predictions.csv").is_file()

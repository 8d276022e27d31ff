import torch

from fpar.checkpoint import save_checkpoint
from fpar.cli import main
from fpar.data import load_index
from fpar.data.synth import generate
from fpar.models import build_model


def test_report_holds_accuracy_confusion_features_and_explanations(tmp_path, capsys):
    data = tmp_path / "data"
    generate(data, subjects=2, classes=3, videos_per_class=1, frames=8, size=(80, 60), seed=0)
    classes = load_index(data).classes
    torch.manual_seed(0)
    model = build_model("rgb_ms", num_classes=3, backbone="resnet18", input_size=64, ms_head="regression")
    run = tmp_path / "run"
    config = {"experiment": "tiny-ms", "data": {"modalities": ["frames", "mmaps"], "resize": 72, "crop": 64,
                                                "num_frames": 2, "val_subjects": ["S2"]}}
    save_checkpoint(run / "best.ckpt", model_state=model.state_dict(), model=model.build_spec, classes=classes,
                    config=config)
    (run / "metrics.json").write_text('[{"epoch": 1, "train_loss": 1.1, "val_loss": 1.0, "val_accuracy": 0.3}]')

    assert main(["report", str(run / "best.ckpt"), "--data", str(data), "--clips", "2"]) == 0
    out = run / "report"
    report = (out / "report.md").read_text()
    assert report.startswith("# tiny-ms")
    assert "| top-1 accuracy |" in report and all(f"| {name} |" in report for name in classes)
    for picture in ("curves.png", "confusion.png", "features.png"):
        assert (out / picture).is_file() and f"]({picture})" in report
    explained = sorted(p.name for p in (out / "clips").iterdir())
    assert len(explained) == 2
    assert all((out / "clips" / name / "cam.gif").is_file() and (out / "clips" / name / "ms.png").is_file()
               for name in explained)
    assert "wrote" in capsys.readouterr().out

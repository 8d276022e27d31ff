"""Checkpoints people keep and share: a model-only best.ckpt, exports (safetensors + fpar.json) that
every checkpoint-taking command reads, one-line errors for broken files, no stale temporaries."""

import json

import pytest
import torch
from PIL import Image

from fpar.checkpoint import load_checkpoint, load_model, save_checkpoint
from fpar.cli import main
from fpar.data import ClipSettings
from fpar.engine.evaluate import evaluate
from fpar.engine.predict import predict_video
from fpar.engine.init_weights import load_init_weights, resolve_init_from
from fpar.engine.train import train
from fpar.models import build_model

from helpers.tiny import CLASSES, tiny_config

RESUME_ONLY = ("optimizer_states", "lr_schedulers", "loops", "callbacks", "hyper_parameters")


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "clip.gif"
    frames = [Image.new("RGB", (64, 48), (20 * k, 100, 200 - 20 * k)) for k in range(8)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


def test_best_ckpt_holds_the_model_only_and_last_ckpt_the_training_state(trained_run):
    best = load_checkpoint(trained_run["best_ckpt"])
    last = torch.load(trained_run["last_ckpt"], weights_only=True)
    assert not set(RESUME_ONLY) & set(best), sorted(best)
    assert set(RESUME_ONLY) - {"hyper_parameters"} <= set(last)
    assert best["fpar"]["classes"] == list(CLASSES) and best["fpar"]["config"]["experiment"] == "flow-tiny"
    assert best["fpar"]["clip"] and best["fpar"]["model"]["name"] == "flow_resnet"
    assert set(best["state_dict"]) == set(last["state_dict"])


def test_export_is_read_by_every_command_that_takes_a_checkpoint(trained_run, tiny_data, tmp_path, capsys):
    out = tmp_path / "export"
    assert main(["export", trained_run["best_ckpt"], str(out)]) == 0
    assert "model.safetensors" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["fpar.json", "model.safetensors"]
    contract = json.loads((out / "fpar.json").read_text())
    assert contract["classes"] == list(CLASSES) and contract["model"]["name"] == "flow_resnet"
    assert contract["clip"]["modalities"] == ["flow"] and contract["config"]["experiment"] == "flow-tiny"

    reference = evaluate(trained_run["best_ckpt"], tiny_data)
    for form in (out, out / "model.safetensors"):
        exported = evaluate(form, tiny_data)
        assert exported["accuracy"] == reference["accuracy"]
        for a, b in zip(exported["clips"], reference["clips"]):
            assert torch.equal(torch.as_tensor(a.scores), torch.as_tensor(b.scores))
    model, info = load_model(out)
    original, _ = load_model(trained_run["best_ckpt"])
    for key, value in original.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert info.classes == list(CLASSES)

    # init_from: a later stage starts from an export as from a checkpoint
    fresh = build_model("flow_resnet", num_classes=len(CLASSES), backbone="resnet18", pretrained=None, stack_size=2)
    load_init_weights(fresh, str(out), list(CLASSES))
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in original.state_dict().items())
    assert resolve_init_from("export", tmp_path) == str(out)
    assert resolve_init_from({"flow_model": str(out / "model.safetensors")}, tmp_path) == \
        {"flow_model": str(out / "model.safetensors")}

    assert main(["eval", str(out), "--data", str(tiny_data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == reference["accuracy"]

    assert main(["report", str(out), "--data", str(tiny_data), "--clips", "1"]) == 0
    assert f"{100 * reference['accuracy']:.1f}%" in capsys.readouterr().out
    assert (out / "report" / "report.md").is_file()  # inside the export's folder, as beside a best.ckpt


def test_predict_reads_an_export(tmp_path, video):
    model = build_model("rgb_attention", num_classes=3, backbone="resnet18", pretrained=None, input_size=64)
    clip = ClipSettings(modalities=["frames"], resize=72, crop=64, num_frames=4)
    checkpoint = tmp_path / "m.ckpt"
    save_checkpoint(checkpoint, model_state=model.state_dict(), model=model.build_spec, clip=clip,
                    classes=["a", "b", "c"])
    assert main(["export", str(checkpoint), str(tmp_path / "exp")]) == 0
    direct = predict_video(checkpoint, video)
    exported = predict_video(tmp_path / "exp" / "model.safetensors", video)
    assert torch.equal(direct.outputs["logits"], exported.outputs["logits"]) and exported.classes == ["a", "b", "c"]


def _broken(tmp_path, how: str):
    model = build_model("rgb_attention", num_classes=3, backbone="resnet18", pretrained=None, input_size=64)
    clip = ClipSettings(modalities=["frames"], resize=48, crop=48, num_frames=2, stack_size=2)
    path = tmp_path / f"{how}.ckpt"
    save_checkpoint(path, model_state=model.state_dict(), model=model.build_spec, clip=clip, classes=list(CLASSES))
    ckpt = torch.load(path, weights_only=True)
    if how == "size-mismatch":  # weights of a 5-class model under a 3-class spec
        other = build_model("rgb_attention", num_classes=5, backbone="resnet18", pretrained=None, input_size=64)
        ckpt["state_dict"] = {"model." + k: v for k, v in other.state_dict().items()}
    elif how == "list-state":
        ckpt["state_dict"] = list(ckpt["state_dict"].values())
    elif how == "string-fpar":
        ckpt["fpar"] = "rgb_attention"
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize("how", ["size-mismatch", "list-state", "string-fpar"])
@pytest.mark.parametrize("command", ["eval", "predict", "cam"])
def test_a_checkpoint_that_does_not_fit_is_one_line_naming_the_file(tmp_path, tiny_data, video, capsys,
                                                                     how, command):
    path = _broken(tmp_path, how)
    args = {"eval": ["eval", str(path), "--data", str(tiny_data)],
            "predict": ["predict", str(path), str(video)],
            "cam": ["cam", str(path), str(video), "--out", str(tmp_path / "cam")]}[command]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("fpar: error:") and str(path) in err and "\n" not in err, err


def test_temporaries_of_a_killed_save_are_removed_when_the_run_starts_again(tmp_path, tiny_data):
    run_dir = tmp_path / "runs" / "tiny"
    run_dir.mkdir(parents=True)
    stale = [run_dir / ".last.ckpt.k1ll3d.tmp", run_dir / ".best.ckpt.x9y8z7.tmp"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    keep = run_dir / "notes.tmp"
    keep.write_text("mine")
    train(tiny_config(trainer={"epochs": 1, "val_every": 1}), data_root=tiny_data, out_dir=tmp_path / "runs",
          resume=True, progress=False)
    assert not any(path.exists() for path in stale)
    assert keep.exists() and (run_dir / "last.ckpt").is_file()
    assert not list(run_dir.glob(".*.tmp"))

"""train(): a run directory with everything in it, a falling loss, errors before any training."""

import csv
import json
import logging
from pathlib import Path

import pytest
import torch

from fpar.checkpoint import load_checkpoint, load_model, save_checkpoint
from fpar.data.settings import ClipSettings
from fpar.engine.config import load_config
from fpar.engine.init_weights import load_init_weights, resolve_init_from
from fpar.engine.train import train
from fpar.errors import FparError
from fpar.models import build_model

from helpers.tiny import CLASSES, flow_config, tiny_config


def test_two_epochs_lower_the_training_loss(trained_run):
    first, second = trained_run["metrics"]
    assert (first["epoch"], second["epoch"]) == (1, 2)
    assert second["train_loss"] < first["train_loss"]
    assert trained_run["epochs_done"] == 2


def test_the_last_epoch_is_validated_whatever_val_every_also_after_a_resume(tiny_data, tmp_path):
    # epochs 3 with val_every 2: epoch 2 by the period, 3 because it is the last; extended to 5 by
    # --resume: 4 by the period, 5 because it is the new last (the final weights are always judged)
    first = train(tiny_config(experiment="judged", trainer={"epochs": 3, "val_every": 2}), data_root=tiny_data,
                  out_dir=tmp_path, progress=False)
    assert [row["epoch"] for row in first["metrics"]] == [2, 3]
    longer = train(tiny_config(experiment="judged", trainer={"epochs": 5, "val_every": 2}), data_root=tiny_data,
                   out_dir=tmp_path, resume=True, progress=False)
    assert [row["epoch"] for row in longer["metrics"]] == [2, 3, 4, 5]


def test_run_directory_holds_config_checkpoints_metrics_and_logs(trained_run):
    run = Path(trained_run["run_dir"])
    assert run.name == "flow-tiny"
    config = load_config(run / "config.yaml")
    assert config.model.name == "flow_resnet" and config.trainer.epochs == 2

    for name in ("best.ckpt", "last.ckpt"):
        model, info = load_model(run / name)  # the shared checkpoint format
        assert info.classes == list(CLASSES) and info.config == config.as_dict()
        assert info.clip == config.data.clip  # the model's input contract travels with it
        assert info.model["name"] == "flow_resnet" and info.model["num_classes"] == 3
        assert all(k.startswith("model.") for k in load_checkpoint(run / name)["state_dict"])
    assert load_checkpoint(run / "last.ckpt")["epoch"] == 1

    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert json.loads((run / "metrics.json").read_text()) == trained_run["metrics"]
    # every number the epoch line shows, named as evaluation names them (fpar.engine.metrics)
    assert set(rows[0]) >= {"epoch", "train_loss", "val_loss", "val_accuracy", "val_top5", "val_mean_class_accuracy"}
    best = max(r["val_accuracy"] for r in trained_run["metrics"])
    assert trained_run["best_val_accuracy"] == pytest.approx(best)
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))


def test_an_existing_run_is_not_overwritten_without_resume(trained_run, tiny_data):
    out = Path(trained_run["run_dir"]).parent
    with pytest.raises(FparError, match="--resume"):
        train(trained_run["config"], data_root=tiny_data, out_dir=out, progress=False)


def test_resuming_a_finished_run_trains_no_more(trained_run, tiny_data):
    out = Path(trained_run["run_dir"]).parent
    before = load_checkpoint(Path(trained_run["last_ckpt"]))["state_dict"]
    result = train(trained_run["config"], data_root=tiny_data, out_dir=out, resume=True, progress=False)
    assert result["epochs_done"] == 2 and result["metrics"] == trained_run["metrics"]
    after = load_checkpoint(Path(result["last_ckpt"]))["state_dict"]
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("change, key", [
    ({"init_from": {"flow_model": "nowhere/best.ckpt"}}, "init_from.flow_model"),
    ({"init_from": "nowhere/best.ckpt"}, "init_from"),
    ({"trainer": {"epochs": 2, "batch_size": 4, "val_every": 1, "accelerator": "cpu", "epoch": 3}}, "trainer.epoch"),
    ({"data": {"modalities": ["depth"]}}, "data.modalities"),
])
def test_config_errors_stop_before_training(tmp_path, tiny_data, change, key):
    config = {**flow_config(), **change}
    with pytest.raises(FparError, match=key.replace(".", r"\.")):
        train(config, data_root=tiny_data, out_dir=tmp_path, progress=False)
    assert not (tmp_path / "tiny").exists()


def test_no_dataset_is_an_error(tmp_path):
    with pytest.raises(FparError, match="--data"):
        train(flow_config(), out_dir=tmp_path, progress=False)


def test_init_from_paths_resolve_against_the_out_root(tmp_path):
    (tmp_path / "stage1").mkdir()
    (tmp_path / "stage1" / "best.ckpt").write_bytes(b"")
    assert resolve_init_from("stage1/best.ckpt", tmp_path) == str(tmp_path / "stage1" / "best.ckpt")
    assert resolve_init_from({"rgb_model": "stage1/best.ckpt"}, tmp_path) == {
        "rgb_model": str(tmp_path / "stage1" / "best.ckpt")}


def saved(path: Path, name: str, **kwargs) -> tuple[Path, torch.nn.Module]:
    model = build_model(name, num_classes=3, backbone="resnet18", **kwargs)
    save_checkpoint(path, model_state=model.state_dict(), model=model.build_spec, clip=ClipSettings(),
                    classes=list(CLASSES))
    return path, model


def test_two_in_one_starts_from_an_rgb_row(tmp_path, caplog):
    path, rgb = saved(tmp_path / "rgb.ckpt", "rgb_attention", mem_size=8, input_size=48)
    target = build_model("two_in_one", num_classes=3, backbone="resnet18", mem_size=8, input_size=48)
    motion_before = {k: v.clone() for k, v in target.motion.state_dict().items()}
    with caplog.at_level(logging.WARNING):
        load_init_weights(target, str(path), list(CLASSES))
    assert all(torch.equal(v, target.state_dict()[k]) for k, v in rgb.state_dict().items())
    assert all(torch.equal(v, target.motion.state_dict()[k]) for k, v in motion_before.items())
    assert len(caplog.records) == 1 and "motion" in caplog.records[0].getMessage()


def test_two_stream_starts_from_a_flow_and_an_rgb_checkpoint(tmp_path):
    flow_path, flow = saved(tmp_path / "flow.ckpt", "flow_resnet", stack_size=2)
    rgb_path, rgb = saved(tmp_path / "rgb.ckpt", "rgb_ms", mem_size=8, input_size=48, ms_head="regression")
    target = build_model("two_stream", num_classes=3, backbone="resnet18", mem_size=8, stack_size=2, input_size=48)
    load_init_weights(target, {"flow_model": str(flow_path), "rgb_model": str(rgb_path)}, list(CLASSES))
    assert all(torch.equal(v, target.flow_model.state_dict()[k]) for k, v in flow.state_dict().items())
    rgb_own = target.rgb_model.state_dict()
    assert all(torch.equal(v, rgb_own[k]) for k, v in rgb.state_dict().items() if not k.startswith("ms_head."))


def test_init_from_a_checkpoint_that_does_not_fit_is_named(tmp_path):
    flow_path, _ = saved(tmp_path / "flow.ckpt", "flow_resnet", stack_size=2)
    target = build_model("rgb_attention", num_classes=3, backbone="resnet18", mem_size=8, input_size=48)
    with pytest.raises(FparError, match="init_from.*does not fit"):
        load_init_weights(target, str(flow_path), list(CLASSES))
    with pytest.raises(FparError, match="other classes"):
        load_init_weights(build_model("flow_resnet", num_classes=3, backbone="resnet18", stack_size=2),
                          str(flow_path), ["x", "y", "z"])


def test_ms_task_trains_on_the_motion_maps(tmp_path, tiny_data):
    config = tiny_config(model={"name": "rgb_ms", "ms_head": "regression"}, data={"modalities": ["frames", "mmaps"]},
                         loss={"ms": {"kind": "regression", "regression": "kl"}}, trainer={"epochs": 1})
    (row,) = train(config, data_root=tiny_data, out_dir=tmp_path, progress=False)["metrics"]
    assert row["train_loss"] > 0 and row["val_loss"] > 0


@pytest.mark.parametrize("change, key", [
    ({"data": {"modalities": ["frames", "mmaps"]}}, "loss.ms"),  # rgb_attention has no MS head
    ({"model": {"name": "rgb_ms", "ms_head": "classification"}}, "data.modalities"),  # no motion maps loaded
])
def test_ms_loss_needs_a_head_and_motion_maps(tmp_path, tiny_data, change, key):
    config = tiny_config(loss={"ms": {"kind": "classification"}}, **change)
    with pytest.raises(FparError, match=key.replace(".", r"\.")):
        train(config, data_root=tiny_data, out_dir=tmp_path, progress=False)


def test_resume_refuses_other_settings_than_the_run_was_trained_with(trained_run, tiny_data):
    changed = {**trained_run["config"], "optimizer": {**trained_run["config"]["optimizer"], "lr": 0.5}}
    out = Path(trained_run["run_dir"]).parent
    with pytest.raises(FparError, match=r"flow-tiny was trained with other settings \(optimizer.lr: .* -> 0.5\)"):
        train(changed, data_root=tiny_data, out_dir=out, resume=True, progress=False)


def test_a_finished_run_without_keep_last_keeps_only_its_model(tiny_data, tmp_path):
    config = flow_config(experiment="small")
    config["trainer"].update(epochs=1, keep_last=False)
    result = train(config, data_root=tiny_data, out_dir=tmp_path, progress=False)
    run = Path(result["run_dir"])
    assert (run / "best.ckpt").is_file() and not (run / "last.ckpt").exists() and result["last_ckpt"] is None
    load_model(run / "best.ckpt")
    with pytest.raises(FparError, match="cannot be continued"):
        train(config, data_root=tiny_data, out_dir=tmp_path, progress=False, resume=True)
    with pytest.raises(FparError, match="already holds a run"):  # never retrained over its best.ckpt
        train(config, data_root=tiny_data, out_dir=tmp_path, progress=False)

"""A NaN/inf loss stops the run naming the step; the last good checkpoint stays as it was."""

import pytest
import torch

import fpar.engine.module as module_code
from fpar.checkpoint import load_checkpoint
from fpar.engine.train import train
from fpar.errors import FparError

from helpers.tiny import flow_config

STEPS_PER_EPOCH = 3  # 12 training clips, batch 4


def test_nan_loss_stops_the_run_and_keeps_the_last_checkpoint(tmp_path, tiny_data, monkeypatch):
    real_loss = module_code.total_loss
    seen = {}

    def poisoned(model, out, batch, settings):
        loss, parts = real_loss(model, out, batch, settings)
        if torch.is_grad_enabled():  # training steps only
            seen["steps"] = seen.get("steps", 0) + 1
            if seen["steps"] > STEPS_PER_EPOCH + 1:  # second batch of epoch 1
                loss = loss * float("nan")
        return loss, parts

    snapshots = {}
    real_save = module_code.FparModule.on_save_checkpoint

    def remember(self, checkpoint):
        real_save(self, checkpoint)
        snapshots["epoch"] = self.current_epoch

    monkeypatch.setattr(module_code, "total_loss", poisoned)
    monkeypatch.setattr(module_code.FparModule, "on_save_checkpoint", remember)
    config = flow_config(trainer={"epochs": 3})
    with pytest.raises(FparError, match=r"loss is nan at epoch 1, global step 4 .*last good checkpoint: .*last\.ckpt"):
        train(config, data_root=tiny_data, out_dir=tmp_path, progress=False)

    last = tmp_path / "tiny" / "last.ckpt"
    ckpt = load_checkpoint(last)
    assert ckpt["epoch"] == 0 and snapshots["epoch"] == 0  # nothing was saved after the NaN
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    assert not list((tmp_path / "tiny").glob(".*.tmp"))


def test_non_finite_weights_are_never_written(tmp_path, tiny_data, monkeypatch):
    """Weights that overflowed without a NaN loss (yet) are caught when the checkpoint is saved."""

    def overflow(self):
        if self.current_epoch == 1:
            with torch.no_grad():
                self.model.classifier[1].weight.fill_(float("inf"))

    monkeypatch.setattr(module_code.FparModule, "on_train_epoch_end", overflow, raising=False)
    with pytest.raises(FparError, match=r"weight 'classifier.1.weight' is not finite at epoch 1, global step 6"):
        train(flow_config(trainer={"epochs": 3}), data_root=tiny_data, out_dir=tmp_path, progress=False)
    assert load_checkpoint(tmp_path / "tiny" / "last.ckpt")["epoch"] == 0
    for path in (tmp_path / "tiny").glob("*.ckpt"):
        state = load_checkpoint(path)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())

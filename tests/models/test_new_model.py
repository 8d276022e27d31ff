"""A model defined here, in the test file alone, and registered through the public registry, is
trained, evaluated, exported and streamed by fpar as its own models are: nothing under ``src/``
knows it (docs/models.md, "Adding a model")."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from helpers.tiny import tiny_config
from fpar.checkpoint import export_model, load_model
from fpar.data import sampling
from fpar.engine.evaluate import evaluate
from fpar.engine.predict import predict_video
from fpar.engine.stream import Stream
from fpar.engine.train import train
from fpar.errors import FparError
from fpar.models import ClipModel, build_model, example_batch, register_model
from fpar.models.registry import MODELS


class FramePoolNet(ClipModel):
    """conv-BN-ReLU per frame, pooled over space and time, then a linear classifier."""

    def __init__(self, num_classes: int, input_size: int, width: int):
        super().__init__()
        self.input_size = input_size
        self.conv = nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, num_classes)

    def input_spec(self):
        return {"frames": ("B", "T", 3, self.input_size, self.input_size)}

    def forward(self, batch, explain=False):
        frames = batch["frames"]
        per_frame = F.relu(self.bn(self.conv(frames.flatten(0, 1)))).mean(dim=(2, 3))
        features = per_frame.unflatten(0, frames.shape[:2]).mean(dim=1)
        return {"logits": self.fc(features), "features": features}


def frame_pool_net(num_classes: int = 3, input_size: int = 48, width: int = 8) -> ClipModel:
    """Test model: pooled per-frame conv features."""
    return FramePoolNet(num_classes, input_size, width)


@pytest.fixture
def registered():
    register_model("frame_pool_net", frame_pool_net)
    yield "frame_pool_net"
    MODELS.pop("frame_pool_net")


def test_a_model_defined_outside_fpar_trains_evaluates_exports_and_streams(registered, tiny_data, tmp_path, one_thread):
    config = tiny_config(experiment="frame-pool", stage={"name": "full"}, trainer={"epochs": 2})
    config["model"] = {"name": registered, "width": 6}
    result = train(config, data_root=tiny_data, out_dir=tmp_path / "runs", progress=False)
    assert [row["epoch"] for row in result["metrics"]] == [1, 2]

    scored = evaluate(result["best_ckpt"], tiny_data, split="S2")
    assert scored["n"] == 7 and 0 <= scored["accuracy"] <= 1

    exported = export_model(result["best_ckpt"], tmp_path / "export")
    model, contract = load_model(exported)
    trained, _ = load_model(result["best_ckpt"])
    assert contract.model == {"name": registered, "num_classes": 3, "input_size": 48, "width": 6}
    batch = example_batch(model, batch_size=2, frames=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(model(batch)["logits"], trained(batch)["logits"])

    # streamed without streaming code of its own: forward over the window of the last T frames
    frames = [np.random.default_rng(k).integers(0, 255, (60, 80, 3), dtype=np.uint8) for k in range(9)]
    video = tmp_path / "video"
    video.mkdir()
    for k, frame in enumerate(frames, 1):
        Image.fromarray(frame).save(video / f"{k:03d}.png")
    expected = predict_video(exported, video, precision="32").outputs["logits"][0]
    stream = Stream(exported, precision="32")
    assert stream.uses_window_forward
    last = [stream.push(frames[k - 1]) for k in sampling.rgb_indices(len(frames), 2)][-1]  # the clip predict reads
    assert torch.allclose(last.logits, expected, rtol=1e-4, atol=1e-5)


def test_its_settings_are_checked_against_its_own_builder(registered, tiny_data, tmp_path):
    config = tiny_config(experiment="frame-pool", stage={"name": "full"})
    config["model"] = {"name": registered, "mem_size": 16}
    with pytest.raises(FparError, match="unknown key mem_size: model 'frame_pool_net' takes num_classes, width"):
        train(config, data_root=tiny_data, out_dir=tmp_path, progress=False)
    config["model"] = {"name": registered}
    config["stage"] = {"name": "rgb_stage1"}
    with pytest.raises(FparError, match="stage 'rgb_stage1' does not apply to a FramePoolNet model"):
        train(config, data_root=tiny_data, out_dir=tmp_path, progress=False)
    config["stage"] = {"name": "full"}
    config["loss"] = {"ms": {"kind": "classification"}}
    with pytest.raises(FparError, match="loss.ms needs a model with an MS head; 'frame_pool_net' has none"):
        train(config, data_root=tiny_data, out_dir=tmp_path, progress=False)


def test_the_registry_refuses_builders_that_break_the_contract(registered):
    with pytest.raises(FparError, match="already registered"):
        register_model(registered, frame_pool_net)
    with pytest.raises(FparError, match="must take input_size"):
        register_model("no_size", lambda num_classes: None)
    register_model("not_a_clip_model", lambda num_classes, input_size: nn.Linear(2, 2))
    try:
        with pytest.raises(FparError, match="returned a Linear, not a ClipModel"):
            build_model("not_a_clip_model", num_classes=3, input_size=48)
    finally:
        MODELS.pop("not_a_clip_model")

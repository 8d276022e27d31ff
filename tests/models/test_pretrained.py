"""ImageNet weights: a torchvision-format state dict (built here from torchvision's key layout) lands
tensor for tensor; the flow conv1 is the cross-modality average; offline use fails with one clear error."""

import pickle
import urllib.error

import pytest
import torch
from safetensors.torch import save_file

from fpar.errors import FparError
from fpar.models import build_model
from helpers.small_models import small_model
from fpar.models.pretrained import IMAGENET_URLS, hub_checkpoint_path



def bn(prefix: str, channels: int) -> dict[str, list[int]]:
    shapes = {f"{prefix}.{name}": [channels] for name in ("weight", "bias", "running_mean", "running_var")}
    shapes[f"{prefix}.num_batches_tracked"] = []
    return shapes


def torchvision_resnet18_shapes() -> dict[str, list[int]]:
    """torchvision's resnet18 state-dict keys and shapes, written out independently of fpar."""
    shapes = {"conv1.weight": [64, 3, 7, 7], **bn("bn1", 64)}
    in_channels = 64
    for stage, channels in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            prefix = f"layer{stage}.{block}"
            block_in = in_channels if block == 0 else channels
            shapes[f"{prefix}.conv1.weight"] = [channels, block_in, 3, 3]
            shapes.update(bn(f"{prefix}.bn1", channels))
            shapes[f"{prefix}.conv2.weight"] = [channels, channels, 3, 3]
            shapes.update(bn(f"{prefix}.bn2", channels))
            if block == 0 and stage > 1:
                shapes[f"{prefix}.downsample.0.weight"] = [channels, in_channels, 1, 1]
                shapes.update(bn(f"{prefix}.downsample.1", channels))
        in_channels = channels
    shapes.update({"fc.weight": [1000, 512], "fc.bias": [1000]})
    return shapes


@pytest.fixture
def imagenet_state():
    generator = torch.Generator().manual_seed(0)
    return {key: (torch.randint(0, 100, shape, generator=generator) if key.endswith("num_batches_tracked")
                  else torch.randn(shape, generator=generator))
            for key, shape in torchvision_resnet18_shapes().items()}


@pytest.fixture
def imagenet_file(tmp_path, imagenet_state):
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(imagenet_state, path)
    return path


def assert_same(actual: dict, expected: dict, skip=()):
    for key, value in expected.items():
        if key not in skip:
            assert torch.equal(actual[key], value), key


def test_every_tensor_lands_in_the_rgb_backbone(imagenet_file, imagenet_state):
    model = small_model("rgb_attention", pretrained=str(imagenet_file))
    loaded = model.backbone.state_dict()
    assert set(loaded) == set(imagenet_state)
    assert_same(loaded, imagenet_state)  # fc included: the attention reads it


def test_flow_conv1_is_the_channel_mean_repeated(imagenet_file, imagenet_state):
    model = small_model("flow_resnet", stack_size=5, pretrained=str(imagenet_file))
    loaded = model.backbone.state_dict()
    assert "fc.weight" not in loaded
    rgb = imagenet_state["conv1.weight"]
    expected = rgb.mean(dim=1, keepdim=True).expand(64, 10, 7, 7)
    torch.testing.assert_close(loaded["conv1.weight"], expected)
    assert_same(loaded, imagenet_state, skip={"conv1.weight", "fc.weight", "fc.bias"})


def test_two_stream_gets_imagenet_in_both_streams(imagenet_file, imagenet_state):
    model = small_model("two_stream", pretrained=str(imagenet_file))
    assert_same(model.rgb_model.backbone.state_dict(), imagenet_state)
    torch.testing.assert_close(model.flow_model.backbone.layer3[1].conv2.weight, imagenet_state["layer3.1.conv2.weight"])


def test_safetensors_file(tmp_path, imagenet_state):
    path = tmp_path / "resnet18.safetensors"
    save_file(imagenet_state, str(path))
    model = small_model("two_in_one", pretrained=str(path))
    assert_same(model.backbone.state_dict(), imagenet_state)


def test_old_files_without_bn_counters_load(tmp_path, imagenet_state):
    path = tmp_path / "old.pth"
    torch.save({k: v for k, v in imagenet_state.items() if not k.endswith("num_batches_tracked")}, path)
    model = small_model("rgb_attention", pretrained=str(path))
    assert torch.equal(model.backbone.layer2[0].bn1.running_var, imagenet_state["layer2.0.bn1.running_var"])


def test_wrong_architecture_is_refused(imagenet_file):
    with pytest.raises(FparError, match="resnet34"):
        build_model("rgb_attention", num_classes=5, backbone="resnet34", pretrained=str(imagenet_file))


def test_missing_file(tmp_path):
    with pytest.raises(FparError, match="not found"):
        small_model("rgb_attention", pretrained=str(tmp_path / "nothing.pth"))


class CreatesFile:
    """Unpickling this calls open(marker, "w"): loading it would run code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_that_runs_code_is_refused(tmp_path):
    path, marker = tmp_path / "evil.pth", tmp_path / "ran"
    with open(path, "wb") as handle:
        pickle.dump({"conv1.weight": CreatesFile(marker)}, handle, protocol=2)
    with pytest.raises(FparError, match="could run code"):
        small_model("rgb_attention", pretrained=str(path))
    assert not marker.exists()


def test_imagenet_downloads_torchvision_weights(tmp_path, monkeypatch, imagenet_state):
    """'imagenet' goes through torch.hub to torchvision's URL and caches under TORCH_HOME."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    fetched = []

    def fake_download(url, destination, *args, **kwargs):
        fetched.append(url)
        torch.save(imagenet_state, destination)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    model = small_model("rgb_attention", pretrained="imagenet")
    assert fetched == [IMAGENET_URLS["resnet18"]]
    assert fetched[0].endswith("resnet18-f37072fd.pth")
    assert hub_checkpoint_path("resnet18").is_file()
    assert hub_checkpoint_path("resnet18").parent.parent == tmp_path / "hub"
    assert_same(model.backbone.state_dict(), imagenet_state)


def fail_download(url, destination, *args, **kwargs):
    raise urllib.error.URLError("no network")


def test_imagenet_uses_the_cache_offline(tmp_path, monkeypatch, imagenet_state):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", fail_download)
    cached = hub_checkpoint_path("resnet18")
    cached.parent.mkdir(parents=True)
    torch.save(imagenet_state, cached)
    model = small_model("rgb_attention", pretrained="imagenet")
    assert_same(model.backbone.state_dict(), imagenet_state)


def test_offline_without_cache_says_how_to_supply_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", fail_download)
    with pytest.raises(FparError) as error:
        small_model("rgb_attention", pretrained="imagenet")
    message = str(error.value)
    assert "\n" not in message
    assert str(tmp_path / "empty" / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "pretrained: /path/to/resnet18-f37072fd.pth" in message

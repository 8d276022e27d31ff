import torch

from fpar.bench import format_table, reference_rgb_forward
from fpar.models.assembled import RGBConvLSTM


def test_reference_way_computes_the_same_logits():
    """The benchmark's reference path must be the same function, or its timing means nothing."""
    torch.manual_seed(0)
    model = RGBConvLSTM(num_classes=5, arch="resnet18", mem_size=32, input_size=64).eval()
    frames = torch.randn(2, 3, 3, 64, 64)
    with torch.inference_mode():
        ours = model({"frames": frames})["logits"]
        theirs = reference_rgb_forward(model, frames)
    assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_table_reports_speedup():
    table = format_table([{"name": "x", "reference_s": 0.2, "fpar_s": 0.1, "speedup": 2.0, "agreement": "ok"}])
    assert "2.00x" in table and "200.0ms" in table

"""Convolutions packed once for a stream's one-frame pushes (fpar.engine.packed_convolutions) and
the subnormal states a saturated ConvLSTM makes: same answers, and nothing slow left in the way."""

import pytest
import torch
from torch import nn

from fpar.bench.measure import count_flops
from fpar.engine.compute import frames_channels_last, prepare_for_inference
from fpar.engine.packed_convolutions import PackedConv2d, pack_convolutions
from fpar.models import build_model

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")


def _model(dtype=None):
    torch.manual_seed(0)
    model = build_model("rgb_attention", num_classes=3, backbone="resnet18", input_size=64).eval()
    prepare_for_inference(model, channels_last=True, dtype=dtype)
    return model


def _frame(seed=0):
    return {"frames": frames_channels_last(torch.randn(1, 1, 3, 64, 64, generator=torch.Generator().manual_seed(seed)))}


def test_packed_model_computes_what_it_computed_and_keeps_its_weights_readable():
    model, frame = _model(), _frame()
    with torch.inference_mode():
        before = model.encode_frames(frame)
        convs = [module for module in model.modules() if type(module) is nn.Conv2d]
        pack_convolutions(model, lambda: model.encode_frames(frame))
        packed = [module for module in model.modules() if isinstance(module, PackedConv2d)]
        after = model.encode_frames(_frame())
        other = model.encode_frames(_frame(seed=1))  # another frame, same shapes
        unpacked_other = _model().encode_frames(_frame(seed=1))
    assert len(packed) == len(convs) > 20 and not any(type(m) is nn.Conv2d for m in model.modules())
    # the ConvLSTM's hidden conv is read as a matrix by the stream: its weight is still the conv's
    assert model.convlstm.hidden_conv.weight.shape == (4 * 512, 512, 3, 3)
    for key in before:
        scale = before[key].abs().max()
        assert (after[key] - before[key]).abs().max() <= 1e-5 * scale, key
        assert (other[key] - unpacked_other[key]).abs().max() <= 1e-5 * unpacked_other[key].abs().max(), key


def test_a_cpu_that_cannot_reorder_leaves_the_model_as_it_was(monkeypatch):
    model, frame = _model(), _frame()

    def refuses(*args, **kwargs):
        raise RuntimeError("mkldnn_reorder_conv2d_weight: bf16 path needs the cpu support avx_ne_convert")

    monkeypatch.setattr(PackedConv2d, "__init__", lambda self, conv, size: refuses())
    with torch.inference_mode():
        pack_convolutions(model, lambda: model.encode_frames(frame))
    assert not any(isinstance(m, PackedConv2d) for m in model.modules())
    assert not model.backbone.conv1._forward_pre_hooks  # the shape-recording hooks are gone


def test_a_packed_convolution_counts_its_flops():
    conv = nn.Conv2d(16, 32, 3, padding=1, stride=2).eval().requires_grad_(False)
    x = torch.randn(1, 16, 20, 20)
    with torch.inference_mode():
        assert count_flops(lambda: PackedConv2d(conv, tuple(x.shape))(x)) == count_flops(lambda: conv(x)) > 0


def test_a_saturated_convlstm_convolves_no_subnormal_state(monkeypatch):
    """A gate at sigmoid(-88) makes hidden values below 6e-39: the CPU's threads would compute on
    them ~100x slower. Neither the clip forward nor a stream's windows pass one to a product."""
    torch.set_flush_denormal(False)  # as in a fresh process: an earlier test in this one may have left it on
    model, frame = _model(), _frame()
    with torch.no_grad():
        model.convlstm.input_conv.bias[3 * 512:] = -88.0  # the output gate: h = sigmoid(-88) * tanh(c)
    seen = []
    real_unfold, real_conv2d = nn.functional.unfold, nn.functional.conv2d
    monkeypatch.setattr(nn.functional, "unfold", lambda x, *a, **k: seen.append(x) or real_unfold(x, *a, **k))
    monkeypatch.setattr(nn.functional, "conv2d", lambda x, *a, **k: seen.append(x) or real_conv2d(x, *a, **k))
    clip = {"frames": frames_channels_last(torch.randn(1, 3, 3, 64, 64))}
    with torch.inference_mode():
        model(clip)
        encoded = model.encode_frames(frame)
        state = None
        for _ in range(3):
            state = model.advance_windows(encoded, state)
    tiny = torch.finfo(torch.float32).tiny
    assert (state["hidden"] != 0).any() and (state["hidden"].abs() < tiny).any()
    assert seen and all(not ((x != 0) & (x.abs() < tiny)).any() for x in seen)


def test_a_stream_packs_its_convolutions_on_its_first_push():
    from fpar.bench.stream_rows import stream_model, synthetic_video
    from fpar.engine.stream import Stream

    model, contract = stream_model("rgb_attention", "resnet18", 64, 3, 5)
    stream = Stream.from_model(model, contract, precision="32", threads=1)
    frames = synthetic_video(4, height=96, width=128)
    first = stream.push(frames[0])
    assert any(isinstance(m, PackedConv2d) for m in model.modules())
    for frame in frames[1:]:
        stream.push(frame)
    stream.reset()
    assert torch.equal(stream.push(frames[0]).logits, first.logits)  # the first push computed as the others


def test_convolutions_only_an_answer_calls_are_packed_for_their_shape_by_the_first_answer():
    """A two-stream model's flow network runs in its answers, not in the first encoding: packed
    then in oneDNN's default layout (2.5x slower a push at 224 px), then again for its shape."""
    from fpar.bench.stream_rows import stream_model, synthetic_video
    from fpar.engine.stream import Stream

    model, contract = stream_model("two_stream", "resnet18", 64, 3, 2)
    stream = Stream.from_model(model, contract, precision="32", flow="dis", threads=1)
    results = [stream.push(frame) for frame in synthetic_video(5, height=96, width=128)]
    assert results[-1].probabilities is not None
    shapeless = {name for name, m in model.named_modules() if isinstance(m, PackedConv2d) and m.input_size is None}
    assert shapeless and all(".convlstm." in f".{name}" for name in shapeless)  # applied by the model itself


def test_bf16_windows_step_with_the_packed_hidden_conv_on_channels_last_state():
    """In bf16 a stream's windows in flight take their step as the packed hidden conv (faster than
    the unfolded product there, docs/streaming.md); a window still ends where the clip's
    recurrence (the product, before packing) ends, within bf16's rounding."""
    model, frames = _model(torch.bfloat16), [_frame(seed) for seed in range(4)]
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16):
        encoded = [model.encode_frames(frame) for frame in frames]
        expected = model.window_cell(torch.cat([e["lstm_gates"] for e in encoded], dim=1))
        pack_convolutions(model, lambda: model.encode_frames(frames[0]))
        if model._packed_hidden_conv() is None:
            pytest.skip("oneDNN does not pack bf16 weights on this CPU (no bf16 conversion instructions)")
        state = None
        for k, frame in enumerate(encoded):
            state = model.advance_windows(frame, state, start=k == 0)
    assert state["cell"].is_contiguous(memory_format=torch.channels_last)
    assert (state["cell"] - expected).abs().max() <= 1e-2 * expected.abs().max()

"""fpar predict / fpar cam on a video file, as a user runs them."""

import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image

from fpar.checkpoint import save_checkpoint
from fpar.cli import main
from fpar.data import ClipDataset, ClipSettings, load_index
from fpar.engine.predict import predict_video
from fpar.models import build_model
from fpar.prepare.layout_writer import write_instance
from helpers.videos import moving_square

CLASSES = ["close_jar", "open_jar", "stir_jar"]


def _checkpoint(tmp_path, name, **model_kwargs):
    torch.manual_seed(0)
    model = build_model(name, num_classes=len(CLASSES), backbone="resnet18", **model_kwargs)
    modalities = {"flow_resnet": ["flow"], "two_in_one": ["frames", "flow"], "two_stream": ["frames", "flow"]}.get(
        name, ["frames"])
    clip = ClipSettings(modalities=modalities, flow_mode="pairs" if name == "two_in_one" else "stack", resize=72,
                        crop=64, num_frames=4, stack_size=5)
    path = tmp_path / f"{name}.ckpt"
    save_checkpoint(path, model_state=model.state_dict(), model=model.build_spec, clip=clip, classes=CLASSES)
    return path


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "clip.gif"
    images = [Image.fromarray(f) for f in moving_square()]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)
    return path


def test_prediction_equals_the_evaluation_pipeline_on_the_same_clip(tmp_path):
    checkpoint = _checkpoint(tmp_path, "rgb_attention", input_size=64)
    folder = tmp_path / "frames"  # lossless frames, so both paths see identical pixels
    folder.mkdir()
    for k, frame in enumerate(moving_square(), 1):
        Image.fromarray(frame).save(folder / f"img_{k:03d}.png")
    prediction = predict_video(checkpoint, folder, flow="dis", precision="32")

    # what `fpar eval` would compute for this clip: prepared on disk, read by ClipDataset
    write_instance(moving_square(), tmp_path / "data", subject="S2", class_name="open_jar", instance_id="1", flow="dis")
    instance = load_index(tmp_path / "data").instances[0]
    clip = ClipDataset([instance], ClipSettings(num_frames=4, resize=72, crop=64))[0]
    from fpar.checkpoint import load_model
    model, _ = load_model(checkpoint)
    with torch.inference_mode():
        expected = model({"frames": clip["frames"][None]})["logits"]
    assert torch.equal(prediction.clip["frames"], clip["frames"])
    assert torch.allclose(prediction.outputs["logits"], expected, rtol=1e-5, atol=1e-6)
    top = prediction.top(3)
    assert sorted(name for name, _ in top) == sorted(CLASSES)
    assert abs(sum(p for _, p in top) - 1) < 1e-5


def test_predict_cli_prints_json(tmp_path, video, capsys):
    checkpoint = _checkpoint(tmp_path, "flow_resnet")
    assert main(["predict", str(checkpoint), str(video), "--flow", "dis", "--json", "--top", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["top"]) == 2 and result["top"][0]["class"] in CLASSES


def test_cam_writes_attention_gif_ms_and_modulation_maps(tmp_path, video):
    checkpoint = _checkpoint(tmp_path, "two_in_one", input_size=64, ms_head="regression")
    out = tmp_path / "cam"
    assert main(["cam", str(checkpoint), str(video), "--flow", "dis", "--out", str(out)]) == 0
    with Image.open(out / "cam.gif") as gif:
        assert gif.n_frames == 4
    assert (out / "ms.png").is_file() and (out / "modulation.png").is_file()


def test_cam_on_a_model_without_attention_says_so(tmp_path, video, capsys):
    checkpoint = _checkpoint(tmp_path, "flow_resnet")
    assert main(["cam", str(checkpoint), str(video), "--flow", "dis", "--out", str(tmp_path / "cam")]) == 1
    assert "no attention" in capsys.readouterr().err


def test_unreadable_video_is_one_line_error(tmp_path, capsys):
    checkpoint = _checkpoint(tmp_path, "rgb_attention", input_size=64)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    assert main(["predict", str(checkpoint), str(broken)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("fpar: error:") and "broken.mp4" in err and "\n" not in err


def test_too_short_a_video_names_the_frames_needed(tmp_path, video, capsys):
    checkpoint = _checkpoint(tmp_path, "flow_resnet")
    assert main(["predict", str(checkpoint), str(video), "--flow", "dis", "--max-frames", "3"]) == 1
    assert "3 frame(s) are too few for this model (it needs at least 5)" in capsys.readouterr().err


def _mp4(path, frames, fps=30):
    import cv2

    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _counting(monkeypatch):
    """Record the frame numbers decoded and the flow pairs computed by predict."""
    import fpar.engine.video_clip as predict  # where the frames are decoded and the flow computed

    seen = {"decoded": [], "flows": 0}
    real_frames_at, real_pair_flows = predict.iter_frames_at, predict.pair_flows

    def frames_at(path, numbers):
        for number, frame in real_frames_at(path, numbers):
            seen["decoded"].append(number)
            yield number, frame

    def pair_flows(frames, **kwargs):
        for field in real_pair_flows(frames, **kwargs):
            seen["flows"] += 1
            yield field

    monkeypatch.setattr(predict, "iter_frames_at", frames_at)
    monkeypatch.setattr(predict, "pair_flows", pair_flows)
    return seen


def test_rgb_prediction_decodes_only_the_sampled_frames_and_computes_no_flow(tmp_path, monkeypatch):
    from fpar.data.sampling import rgb_indices
    from fpar.prepare.video import read_video

    checkpoint = _checkpoint(tmp_path, "rgb_attention", input_size=64)
    video = _mp4(tmp_path / "long.mp4", moving_square(40))
    seen = _counting(monkeypatch)
    prediction = predict_video(checkpoint, video, flow="dis")
    assert seen["decoded"] == rgb_indices(40, 4) and seen["flows"] == 0
    # the same clip the evaluation reads from the whole video prepared on disk
    write_instance(read_video(video).frames, tmp_path / "data", subject="S2", class_name="open_jar",
                   instance_id="1", flow="dis")
    clip = ClipDataset(load_index(tmp_path / "data").instances, ClipSettings(num_frames=4, resize=72, crop=64))[0]
    assert torch.equal(prediction.clip["frames"], clip["frames"])


@pytest.mark.parametrize("name, n, pairs", [("flow_resnet", 40, 5), ("two_stream", 40, 5), ("two_in_one", 40, 4),
                                            ("two_in_one", 3, 2)])
def test_flow_is_computed_only_for_the_pairs_the_clip_reads(tmp_path, monkeypatch, name, n, pairs):
    """Flow stacks read L pairs, two-in-one one per sampled frame (with fewer frames than the clip,
    the last frame repeats the flow before it: 2 pairs for 3 frames); the flow equals a dataset
    prepared at the model's resolution."""
    kwargs = {"two_in_one": {"input_size": 64}, "two_stream": {}}.get(name, {})
    checkpoint = _checkpoint(tmp_path, name, **kwargs)
    video = tmp_path / "frames"
    video.mkdir()
    for k, frame in enumerate(moving_square(n), 1):
        Image.fromarray(frame).save(video / f"{k:03d}.png")
    seen = _counting(monkeypatch)
    prediction = predict_video(checkpoint, video, flow="dis")
    assert seen["flows"] == pairs
    assert len(seen["decoded"]) <= pairs * 2 + 4
    from fpar.checkpoint import load_model
    from fpar.data import transforms

    _, info = load_model(checkpoint)
    resized = [transforms.resize_short(f, info.clip.resize) for f in moving_square(n)]
    write_instance(resized, tmp_path / "data", subject="S2", class_name="open_jar", instance_id="1", flow="dis")
    clip = ClipDataset(load_index(tmp_path / "data", "processed", min_frames=2).instances, info.clip)[0]
    assert torch.equal(prediction.clip["flow"], clip["flow"])


def test_frames_of_mixed_sizes_are_resized_to_the_models_clip(tmp_path):
    """A folder whose images differ in size: every frame is brought to the model's resolution
    (the first frame's shape), for RGB and flow alike."""
    checkpoint = _checkpoint(tmp_path, "two_in_one", input_size=64)
    video = tmp_path / "mixed"
    video.mkdir()
    for k, frame in enumerate(moving_square(9), 1):
        if k % 2 == 0:
            frame = np.asarray(Image.fromarray(frame).resize((100, 70)))  # another size and aspect
        Image.fromarray(frame).save(video / f"{k:03d}.png")
    prediction = predict_video(checkpoint, video, flow="dis")
    assert prediction.clip["frames"].shape == (4, 3, 64, 64)
    assert prediction.clip["flow"].shape == (4, 2, 64, 64)
    assert torch.isfinite(prediction.outputs["logits"]).all()


def test_prediction_leaves_the_checkpoint_file_as_it_was(tmp_path, video):
    # predict folds the batch norms into the conv weights in place, and those weights map the
    # file (copy on write): the file itself must not change
    checkpoint = _checkpoint(tmp_path, "rgb_attention", input_size=64)
    before = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    predict_video(checkpoint, video)
    assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() == before


def test_a_bf16_prediction_is_the_fp32_one_within_rounding(tmp_path, video):
    """`--precision bf16-mixed` (what `auto` picks on a CPU with bf16 instructions) runs the
    convolutions on bf16 weights: the same classes in the same order, logits within rounding."""
    checkpoint = _checkpoint(tmp_path, "two_in_one", input_size=64, ms_head="classification")
    full = predict_video(checkpoint, video, flow="dis", precision="32")
    reduced = predict_video(checkpoint, video, flow="dis", precision="bf16-mixed", explain=True)
    assert reduced.outputs["logits"].dtype == torch.bfloat16  # it really ran in bf16
    logits, expected = reduced.outputs["logits"].float(), full.outputs["logits"]
    assert float((logits - expected).norm() / expected.norm()) < 5e-2
    assert [name for name, _ in reduced.top(3)] == [name for name, _ in full.top(3)]
    assert {"attention", "ms", "scale"} <= reduced.outputs.keys()

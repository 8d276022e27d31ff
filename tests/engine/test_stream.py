"""fpar.Stream: frames pushed one at a time give what `fpar predict` computes for the same clip,
for every model kind; its state (reset, copies) and the models' streaming hooks."""

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from fpar.checkpoint import export_model, load_model, save_checkpoint
from fpar.data import ClipSettings, sampling
from fpar.engine.predict import predict_video
from fpar.engine.stream import Stream
from fpar.errors import FparError
from fpar.models import ClipModel, build_model
from helpers.videos import moving_square

CLASSES = ["close_jar", "open_jar", "stir_jar"]
SIZE = {"resize": 72, "crop": 64}


def _checkpoint(tmp_path, name, *, num_frames=4, stack_size=5, **model_kwargs):
    torch.manual_seed(0)
    if name in ("flow_resnet", "two_stream"):
        model_kwargs["stack_size"] = stack_size
    else:
        model_kwargs["input_size"] = SIZE["crop"]
    model = build_model(name, num_classes=len(CLASSES), backbone="resnet18", **model_kwargs)
    modalities = {"flow_resnet": ["flow"], "two_in_one": ["frames", "flow"], "two_stream": ["frames", "flow"],
                  "rgb_ms": ["frames", "mmaps"]}.get(name, ["frames"])
    clip = ClipSettings(modalities=modalities, flow_mode="pairs" if name == "two_in_one" else "stack",
                        num_frames=num_frames, stack_size=stack_size, **SIZE)
    path = tmp_path / f"{name}.ckpt"
    save_checkpoint(path, model_state=model.state_dict(), model=model.build_spec, clip=clip, classes=CLASSES)
    return path


def _folder(tmp_path, frames):
    folder = tmp_path / "video"  # lossless frames: predict and the stream see the same pixels
    folder.mkdir()
    for k, frame in enumerate(frames, 1):
        Image.fromarray(frame).save(folder / f"{k:03d}.png")
    return folder


# (model, its checkpoint's clip, video length, the 1-based frames of that video to push)
# RGB: the T frames predict samples. A flow stack of L: the frames whose L consecutive flows
# predict reads (frame s to s + L). Two-stream: a video of T + 1 frames with T = L + 2, whose
# sampled frames 1..T end with the flow stack predict reads. Two-in-one: the T frames of its clip
# and the successor whose flow the last one reads.
CASES = {
    "rgb_convlstm": ({}, 9, sampling.rgb_indices(9, 4)),
    "rgb_attention": ({}, 9, sampling.rgb_indices(9, 4)),
    "rgb_ms": ({"ms_head": "regression"}, 9, sampling.rgb_indices(9, 4)),
    "flow_resnet": ({"stack_size": 3}, 9, list(range(3, 7))),
    "two_stream": ({"stack_size": 2, "num_frames": 4}, 5, [1, 2, 3, 4]),
    "two_in_one": ({}, 9, list(range(3, 8))),
}


@pytest.mark.parametrize("name", list(CASES))
def test_pushing_the_clips_frames_gives_the_logits_predict_computes(tmp_path, name):
    options, n, pushed = CASES[name]
    checkpoint = _checkpoint(tmp_path, name, **options)
    frames = moving_square(n)
    expected = predict_video(checkpoint, _folder(tmp_path, frames), flow="dis", precision="32").outputs["logits"][0]
    stream = Stream(checkpoint, flow="dis", precision="32")
    results = [stream.push(frames[k - 1]) for k in pushed]
    assert results[-1].updated and results[-1].frame == len(pushed)
    assert torch.allclose(results[-1].logits, expected, rtol=1e-4, atol=1e-4), (results[-1].logits, expected)
    assert torch.allclose(results[-1].probabilities.sum(), torch.tensor(1.0))


@pytest.mark.parametrize("name", list(CASES))
def test_forward_is_decode_window_of_encode_frames(name):
    """The models' streaming hooks split forward: the same outputs, to float rounding (the window's
    hidden-state conv runs as a matrix product); every per-frame output is computed identically."""
    options, _, _ = CASES[name]
    torch.manual_seed(0)
    kwargs = {k: v for k, v in options.items() if k != "num_frames"}
    if name not in ("flow_resnet", "two_stream"):
        kwargs["input_size"] = 64
    model = build_model(name, num_classes=3, backbone="resnet18", **kwargs).eval()
    stack = 2 * kwargs.get("stack_size", 5)
    batch = {"frames": torch.randn(2, 3, 3, 64, 64),
             "flow": torch.randn(2, 3, 2, 64, 64) if name == "two_in_one" else torch.randn(2, stack, 64, 64)}
    with torch.inference_mode():
        whole = model(batch)
        per_frame = {key: batch[key] for key in (("frames", "flow") if name == "two_in_one" else ("frames",))}
        split = model.decode_window(model.encode_frames(per_frame), {"flow": batch["flow"]})
    assert whole.keys() == split.keys()
    for key in whole:
        if key in ("logits", "features"):
            assert torch.allclose(whole[key], split[key], rtol=1e-5, atol=1e-6), key
        else:
            assert torch.equal(whole[key], split[key]), key


def test_a_model_without_hooks_streams_by_running_forward_over_the_window(tmp_path):
    """A model with only forward (a new model nobody wrote streaming code for) streams too: the
    stream keeps the window's inputs and runs forward over them, with the same answers."""

    class ForwardOnly(ClipModel):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def input_spec(self):
            return self.inner.input_spec()

        def prepare_for_inference(self, frames_per_pass=None):
            self.inner.prepare_for_inference(frames_per_pass)

        def forward(self, batch, explain=False):
            return self.inner(batch)

    checkpoint = _checkpoint(tmp_path, "two_in_one")
    with_hooks = Stream(checkpoint, flow="dis", precision="32")
    model, contract = load_model(checkpoint, mmap=False)
    without = Stream.from_model(ForwardOnly(model), contract, flow="dis", precision="32")
    assert without.uses_window_forward and not with_hooks.uses_window_forward
    for frame in moving_square(7):
        a, b = with_hooks.push(frame), without.push(frame)
        assert a.updated == b.updated and a.window == b.window
        if a.logits is not None:
            assert torch.allclose(a.logits, b.logits, rtol=1e-4, atol=1e-5)
    assert a.window == 4 and a.updated


def test_window_every_reset_and_copies(tmp_path):
    checkpoint = _checkpoint(tmp_path, "rgb_attention", num_frames=3)
    frames = moving_square(12)
    stream = Stream(checkpoint, every=2, precision="32")
    results = [stream.push(f, attention=True) for f in frames[:5]]
    # frames 1, 3, 5 are sampled (every 2): only they change the answer
    assert [r.updated for r in results] == [True, False, True, False, True]
    assert [r.window for r in results] == [1, 1, 2, 2, 3]
    assert results[-1].attention.shape == (2, 2)  # 64 px -> layer4's 2x2 grid
    assert torch.equal(results[1].logits, results[0].logits)

    twin = copy.copy(stream)
    assert twin._model is stream._model
    for frame in frames[5:9]:
        stream.push(frame)
    # the copy kept its own window: fed other frames it answers as a fresh stream fed the same
    fresh = Stream(checkpoint, every=2, precision="32")
    for frame in [*frames[:5], *frames[9:12]]:
        expected = fresh.push(frame)
    for frame in frames[9:12]:
        got = twin.push(frame)
    assert torch.equal(got.logits, expected.logits) and got.frame == expected.frame == 8

    stream.reset()
    first = stream.push(frames[0])
    assert first.frame == 1 and first.window == 1 and torch.equal(first.logits, results[0].logits)


def test_a_window_longer_than_the_clip_and_flow_models_before_their_stack_is_full(tmp_path):
    checkpoint = _checkpoint(tmp_path, "two_stream", stack_size=2)
    stream = Stream(checkpoint, window=6, flow="dis", precision="32")
    results = [stream.push(f) for f in moving_square(9)]
    # no answer until two flows (three frames) exist; then one per frame, over up to 6 frames
    assert [r.probabilities is None for r in results[:3]] == [True, True, False]
    assert [r.window for r in results] == [0, 0, 3, 4, 5, 6, 6, 6, 6]
    assert results[0].top(3) == []
    assert sorted(name for name, _ in results[-1].top(3)) == sorted(CLASSES)


def test_stream_from_an_export_equals_its_checkpoint(tmp_path):
    checkpoint = _checkpoint(tmp_path, "rgb_convlstm")
    export = export_model(checkpoint, tmp_path / "export")
    a, b = Stream(checkpoint, precision="32"), Stream(export, precision="32")
    for frame in moving_square(4):
        ra, rb = a.push(frame), b.push(frame)
    assert torch.equal(ra.logits, rb.logits)


def test_bad_frames_and_settings_are_one_line_errors(tmp_path):
    checkpoint = _checkpoint(tmp_path, "rgb_attention")
    stream = Stream(checkpoint, precision="32")
    with pytest.raises(FparError, match=r"RGB uint8 array \(H, W, 3\), got float32 \(8, 8, 3\)"):
        stream.push(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(FparError, match="got uint8 \\(8, 8\\)"):
        stream.push(np.zeros((8, 8), np.uint8))
    with pytest.raises(FparError, match="window"):
        Stream(checkpoint, window=0)
    with pytest.raises(FparError, match="unknown flow method 'lk'"):
        Stream(checkpoint, flow="lk")


def test_stream_cli_prints_one_json_object_per_frame_and_a_summary(tmp_path, capsys):
    import json

    from fpar.cli import main

    checkpoint = _checkpoint(tmp_path, "rgb_attention", num_frames=2)
    folder = _folder(tmp_path, moving_square(5))
    out = tmp_path / "live.gif"
    assert main(["stream", str(checkpoint), str(folder), "--json", "--top", "2", "--precision", "32",
                 "--out", str(out)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()[:-1]]  # the last: "wrote ..."
    *frames, summary = lines
    assert [f["frame"] for f in frames] == [1, 2, 3, 4, 5]
    assert all(len(f["top"]) == 2 and f["top"][0]["class"] in CLASSES and f["latency_ms"] > 0 for f in frames)
    assert abs(sum(p["probability"] for p in frames[0]["top"]) - 1) < 1  # two of three classes
    assert summary["summary"]["frames"] == 5 and summary["summary"]["dropped"] == 0
    assert summary["summary"]["p95_latency_ms"] >= summary["summary"]["median_latency_ms"] > 0
    with Image.open(out) as gif:  # the frames with the label band below
        assert gif.n_frames == 5 and gif.size[0] == 80 and gif.size[1] > 60


def test_stream_cli_errors_are_one_line(tmp_path, capsys):
    from fpar.cli import main

    checkpoint = _checkpoint(tmp_path, "rgb_attention")
    folder = _folder(tmp_path, moving_square(2))
    for argv, words in ((["missing.mp4"], "missing.mp4: no such video file or folder"),
                        ([str(folder), "--realtime"], "--realtime needs the source's frame rate"),
                        ([str(folder), "--out", str(tmp_path / "x.txt")], "give a video file name ending in"),
                        ([str(folder), "--batch-frames"], "--answer-every K with --batch-frames"),
                        ([str(folder), "--runtime", "onnx", "--batch-frames"], "drop --batch-frames")):
        assert main(["stream", str(checkpoint), *argv]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("fpar: error:") and words in err and "\n" not in err, err


def test_measure_stream_reports_the_latency_row_the_bench_prints():
    from fpar.bench.stream_rows import measure_stream

    row = measure_stream("two_stream", backbone="resnet18", crop=64, window=3, stack_size=2, flow="dis",
                         precision="32", frames=3, warmup=3)
    assert row["frames"] == 3 and row["flow"] == "dis" and row["precision"] == "32" and row["window"] == 3
    assert 0 < row["median_latency_ms"] <= row["p95_latency_ms"] and row["frames_per_second"] > 0
    assert row["cpu_median_latency_ms"] > 0 and row["device"]


def test_realtime_drops_the_frames_a_slow_model_cannot_keep_up_with():
    import time

    from fpar.engine.stream import FrameSource, SourceRun

    class SlowModel:  # every push takes 3 frame periods at 100 frames/s
        def push(self, frame, attention=False):
            time.sleep(0.03)
            return frame

    frames = [np.zeros((4, 4, 3), np.uint8)] * 12
    run = SourceRun(SlowModel(), FrameSource("clip", iter(frames), 100.0, False), realtime=True)
    steps = list(run)
    assert steps[0].position == 1 and len(steps) + run.dropped == 12
    assert run.dropped >= 6  # at least two of every three frames arrive while a push runs
    assert all(b.position > a.position for a, b in zip(steps, steps[1:]))
    # without pacing every frame is pushed
    run = SourceRun(SlowModel(), FrameSource("clip", iter(frames), 100.0, False))
    assert len(list(run)) == 12 and run.dropped == 0


def test_stream_cli_offers_the_owners_flow_methods_and_precisions():
    from fpar.cli import build_parser
    from fpar.engine.settings import PRECISIONS
    from fpar.prepare.flow import FLOW_METHODS

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    stream = subparsers.choices["stream"]
    choices = {a.dest: a.choices for a in stream._actions if a.choices}
    assert tuple(choices["flow"]) == FLOW_METHODS and tuple(choices["precision"]) == PRECISIONS


def test_two_in_one_encodes_a_sampled_frame_when_its_successor_arrives(tmp_path):
    checkpoint = _checkpoint(tmp_path, "two_in_one", num_frames=2)
    stream = Stream(checkpoint, every=2, flow="dis", precision="32")
    frames = moving_square(7)
    results = [stream.push(f) for f in frames[:5]]
    # frames 1, 3, 5 are sampled; each is encoded with its flow to the next frame, one frame later
    assert [r.updated for r in results] == [False, True, False, True, False]
    assert [r.window for r in results] == [0, 1, 1, 2, 2]
    # a copy carries the previous frame and the waiting one: both continue alike
    twin = copy.copy(stream)
    a, b = stream.push(frames[5]), twin.push(frames[5])
    assert a.updated and torch.equal(a.logits, b.logits)


def test_answers_every_k_th_frame_are_the_sliding_windows_answers_held_in_between(tmp_path):
    """``answer_every``: the windows answered are the first T (filling) and every K-th complete one,
    each equal to the every-frame stream's answer at that frame; the others hold the last answer."""
    checkpoint = _checkpoint(tmp_path, "rgb_attention", num_frames=3)
    every_frame, every_second = Stream(checkpoint, precision="32"), Stream(checkpoint, precision="32", answer_every=2)
    results = [(a.push(f), b.push(f)) for f, a, b in zip(moving_square(9), [every_frame] * 9, [every_second] * 9)]
    assert [b.updated for _, b in results] == [True, True, True, False, True, False, True, False, True]
    for a, b in results:
        if b.updated:
            assert torch.allclose(a.logits, b.logits, rtol=1e-5, atol=1e-6)
    assert torch.equal(results[3][1].logits, results[2][1].logits)
    with pytest.raises(FparError, match="answer_every must be between 1 and the window"):
        Stream(checkpoint, answer_every=4)


@pytest.mark.parametrize("name", ["rgb_attention", "two_in_one", "two_stream"])
def test_frames_batched_between_answers_give_the_same_answers_at_the_same_frames(tmp_path, name):
    """``batch_frames``: the sampled frames between two answers are encoded together when the
    answer is due; every result (answer, when it is updated, attention) is the one-by-one stream's,
    a copy taken between answers carries the frames not encoded yet, and a reset drops them."""
    options, _, _ = CASES[name]
    checkpoint = _checkpoint(tmp_path, name, **{**options, "num_frames": 4})
    one_by_one = Stream(checkpoint, precision="32", answer_every=3, flow="dis")
    batched = Stream(checkpoint, precision="32", answer_every=3, flow="dis", batch_frames=True)
    frames, expected, twin, resume = moving_square(14), [], None, None
    for k, frame in enumerate(frames):
        a, b = one_by_one.push(frame, attention=True), batched.push(frame, attention=True)
        expected.append(a.logits)
        assert (a.updated, a.ready, a.window) == (b.updated, b.ready, b.window), k
        assert (a.logits is None) == (b.logits is None), k
        if a.logits is not None:
            assert torch.allclose(a.logits, b.logits, rtol=1e-5, atol=1e-5), k
        if a.attention is not None:
            assert np.allclose(a.attention, b.attention, atol=1e-5), k
        if twin is None and k >= 7 and batched._pending:  # frames await the next answer
            twin, resume = copy.copy(batched), k + 1
            assert twin._pending == batched._pending and twin._pending is not batched._pending
    assert twin is not None
    for k, frame in enumerate(frames[resume:], resume):  # the copy goes on as the stream it was copied from
        assert torch.allclose(twin.push(frame).logits, expected[k], rtol=1e-5, atol=1e-5), k
    batched.reset()
    assert not batched._pending
    with pytest.raises(FparError, match="--answer-every K with --batch-frames"):
        Stream(checkpoint, precision="32", batch_frames=True)


@pytest.mark.parametrize("name", ["rgb_attention", "flow_resnet", "two_stream", "two_in_one"])
def test_results_say_frames_seen_and_when_the_window_is_full(tmp_path, name):
    options, _, _ = CASES[name]
    stream = Stream(_checkpoint(tmp_path, name, **options), flow="dis", precision="32")
    results = [stream.push(f) for f in moving_square(8)]
    assert [r.frames_seen for r in results] == list(range(1, 9))
    ready = [r.ready for r in results]
    # full once T frames are sampled (two-in-one: one frame later) and a flow stack of L is complete
    first = {"rgb_attention": 4, "flow_resnet": 4, "two_stream": 4, "two_in_one": 5}[name]
    assert ready == [k >= first for k in range(1, 9)], ready


def test_stream_threads_follow_the_cores_other_processes_leave(monkeypatch):
    """A second of /proc/stat with both cores busy, this process using one of them: one thread;
    with both idle: two. A fixed count stays; a bad one is one line."""
    from fpar.engine.stream import threads as chooser

    clock = iter([0.0, 1.5, 3.0])
    cpu = iter([0.0, 1.5, 3.0])  # the process used one core's worth of time
    stat = iter([(0.0, 100.0), (0.0, 400.0), (300.0, 700.0)])  # busy, then idle
    monkeypatch.setattr(chooser.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(chooser.time, "process_time", lambda: next(cpu))
    monkeypatch.setattr(chooser, "_cpu_times", lambda: next(stat))
    monkeypatch.setattr(chooser.os, "cpu_count", lambda: 2)
    threads = chooser.ThreadChooser(2, fixed=False)
    threads.review()  # the first look: nothing to compare with yet
    assert threads.count == 2
    threads.review()
    assert threads.count == 1  # 0 idle + our 1 core
    threads.review()
    assert threads.count == 2
    assert chooser.ThreadChooser.for_setting(3).count == 3
    with pytest.raises(FparError, match="threads must be 'auto' or a positive number"):
        chooser.ThreadChooser.for_setting(0)

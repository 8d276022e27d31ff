"""``fpar stream``: a trained model on frames as they arrive (a video file, a folder of frames, a camera
or a stream URL), printing the running top classes and each frame's latency (docs/streaming.md)."""

from __future__ import annotations

import argparse
import json
import math

from fpar.cli.common import add_compute_options, at_least, require_device
from fpar.engine.settings import PRECISIONS
from fpar.errors import FparError
from fpar.interop.onnx_runtime import RUNTIMES
from fpar.prepare.flow import FLOW_METHODS


def register(subparsers: argparse._SubParsersAction) -> None:
    stream = subparsers.add_parser(
        "stream", help="recognise the action live, frame by frame (video, folder, camera or URL)",
        description="Pushes each frame of SOURCE into a streaming recogniser: the backbone runs once per "
                    "frame, the recurrent part over the last T sampled frames. Prints the running top "
                    "classes and each frame's latency; --json prints one object per frame and a summary "
                    "(median and 95th-percentile latency, frames per second).")
    stream.add_argument("checkpoint", help="an fpar checkpoint or an export folder (fpar export)")
    stream.add_argument("source", help="video file, animated GIF, folder of frames, camera index (0) or stream URL")
    stream.add_argument("--window", type=at_least(1, 1024), default=None, metavar="T",
                        help="sampled frames the recurrent part reads (default: the checkpoint's clip length)")
    stream.add_argument("--every", type=at_least(1, 1024), default=1, metavar="N",
                        help="sample one frame in N (default 1: every frame)")
    stream.add_argument("--answer-every", type=at_least(1, 1024), default=1, metavar="K",
                        help="answer every K-th sampled frame, holding the answer in between (each answer "
                             "still exact over its window): the recurrent work per frame falls from T to T/K "
                             "steps (default 1)")
    stream.add_argument("--batch-frames", action="store_true",
                        help="with --answer-every K: encode the frames between two answers as one batch when the "
                             "answer is due (same answers; each frame at a batched forward's cost on CPUs whose "
                             "matrix units one frame cannot fill, such as AMX; each answer later by the batch)")
    stream.add_argument("--runtime", choices=RUNTIMES, default="torch",
                        help="torch (default) or onnx: a streaming ONNX export (`fpar export --format onnx "
                             "--stream`) run by onnxruntime, without PyTorch")
    stream.add_argument("--threads", type=at_least(1, 1024), default=None,
                        help="threads a push computes with (default: the cores other processes leave free)")
    stream.add_argument("--top", type=at_least(1), default=3, help="how many classes to print (default 3)")
    stream.add_argument("--flow", default="tvl1", choices=FLOW_METHODS,
                        help="optical flow for models that read it: the one the model was trained with "
                             "(default tvl1, as the reference data; dis is much faster)")
    stream.add_argument("--precision", choices=PRECISIONS,
                        help="numeric precision (default: the checkpoint's training precision; "
                             "auto: the CPU's fastest)")
    stream.add_argument("--max-frames", type=at_least(1), default=None, help="stop after this many frames")
    stream.add_argument("--realtime", action="store_true",
                        help="pace a file at its frame rate, dropping frames when the model falls behind")
    stream.add_argument("--out", default=None, metavar="VIDEO",
                        help="also write the frames with the current label (and the attention map) drawn: "
                             ".mp4, .avi, .mov, .mkv or .gif")
    stream.add_argument("--json", action="store_true", help="one JSON object per frame, then a summary object")
    add_compute_options(stream, default="cpu")
    stream.set_defaults(func=stream_command)


# OpenMP's threads wait for each other passively (sleeping, not spinning) unless the environment
# says otherwise: on a CPU other processes share, spinning threads made each push 25-40x slower
# (docs/streaming.md, "Speed"). Set before torch loads, which reads it once.
OMP_WAITING = {"OMP_WAIT_POLICY": "PASSIVE"}


def stream_command(args: argparse.Namespace) -> int:
    import contextlib
    import os

    for name, value in OMP_WAITING.items():
        os.environ.setdefault(name, value)
    from fpar.engine.stream.sources import SourceRun, latency_summary, open_source
    from fpar.io import refuse_overwriting_inputs

    if args.out is not None:
        from fpar.viz.live import OUT_SUFFIXES

        if not args.out.lower().endswith(OUT_SUFFIXES):
            raise FparError(f"--out {args.out}: give a video file name ending in {', '.join(OUT_SUFFIXES)}")
        refuse_overwriting_inputs(args.out, args.source, args.checkpoint, option="--out")
    source = open_source(args.source, args.max_frames)  # a missing source is refused before the model loads
    SourceRun.check(source, args.realtime)
    stream = _open_stream(args)
    latencies: list[float] = []
    with contextlib.ExitStack() as outputs:
        write = None
        if args.out is not None:
            from fpar.viz.live import video_writer

            write = outputs.enter_context(video_writer(args.out, source.fps or 10.0))
        run = SourceRun(stream, source, realtime=args.realtime, attention=write is not None)
        for step in run:
            latencies.append(step.latency)
            top = step.result.top(args.top)
            heads = _head_tops(step.result, args.top)
            if args.json:
                print(json.dumps({"frame": step.position, "frames_seen": step.result.frames_seen,
                                  "ready": step.result.ready, "window": step.result.window,
                                  "updated": step.result.updated,
                                  "top": [{"class": c, "probability": p} for c, p in top],
                                  **({"heads": heads} if heads else {}),
                                  "latency_ms": round(step.latency * 1000, 3)}), flush=True)
            else:
                answer = "  ".join(f"{name} {100 * p:4.1f}%" for name, p in top) or "(filling the window)"
                answer += "".join(f"  | {kind}: {_head_words(best[0])}" for kind, best in heads.items() if best)
                filling = "" if step.result.ready or not top else f"  (window {step.result.window}/{stream.window})"
                print(f"frame {step.position:6d}  {step.latency * 1000:7.1f} ms  {answer}{filling}", flush=True)
            if write is not None:
                write(_drawn(stream, step))
    summary = {**latency_summary(latencies), "dropped": run.dropped}
    if args.json:
        print(json.dumps({"summary": {k: (None if isinstance(v, float) and math.isnan(v) else v)
                                      for k, v in summary.items()}}))
    else:
        print(f"{summary['frames']} frames: median {summary['median_latency_ms']:.1f} ms, 95th percentile "
              f"{summary['p95_latency_ms']:.1f} ms, {summary['frames_per_second']:.1f} frames/s"
              + (f", {run.dropped} dropped to keep up" if args.realtime else ""))
    if args.out is not None:
        print(f"wrote {args.out}")
    return 0


def _open_stream(args: argparse.Namespace):
    """The stream the runtime asked for: ``fpar.Stream`` (PyTorch) or the ONNX runtime's."""
    if args.runtime == "onnx":
        if args.precision is not None or args.device not in (None, "cpu"):
            raise FparError("--runtime onnx runs the exported graph as it is, on the CPU: drop --precision and --device")
        if args.batch_frames:
            raise FparError("--runtime onnx runs its per-frame graph one frame at a time: drop --batch-frames")
        from fpar.interop.onnx_stream import OnnxStream

        return OnnxStream(args.checkpoint, window=args.window, every=args.every, flow=args.flow,
                          answer_every=args.answer_every, threads=args.threads)
    from fpar.engine.stream import Stream

    return Stream(args.checkpoint, window=args.window, every=args.every, flow=args.flow, precision=args.precision,
                  device=require_device(args.device), announce=True, answer_every=args.answer_every,
                  threads=args.threads or "auto", batch_frames=args.batch_frames)


def _drawn(stream, step):
    """The frame with the current label (and the attention map over the part the model reads)."""
    from fpar.viz.live import annotate

    top = step.result.top(1)
    label = f"{top[0][0]} {100 * top[0][1]:.0f}%" if top else "..."
    lines = [label, f"frame {step.position}  {step.latency * 1000:.0f} ms"]
    box = stream.crop_box(*step.frame.shape[:2])
    attention = step.result.attention
    return annotate(step.frame, lines, None if attention is None else attention.numpy(), box)


def _head_tops(result, k: int) -> dict[str, list[dict]]:
    """Each label head's ``k`` best classes and, with verb and noun, EPIC's action rule
    (:func:`fpar.engine.epic_metrics.head_tops`, numpy only); {} before the first answer or for a
    model with the action head only."""
    if not result.heads:
        return {}
    import numpy as np

    from fpar.engine.epic_metrics import head_tops

    return head_tops({kind: np.asarray(scores, np.float64) for kind, scores in result.heads.items()},
                     result.head_classes, k)


def _head_words(best: dict) -> str:
    """A head's best answer as the text line shows it: ``take 61.0%`` or ``take cup 38.2%``."""
    name = best["class"] if "class" in best else f"{best['verb']} {best['noun']}"
    return f"{name} {100 * best['probability']:.1f}%"

"""``fpar predict`` and ``fpar cam`` (a trained model on any video: file, GIF or image folder) and
``fpar report`` (a trained model on a dataset's held-out subjects, as pictures and a report)."""

from __future__ import annotations

import argparse
import json

from fpar.cli.common import accelerator_for, add_compute_options, at_least, number_in, require_device
from fpar.engine.settings import PRECISIONS
from fpar.errors import FparError
from fpar.interop.onnx_runtime import RUNTIMES
from fpar.prepare.flow import DEFAULT_FLOW_METHOD, FLOW_METHODS, FRAME_RATE_RANGE


def register(subparsers: argparse._SubParsersAction) -> None:
    predict = subparsers.add_parser(
        "predict", help="classify a video with a trained checkpoint",
        description="Samples the clip as evaluation does (centre crop) and prints the top classes.")
    _common(predict)
    predict.add_argument("--top", type=at_least(1), default=5, help="how many classes to print (default 5)")
    predict.add_argument("--json", action="store_true", help="print one JSON object")
    predict.add_argument("--runtime", choices=RUNTIMES, default="torch",
                         help="torch (default) or onnx: run an ONNX export (`fpar export --format onnx`) with "
                              "onnxruntime on the CPU, without PyTorch")
    predict.set_defaults(func=predict_command)

    cam = subparsers.add_parser(
        "cam", help="show what the model looks at: attention GIF, MS head and modulation maps",
        description="Writes cam.gif (CAM attention over the sampled frames) and, where the model has "
                    "them, ms.png (MS head vs motion maps) and modulation.png (two-in-one) into --out.")
    _common(cam)
    cam.add_argument("--out", default="cam", help="folder for the pictures (default ./cam)")
    cam.add_argument("--fps", type=number_in(FRAME_RATE_RANGE[0], 100.0), default=4.0,
                     help=f"GIF frame rate ({FRAME_RATE_RANGE[0]:g} to 100)")
    cam.set_defaults(func=cam_command)

    report = subparsers.add_parser(
        "report", help="evaluate runs and write index.html (comparison, curves, confusion, CAM GIFs) and report.md",
        description="Evaluates each RUN (a run folder or a checkpoint) once and writes into --out: index.html "
                    "(self-contained: with several runs a comparison table of every metric (top-1, top-5, "
                    "mean-class accuracy and any registered), epochs and best epoch; per run its accuracy per class, curves, confusion and feature-correlation "
                    "matrices, CAM GIFs and config), report.md, report.json, and per run (in one sub-folder each when "
                    "there are several) curves.png, confusion.png, features.png, predictions.csv and clips/<id>/ "
                    "explanations (cam.gif, ms.png, modulation.png).")
    report.add_argument("runs", nargs="+", metavar="RUN", help="a run folder (its best.ckpt) or an fpar checkpoint")
    add_compute_options(report)
    report.add_argument("--data", required=True, help="dataset root")
    report.add_argument("--split", default=None, help="subjects to evaluate, e.g. S2 (default: each run's config's)")
    report.add_argument("--out", default=None,
                        help="report folder (default for one run: <checkpoint folder>/report; needed for several)")
    report.add_argument("--clips", type=at_least(0), default=4, help="explain one clip of this many classes")
    report.set_defaults(func=report_command)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="an fpar checkpoint (training's best.ckpt, or import-reference output)")
    parser.add_argument("video", help="video file, animated GIF or folder of frames")
    parser.add_argument("--flow", default=DEFAULT_FLOW_METHOD, choices=FLOW_METHODS,
                        help=f"optical flow for models that read it (default {DEFAULT_FLOW_METHOD}, as the "
                             "reference data)")
    parser.add_argument("--max-frames", type=at_least(1), default=None, help="read at most this many frames")
    parser.add_argument("--strict", action="store_true",
                        help="refuse a video whose frames end before its container says (default: a warning)")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="numeric precision (default: the checkpoint's training precision; auto: the CPU's fastest)")
    add_compute_options(parser, default="cpu")


def predict_command(args: argparse.Namespace) -> int:
    if args.runtime == "onnx":
        top, heads = _onnx_top(args)
    else:
        from fpar.engine.predict import predict_video

        prediction = predict_video(args.checkpoint, args.video, flow=args.flow, max_frames=args.max_frames,
                                   precision=args.precision, announce=True, device=require_device(args.device),
                                   strict=args.strict)
        top, heads = prediction.top(args.top), prediction.head_tops(args.top)
    if args.json:
        print(json.dumps({"video": args.video, "top": [{"class": c, "probability": p} for c, p in top],
                          **({"heads": heads} if heads else {})}))
    else:
        for rank, (name, prob) in enumerate(top, 1):
            print(f"{rank}. {name:<30s} {100 * prob:5.1f}%")
        for head, entries in heads.items():  # label heads, then EPIC's action rule over verb and noun
            names = [entry.get("class") or f"{entry['verb']} {entry['noun']}" for entry in entries]
            print(f"{head}: " + "  ".join(f"{rank}. {name} {100 * entry['probability']:.1f}%"
                                        for rank, (name, entry) in enumerate(zip(names, entries), 1)))
    return 0


def _onnx_top(args: argparse.Namespace) -> tuple[list[tuple[str, float]], dict[str, list[dict]]]:
    """``fpar predict --runtime onnx``: the same clip as the PyTorch path reads, run by onnxruntime;
    the action head's top classes and the label heads' (as :meth:`VideoPrediction.head_tops`)."""
    import numpy as np

    from fpar.engine.video_clip import clip_arrays
    from fpar.interop.onnx_runtime import OnnxModel

    if args.precision is not None or args.device != "cpu":
        raise FparError("--runtime onnx runs the exported graph as it is, on the CPU: drop --precision and --device")
    model = OnnxModel(args.checkpoint)
    clip = clip_arrays(args.video, model.clip, flow=args.flow, max_frames=args.max_frames, strict=args.strict)
    outputs = model({name: clip[name][None] for name in model.inputs})
    logits = outputs["logits"][0].astype(np.float64)
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    order = np.argsort(-probabilities, kind="stable")[:args.top]
    heads = {}
    if model.label_classes:  # a model with verb/noun heads: one named graph output each
        from fpar.data.labels import logits_key
        from fpar.engine.epic_metrics import head_tops

        label_classes = model.label_classes
        heads = head_tops({kind: outputs[logits_key(kind)][0] for kind in label_classes
                           if logits_key(kind) in outputs}, label_classes, args.top)
    return [(model.classes[i], float(probabilities[i])) for i in order], heads


def cam_command(args: argparse.Namespace) -> int:
    from fpar.engine.predict import predict_video
    from fpar.io import refuse_overwriting_inputs
    from fpar.viz.explain import explain_clip

    refuse_overwriting_inputs(args.out, args.video, args.checkpoint, option="--out")
    prediction = predict_video(args.checkpoint, args.video, flow=args.flow, max_frames=args.max_frames, explain=True,
                               precision=args.precision, announce=True, device=require_device(args.device),
                               strict=args.strict)
    name, prob = prediction.top(1)[0]
    written = explain_clip(prediction.clip, prediction.outputs, args.out, title=f"{name} ({100 * prob:.0f}%)",
                           predicted=name, probability=prob,
                           fps=args.fps)
    if not written:
        raise FparError(f"model '{prediction.model_name}' has no attention, MS head or modulation to show")
    print(f"prediction: {name} ({100 * prob:.1f}%)")
    for path in written:
        print(f"wrote {path}")
    return 0


def report_command(args: argparse.Namespace) -> int:
    from fpar.engine.epic_metrics import RULE_ACTION
    from fpar.engine.evaluate import printable_name
    from fpar.engine.metric_registry import metrics_text
    from fpar.workflows.report import resolve_run, write_report

    if args.out is None and len(args.runs) > 1:
        raise FparError("report: several runs need --out DIR (where index.html goes)")
    accelerator = accelerator_for(require_device(args.device))
    first = resolve_run(args.runs[0])  # a checkpoint file, or an export's folder: its report goes inside it
    out = args.out or (first if first.is_dir() else first.parent) / "report"
    result = write_report(args.runs if len(args.runs) > 1 else args.runs[0], args.data, out, split=args.split,
                          clips=args.clips, progress=True, accelerator=accelerator)
    for run in result["runs"]:
        print(f"{printable_name(run['name'])}: {metrics_text(run)}  ({run['n']} clips)")
        for kind, head in (run.get("heads") or {}).items():
            print(f"  {kind} head: {metrics_text(head)}")
        if run.get(RULE_ACTION):
            print(f"  {RULE_ACTION} (EPIC's rule): {metrics_text(run[RULE_ACTION])}")
    print(f"wrote {result['html']}")
    print(f"wrote {result['report']}")
    return 0

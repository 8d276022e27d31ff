"""``fpar predict`` and ``fpar cam``: a trained model on any video (file, GIF or image folder)."""

from __future__ import annotations

import argparse
import json

from fpar.errors import FparError

FLOW_METHODS = ("tvl1", "dis", "farneback")


def register(subparsers: argparse._SubParsersAction) -> None:
    predict = subparsers.add_parser(
        "predict", help="classify a video with a trained checkpoint",
        description="Samples the clip as evaluation does (centre crop) and prints the top classes.")
    _common(predict)
    predict.add_argument("--top", type=int, default=5, help="how many classes to print (default 5)")
    predict.add_argument("--json", action="store_true", help="print one JSON object")
    predict.set_defaults(func=predict_command)

    cam = subparsers.add_parser(
        "cam", help="show what the model looks at: attention GIF, MS head and modulation maps",
        description="Writes cam.gif (CAM attention over the sampled frames) and, where the model has "
                    "them, ms.png (MS head vs motion maps) and modulation.png (two-in-one) into --out.")
    _common(cam)
    cam.add_argument("--out", default="cam", help="folder for the pictures (default ./cam)")
    cam.add_argument("--fps", type=float, default=4.0, help="GIF frame rate")
    cam.set_defaults(func=cam_command)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="an fpar checkpoint (training's best.ckpt, or import-reference output)")
    parser.add_argument("video", help="video file, animated GIF or folder of frames")
    parser.add_argument("--flow", default="tvl1", choices=FLOW_METHODS,
                        help="optical flow for models that read it (default tvl1, as the reference data)")
    parser.add_argument("--max-frames", type=int, default=None, help="read at most this many frames")


def predict_command(args: argparse.Namespace) -> int:
    from fpar.engine.predict import predict_video

    prediction = predict_video(args.checkpoint, args.video, flow=args.flow, max_frames=args.max_frames)
    top = prediction.top(args.top)
    if args.json:
        print(json.dumps({"video": args.video, "top": [{"class": c, "probability": p} for c, p in top]}))
    else:
        for rank, (name, prob) in enumerate(top, 1):
            print(f"{rank}. {name:<30s} {100 * prob:5.1f}%")
    return 0


def cam_command(args: argparse.Namespace) -> int:
    from fpar.checkpoint import load_model
    from fpar.engine.predict import predict_video
    from fpar.viz.explain import explain_clip

    model, info = load_model(args.checkpoint)
    if hasattr(model, "return_modulation"):
        model.return_modulation = True  # two-in-one: also hand back the modulation tensors
    prediction = predict_video(args.checkpoint, args.video, flow=args.flow, max_frames=args.max_frames,
                               model=model, info=info)
    name, prob = prediction.top(1)[0]
    written = explain_clip(prediction.clip, prediction.outputs, args.out, title=f"{name} ({100 * prob:.0f}%)",
                           fps=args.fps)
    if not written:
        raise FparError(f"model '{info['model']['name']}' has no attention, MS head or modulation to show")
    print(f"prediction: {name} ({100 * prob:.1f}%)")
    for path in written:
        print(f"wrote {path}")
    return 0

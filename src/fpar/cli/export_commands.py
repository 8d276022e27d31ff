"""``fpar export``: a checkpoint as shareable files (safetensors weights or an ONNX graph, + a JSON contract)."""

from __future__ import annotations

import argparse

from fpar.cli.common import at_least
from fpar.interop.onnx_export import EXPORT_FORMATS, QUANTIZATIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser(
        "export", help="write a checkpoint's model as OUT/model.safetensors (or OUT/model.onnx) + OUT/fpar.json",
        description="The weights as safetensors (no optimiser state, loads without running code in any "
                    "framework) and fpar.json: model name and arguments, class names, clip settings, the "
                    "training config. Every command that takes a CHECKPOINT also takes OUT (or its .safetensors). "
                    "--format onnx writes OUT/model.onnx instead (inputs named after the model's batch keys, "
                    "a dynamic batch axis, the clip length fixed), checked against PyTorch with onnxruntime; "
                    "`fpar predict OUT VIDEO --runtime onnx` runs it without PyTorch (docs/deployment.md).")
    export.add_argument("checkpoint", help="an fpar checkpoint (best.ckpt, last.ckpt, an import or an export)")
    export.add_argument("out", metavar="OUT", help="folder to write")
    export.add_argument("--format", choices=EXPORT_FORMATS, default="safetensors",
                        help="safetensors (PyTorch weights, default) or onnx (a graph for onnxruntime and other runtimes)")
    export.add_argument("--frames", type=at_least(1), default=None,
                        help="onnx: the clip length T the graph takes (default the checkpoint's num_frames)")
    export.add_argument("--stream", action="store_true",
                        help="onnx: the per-frame graph (a frame and the recurrent state in; the answer over "
                             "the last T frames, the attention map and the next state out) that `fpar stream "
                             "OUT SOURCE --runtime onnx` runs without PyTorch")
    export.add_argument("--quantize", choices=QUANTIZATIONS, default=None,
                        help="onnx: int8 weights (dynamic quantisation; smaller, not exact); with --calibrate, "
                             "int8 weights and activations (static)")
    export.add_argument("--calibrate", metavar="DATA", default=None,
                        help="onnx --quantize int8: a prepared dataset whose clips fix the activations' int8 "
                             "scales; the accuracy change on the clips `fpar eval` scores by default (the run's "
                             "validation subjects) is printed and recorded in fpar.json")
    export.add_argument("--calibrate-clips", type=at_least(1, 100000), default=None, metavar="N",
                        help="calibration clips (default 8), from the subjects the model was not validated on")
    export.set_defaults(func=export_command)


def export_command(args: argparse.Namespace) -> int:
    from fpar.checkpoint import EXPORT_CONTRACT, EXPORT_ONNX, EXPORT_WEIGHTS, export_model
    from fpar.errors import FparError

    if args.format == "onnx":
        import json

        from fpar.interop.onnx_export import ACCURACY_ENTRY, ONNX_ENTRY, export_onnx
        from fpar.interop.onnx_quantize import accuracy_line

        out = export_onnx(args.checkpoint, args.out, frames=args.frames, quantize=args.quantize, stream=args.stream,
                          calibrate=args.calibrate, calibrate_clips=args.calibrate_clips, progress=True)
        entry = json.loads((out / EXPORT_CONTRACT).read_text())[ONNX_ENTRY]
        size = (out / EXPORT_ONNX).stat().st_size
        print(f"wrote {out / EXPORT_ONNX} ({size / 2**20:.1f} MiB) and {out / EXPORT_CONTRACT}")
        inputs = ", ".join(f"{name} {tuple(shape)}".replace("'batch'", "B") for name, shape in entry["inputs"].items())
        if entry.get("graph") == "stream":
            print(f"per-frame graph over a window of {entry['window']} frames: "
                  f"`fpar stream {out} SOURCE --runtime onnx` runs it without PyTorch")
        print(f"inputs: {inputs}; outputs: {', '.join(entry['outputs'])}; onnxruntime matches PyTorch to "
              f"{entry['max_relative_error']:.1e} (relative{', int8' if entry['quantize'] else ''})")
        if ACCURACY_ENTRY in entry:
            calibration = entry["calibration"]
            print(f"int8: static, calibrated on {calibration['clips']} clips of {calibration['data']} "
                  "(clips `fpar eval` does not score)")
            print(accuracy_line(entry[ACCURACY_ENTRY]))
        return 0
    if args.frames is not None or args.quantize is not None or args.stream or args.calibrate is not None:
        raise FparError("--frames, --stream, --quantize and --calibrate are for --format onnx")
    out = export_model(args.checkpoint, args.out)
    size = (out / EXPORT_WEIGHTS).stat().st_size
    print(f"wrote {out / EXPORT_WEIGHTS} ({size / 2**20:.1f} MiB) and {out / EXPORT_CONTRACT}")
    return 0

"""``fpar export``: a checkpoint as shareable files (safetensors weights + a JSON contract)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser(
        "export", help="write a checkpoint's model as OUT/model.safetensors + OUT/fpar.json",
        description="The weights as safetensors (no optimiser state, loads without running code in any "
                    "framework) and fpar.json: model name and arguments, class names, clip settings, the "
                    "training config. Every command that takes a CHECKPOINT also takes OUT (or its .safetensors).")
    export.add_argument("checkpoint", help="an fpar checkpoint (best.ckpt, last.ckpt, an import or an export)")
    export.add_argument("out", metavar="OUT", help="folder to write")
    export.set_defaults(func=export_command)


def export_command(args: argparse.Namespace) -> int:
    from fpar.checkpoint import EXPORT_CONTRACT, EXPORT_WEIGHTS, export_model

    out = export_model(args.checkpoint, args.out)
    size = (out / EXPORT_WEIGHTS).stat().st_size
    print(f"wrote {out / EXPORT_WEIGHTS} ({size / 2**20:.1f} MiB) and {out / EXPORT_CONTRACT}")
    return 0

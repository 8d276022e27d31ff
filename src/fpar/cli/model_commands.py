"""``fpar models`` (the model registry) and ``fpar import-reference`` (reference checkpoints)."""

from __future__ import annotations

import argparse

from fpar.cli.common import at_least
from fpar.interop.contract import KINDS
from fpar.models.vocabulary import BLOCKS_PER_STAGE


def register(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser("models", help="list the models with their parameter counts")
    models.add_argument("--backbone", default="resnet34", choices=sorted(BLOCKS_PER_STAGE))
    models.add_argument("--num-classes", type=at_least(1), default=61)
    models.set_defaults(func=list_models_command)

    imports = subparsers.add_parser(
        "import-reference", help="convert a reference (FPAR-NET/FPAR, Ego-RNN) .pth into an fpar checkpoint",
        description="Read a reference state dict (loaded without running code) and write one fpar checkpoint "
                    "that every command taking a CHECKPOINT accepts.")
    imports.add_argument("kind", choices=list(KINDS), help="which reference model the file holds")
    imports.add_argument("input", help="reference .pth (a state dict, or a dict with 'state_dict'/'model_state_dict')")
    imports.add_argument("output", help="fpar checkpoint to write")
    imports.add_argument("--classes", metavar="NAMES.txt", help="class names, one per line, in class-id order")
    imports.set_defaults(func=import_reference_command)


def list_models_command(args: argparse.Namespace) -> int:
    from fpar.models import build_model, describe_model, list_models

    print(f"{'model':<14} {'parameters':>12}  description ({args.backbone}, {args.num_classes} classes)")
    for name in list_models():
        model = build_model(name, backbone=args.backbone, num_classes=args.num_classes)
        count = sum(p.numel() for p in model.parameters())
        print(f"{name:<14} {count:>12,}  {describe_model(name)}")
    return 0


def import_reference_command(args: argparse.Namespace) -> int:
    from fpar.interop.importer import import_reference

    spec = import_reference(args.kind, args.input, args.output, args.classes)
    details = ", ".join(f"{k}={v}" for k, v in spec.items() if k not in ("name", "pretrained"))
    print(f"wrote {args.output}: model {spec['name']} ({details})")
    return 0

"""``fpar cache``: build the dataset store (frames decoded and resized once, memory-mapped)."""

from __future__ import annotations

import argparse

from fpar.cli.common import at_least


def register(subparsers: argparse._SubParsersAction) -> None:
    cache = subparsers.add_parser(
        "cache", help="decode a dataset once into a memory-mapped store for fast clip loading",
        description="Decode every frame, flow image and motion map of the dataset at ROOT once, resized as "
                    "training resizes them, into a store that all DataLoader workers share (docs/data.md, "
                    "'Dataset store'). An up-to-date store is left as it is; an interrupted build resumes.")
    cache.add_argument("root", metavar="ROOT", help="dataset folder, or a manifest .csv/.jsonl")
    cache.add_argument("--out", metavar="DIR", help="store folder (default: ROOT/.fpar-store/r<RESIZE>)")
    cache.add_argument("--layout", default="auto", choices=["auto", "processed", "egornn", "manifest"])
    cache.add_argument("--resize", type=at_least(1), default=None,
                       help="short side in pixels, as data.resize (default: --config's, else 256)")
    cache.add_argument("--config", metavar="CONFIG",
                       help="build the store at the size this config trains at (its data.resize); every "
                            "config of that size then reads it")
    cache.add_argument("--modalities", nargs="+", choices=["frames", "flow", "mmaps"],
                       help="what to store (default: everything the dataset has)")
    cache.add_argument("--rebuild", action="store_true", help="rebuild a store whose sources or settings changed")
    cache.set_defaults(func=run_cache)


def run_cache(args: argparse.Namespace) -> int:
    from fpar.data.store import build_store

    resize = args.resize
    if args.config and resize is None:
        from fpar.engine.config import load_config

        resize = load_config(args.config).data.clip.resize
    path = build_store(args.root, args.out, layout=args.layout, resize=resize or 256, modalities=args.modalities,
                       rebuild=args.rebuild)
    print(f"store ready: {path}")
    return 0

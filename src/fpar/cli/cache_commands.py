"""``fpar cache``: build the dataset store (frames decoded and resized once, memory-mapped)."""

from __future__ import annotations

import argparse

from fpar.cli.common import at_least
from fpar.data.settings import MAX_RESIZE


def register(subparsers: argparse._SubParsersAction) -> None:
    cache = subparsers.add_parser(
        "cache", help="decode a dataset once into a memory-mapped store for fast clip loading",
        description="Decode every frame, flow image and motion map of the dataset at ROOT once, resized as "
                    "training resizes them, into a store that all DataLoader workers share (docs/data.md, "
                    "'Dataset store'). An up-to-date store is left as it is; an interrupted build resumes.")
    cache.add_argument("root", metavar="ROOT", help="dataset folder, or a manifest .csv/.jsonl")
    cache.add_argument("--out", metavar="DIR", help="store folder (default: ROOT/.fpar-store/r<RESIZE>)")
    cache.add_argument("--layout", default="auto", choices=["auto", "processed", "egornn", "manifest"])
    cache.add_argument("--resize", type=at_least(1, MAX_RESIZE), default=None,
                       help=f"short side in pixels, as data.resize, at most " f"{MAX_RESIZE} (default: --config's, else 256)")
    cache.add_argument("--config", metavar="CONFIG",
                       help="build the store at the size this config trains at (its data.resize); every "
                            "config of that size then reads it")
    cache.add_argument("--modalities", nargs="+", choices=["frames", "flow", "mmaps"],
                       help="what to store (default: everything the dataset has)")
    cache.add_argument("--rebuild", action="store_true", help="rebuild a store whose sources or settings changed")
    cache.set_defaults(func=run_cache)


def run_cache(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fpar.data.store import build_store, default_store_path
    from fpar.io import no_links_below

    resize = args.resize
    if args.config and resize is None:
        from fpar.engine.config import load_config

        resize = load_config(args.config).data.clip.resize
    resize = resize or 256
    if args.out is None:  # a .fpar-store link planted in the dataset would take the build's deletes elsewhere
        store = default_store_path(args.root, resize)
        no_links_below(store.parents[1], store)
    path = build_store(args.root, args.out, layout=args.layout, resize=resize, modalities=args.modalities,
                       rebuild=args.rebuild)
    print(f"store ready: {path}")
    return 0

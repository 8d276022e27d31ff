"""``fpar cache``: build the dataset store (frames packed once into shards, memory-mapped, checked)."""

from __future__ import annotations

import argparse

from fpar.cli.common import at_least
from fpar.cli.prepare_commands import shard_spec
from fpar.data.layouts import layout_names
from fpar.data.settings import MAX_RESIZE, MODALITIES


def register(subparsers: argparse._SubParsersAction) -> None:
    from fpar.data.store import CODECS  # no numpy/OpenCV at import: the CLI's parser stays light

    cache = subparsers.add_parser(
        "cache", help="pack a dataset once into a memory-mapped store for fast clip loading",
        description="Pack every frame, flow image and motion map of the dataset at ROOT once into a few shard "
                    "files that all DataLoader workers share (docs/data.md, 'Dataset store'): decoded and resized "
                    "(raw) or as JPEGs (jpeg). An up-to-date store is left as it is; an interrupted build resumes.")
    cache.add_argument("root", metavar="ROOT", help="dataset folder, or a manifest .csv/.jsonl")
    cache.add_argument("--out", metavar="DIR", help="store folder (default: ROOT/.fpar-store/r<RESIZE>)")
    cache.add_argument("--layout", default="auto", choices=["auto", *layout_names()])
    cache.add_argument("--resize", type=at_least(1, MAX_RESIZE), default=None,
                       help=f"short side in pixels, as data.resize, at most " f"{MAX_RESIZE} (default: --config's, else 256)")
    cache.add_argument("--config", metavar="CONFIG",
                       help="build the store at the size this config trains at (its data.resize); every "
                            "config of that size then reads it")
    cache.add_argument("--modalities", nargs="+", choices=MODALITIES,
                       help="what to store (default: everything the dataset has)")
    cache.add_argument("--codec", default="auto", choices=["auto", *CODECS],
                       help="raw: decoded, resized pixels (fastest to read, largest); jpeg: the source JPEGs as "
                            "published (or re-encoded with --quality); auto (default): jpeg for JPEG sources whose "
                            "raw store would pass 32 GiB, else raw")
    cache.add_argument("--quality", type=at_least(1, 100), metavar="Q",
                       help="jpeg: re-encode every frame after resizing at this JPEG quality (lossy: the pixels "
                            "then differ from the image files')")
    cache.add_argument("--reduced-decode", action="store_true",
                       help="jpeg: decode frames of at least twice RESIZE at a reduced size (DCT scaling), much "
                            "faster for large frames, but not the pixels the image files give (opt-in)")
    cache.add_argument("--shard", type=shard_spec, metavar="K/N",
                       help="build part K of N only (one per machine or array task); the parts are merged into "
                            "one store when the last one finishes")
    cache.add_argument("--rebuild", action="store_true",
                       help="rebuild the store from the dataset, whatever state it is in")
    cache.add_argument("--verify", action="store_true",
                       help="check every stored frame against its checksum, and the store's index against the "
                            "dataset: swapped, edited and stale entries (the store must exist)")
    cache.set_defaults(func=run_cache)


def run_cache(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fpar.data.store import INDEX_NAME, FrameStore, build_store, default_store_path
    from fpar.errors import FparError
    from fpar.io import no_links_below

    resize = args.resize
    if args.config and resize is None:
        from fpar.engine.config import load_config

        resize = load_config(args.config).data.clip.resize
    resize = resize or 256
    store = Path(args.out) if args.out else default_store_path(args.root, resize)
    if args.out is None:  # a .fpar-store link planted in the dataset would take the build's deletes elsewhere
        no_links_below(store.parents[1], store)
    if args.verify:
        if args.rebuild or args.shard:
            raise FparError("--verify checks a finished store; run it without --rebuild and --shard")
        import time

        start = time.perf_counter()
        from fpar.data.layouts import load_index

        counts = FrameStore(store, args.root).verify(load_index(args.root, args.layout))
        print(f"store {store} verified: {counts['frames']} frames in {counts['shards']} shard(s), "
              f"{counts['bytes'] / 1e9:.2f} GB, in {time.perf_counter() - start:.1f} s")
        return 0
    path = build_store(args.root, args.out, layout=args.layout, resize=resize, modalities=args.modalities,
                       rebuild=args.rebuild, codec=args.codec, quality=args.quality, shard=args.shard,
                       reduced_decode=args.reduced_decode)
    if args.shard and not (path / INDEX_NAME).is_file():
        k, n = args.shard
        print(f"store part {k}/{n} ready: {path}/part-{k}-of-{n} (the store is merged when all {n} parts are done)")
        return 0
    opened = FrameStore(path, args.root)
    lossy = f", frames re-encoded at JPEG quality {opened.quality} (lossy)" if opened.quality else ""
    lossy += ", large frames decoded at a reduced size (not the image files' pixels)" if opened.reduced_decode else ""
    print(f"store ready: {path} ({opened.codec}{lossy})")
    return 0

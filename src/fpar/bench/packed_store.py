"""The packed store against the reference's loading, on the same JPEGs (docs/scale.md, "Packed store").

Per DataLoader worker (one process, one thread), every way timed alternately on the same training
clips and random draws, from a dataset published as JPEGs (Ego-RNN tree; EPIC-KITCHENS' 456x256
frame size by default):

* ``reference``: each JPEG opened with PIL and transformed frame by frame (the reference's loader);
* ``images``: :class:`~fpar.data.ClipDataset` on the JPEG files (OpenCV decode), first epoch;
* ``jpeg store``: the same dataset reading ``fpar cache --codec jpeg`` (the JPEGs as published, in
  shards, each frame's checksum checked on read);
* ``raw store``: the same with ``--codec raw`` (decoded, resized pixels), for comparison.

Besides the rates, each row reports the sizes: the JPEGs', the jpeg store's (shards, table and
index), the raw store's, and the share of a jpeg-store clip's time spent on checksums.

``fpar bench --rows packed`` gives its rows; ``python -m fpar.bench.packed_store [--size 456x256]
[--resize 256] [--crop 224]`` the table with the sizes.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fpar.data import store as store_module, transforms
from fpar.data.store import reading as store_reading
from fpar.data.dataset import ClipDataset
from fpar.data.layouts import FILE_KINDS_OF_MODALITY, Instance, load_index
from fpar.data.settings import ClipSettings

CLIPS = {
    # Ego-RNN's RGB stream: 16 frames
    "rgb": dict(modalities=["frames"], num_frames=16),
    # 16 RGB frames plus a stack of 5 x/y flow pairs, all JPEGs (EPIC publishes its flow as JPEGs)
    "two-stream": dict(modalities=["frames", "flow"], flow_mode="stack", num_frames=16, stack_size=5),
}


def bench_packed_store(root: str | Path | None = None, *, resize: int = 256, crop: int = 224,
                       size: tuple[int, int] = (456, 256), quality: int = 90, grain: float = 3.0,
                       repeats: int = 3) -> list[dict]:
    """Seconds per training clip for each way and clip kind, with the stores' sizes, as rows.

    ``root``: a dataset of JPEG frames to time; by default a synthetic one of ``size`` (width, height)
    frames written as JPEGs of ``quality`` with sensor noise of ``grain`` (:func:`jpeg_tree`) in a
    temporary folder. The stores are built beside it.
    """
    if root is not None:
        return _bench(Path(root), resize, crop, repeats, Path(root) / ".fpar-store")
    from fpar.data.synth import generate

    with tempfile.TemporaryDirectory() as tmp:
        pngs = generate(Path(tmp) / "png", subjects=1, classes=2, videos_per_class=2, frames=32, size=size, seed=0,
                        progress=None)
        jpegs = jpeg_tree(pngs, Path(tmp) / "jpeg", quality, grain)
        return _bench(jpegs, resize, crop, repeats, Path(tmp) / "stores")


def jpeg_tree(png_root: Path, out: Path, quality: int, grain: float = 0.0) -> Path:
    """The dataset at ``png_root`` written again as an Ego-RNN tree of JPEGs (RGB 4:2:0, grey flow);
    ``grain``: the standard deviation of the sensor noise added to RGB frames first (the synthetic
    frames are flat shaded, and compress several times better than camera footage)."""
    import cv2

    rng = np.random.default_rng(0)
    for inst in load_index(png_root).instances:
        for kind, tree, prefix in (("rgb", "frames", "image_"), ("flow_x", "flow_x", "flow_x_"),
                                   ("flow_y", "flow_y", "flow_y_")):
            folder = out / tree / inst.instance_id
            folder.mkdir(parents=True, exist_ok=True)
            for k, path in enumerate(inst.frames(kind), 1):
                image = cv2.imread(str(path), cv2.IMREAD_COLOR if kind == "rgb" else cv2.IMREAD_GRAYSCALE)
                if grain and kind == "rgb":
                    image = np.clip(image + rng.normal(0, grain, image.shape), 0, 255).astype(np.uint8)
                cv2.imwrite(str(folder / f"{prefix}{k:05d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return out


def _bench(root: Path, resize: int, crop: int, repeats: int, stores: Path) -> list[dict]:
    import cv2
    import torch

    index = load_index(root)
    kinds = ("rgb", "flow_x", "flow_y")
    jpeg_path = store_module.build_store(root, stores / f"jpeg-r{resize}", resize=resize, codec="jpeg", index=index,
                                         modalities=["frames", "flow"], progress=False)
    raw_path = store_module.build_store(root, stores / f"raw-r{resize}", resize=resize, codec="raw", index=index,
                                        modalities=["frames", "flow"], progress=False)
    jpeg_store, raw_store = store_module.FrameStore(jpeg_path), store_module.FrameStore(raw_path)
    reduced_store = None
    if min(_frame_shape(index.instances[0])) >= 2 * resize:
        reduced_store = store_module.FrameStore(store_module.build_store(
            root, stores / f"jpeg-reduced-r{resize}", resize=resize, codec="jpeg", reduced_decode=True, index=index,
            modalities=["frames", "flow"], progress=False))
    sources = [f for inst in index.instances for kind in kinds for f in inst.frames(kind)]
    jpeg_bytes = sum(f.stat().st_size for f in sources)
    threads = cv2.getNumThreads(), torch.get_num_threads()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    rows = []
    try:
        for name, settings in CLIPS.items():
            clip = ClipSettings(resize=resize, crop=crop, **settings)
            make = lambda: ClipDataset(index.instances, clip, train=True, seed=0)  # noqa: E731
            images, from_jpeg, from_raw, from_reduced = make(), make(), make(), make()
            from_jpeg.use_store(jpeg_store)
            from_raw.use_store(raw_store)
            ways = {"reference": lambda e: _reference_epoch(images, e), "images": lambda e: _epoch(images, e),
                    "jpeg store": lambda e: _epoch(from_jpeg, e), "raw store": lambda e: _epoch(from_raw, e)}
            if reduced_store is not None:
                from_reduced.use_store(reduced_store)
                ways["jpeg store, reduced decode"] = lambda e: _epoch(from_reduced, e)
            seconds = _alternate(ways, repeats)
            per_clip = {way: s / len(images) for way, s in seconds.items()}
            check_share = {"jpeg store": _checksum_seconds(from_jpeg) / seconds["jpeg store"],
                           "raw store": _checksum_seconds(from_raw) / seconds["raw store"], "images": None,
                           "jpeg store, reduced decode": None}
            for way in [w for w in ways if w != "reference"]:
                rows.append({"name": f"packed store, {name}, {way} ({resize}px/{crop})", "clip": name, "way": way,
                             "clips": len(images), "reference_s": per_clip["reference"], "fpar_s": per_clip[way],
                             "speedup": per_clip["reference"] / per_clip[way],
                             "jpeg_bytes": jpeg_bytes, "jpeg_store_bytes": _folder_bytes(jpeg_path),
                             "raw_store_bytes": _folder_bytes(raw_path), "checksum_share": check_share[way],
                             "frame_size": _frame_size(index.instances[0]),
                             "agreement": {"images": "same draws", "jpeg store, reduced decode": "same draws, "
                                           "pixels of a reduced-size decode (opt-in)"}.get(
                                 way, "same draws, same tensors as images")})
    finally:
        cv2.setNumThreads(threads[0])
        torch.set_num_threads(threads[1])
    return rows


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file() and not f.name.startswith("build.lock"))


def _frame_shape(inst: Instance) -> tuple[int, int]:
    from fpar.data.frames import image_size

    return image_size(inst.rgb[0].read_bytes())


def _frame_size(inst: Instance) -> str:
    from fpar.data.frames import image_size

    width, height = image_size(inst.rgb[0].read_bytes())
    return f"{width}x{height}"


def _epoch(dataset: ClipDataset, epoch: int) -> None:
    for i in range(len(dataset)):
        dataset[(i, epoch)]


def _checksum_seconds(dataset: ClipDataset) -> float:
    """Seconds one epoch of ``dataset`` spends hashing the frames it reads (the check on read)."""
    spent = 0.0
    real = store_reading.frame_hash

    def timed(data):
        nonlocal spent
        start = time.perf_counter()
        value = real(data)
        spent += time.perf_counter() - start
        return value

    store_reading.frame_hash = timed
    try:
        _epoch(dataset, 1)
    finally:
        store_reading.frame_hash = real
    return spent


def _alternate(ways: dict[str, Callable[[int], None]], repeats: int) -> dict[str, float]:
    """Median seconds of each way over ``repeats`` rounds; each round runs every way once, on the
    draws of a new epoch (epoch 0 is the warm-up)."""
    for fn in ways.values():
        fn(0)
    times: dict[str, list[float]] = {way: [] for way in ways}
    for epoch in range(1, repeats + 1):
        for way, fn in ways.items():
            start = time.perf_counter()
            fn(epoch)
            times[way].append(time.perf_counter() - start)
    return {way: statistics.median(t) for way, t in times.items()}


def _reference_epoch(dataset: ClipDataset, epoch: int) -> None:
    """The reference's clip loading: each JPEG opened with PIL, resized, flipped, cropped and
    normalised on its own, with the draws ``dataset`` makes for the same clip."""
    for i, inst in enumerate(dataset.instances):
        rng = dataset._rng(i, epoch)
        numbers = dataset._frame_numbers(inst, rng)
        draw = transforms.draw_train(rng)
        for modality in dataset.modalities:
            kinds = FILE_KINDS_OF_MODALITY[modality]
            key = "flow" if modality == "flow" else "rgb"
            np.stack([_reference_frame(inst, kind, k, draw, dataset.resize, dataset.crop)
                      for k in numbers[key] for kind in kinds])


def _reference_frame(inst: Instance, kind: str, number: int, draw: transforms.TrainDraw, resize: int,
                     crop: int) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(inst.frames(kind)[number - 1]) as im:
        im = im.convert("RGB" if kind == "rgb" else "L")
        w, h = im.size
        im = im.resize((int(resize * w / h), resize) if w > h else (resize, int(resize * h / w)), Image.BILINEAR)
        if draw.flip:
            im = ImageOps.mirror(im)
            if kind == "flow_x":
                im = ImageOps.invert(im)
        side = int(min(im.size) * draw.scale)
        y, x = transforms.crop_origin(im.height, im.width, side, draw.position)
        im = im.crop((x, y, x + side, y + side)).resize((crop, crop), Image.BILINEAR)
        values = np.asarray(im, np.float32) / 255.0
    if kind == "rgb":
        return np.moveaxis((values - transforms.RGB_MEAN) / transforms.RGB_STD, -1, 0)
    return (values - transforms.FLOW_MEAN) / transforms.FLOW_STD


def packed_store_rows(quick: bool, repeats: int) -> list[dict[str, Any]]:
    """``fpar bench``'s rows: clips per second from the jpeg store against the reference's PIL
    reading (128/112 px quick, else 256/224), each row naming the store's size against the JPEGs'."""
    from fpar.bench.data_rows import data_row

    resize, crop = (128, 112) if quick else (256, 224)
    rows = bench_packed_store(resize=resize, crop=crop, repeats=repeats)
    return [data_row(f"packed store {r['clip']}, {r['way']}", "packed", "clips/s", r["reference_s"], r["fpar_s"],
                     f"store {r['jpeg_store_bytes'] / r['jpeg_bytes']:.3f}x the JPEGs", clip=r["clip"], way=r["way"])
            for r in rows]


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m fpar.bench.packed_store", description=__doc__.split("\n")[0])
    parser.add_argument("--root", help="a dataset of JPEG frames (default: a synthetic one)")
    parser.add_argument("--size", default="456x256", help="synthetic frame size WxH (default EPIC's 456x256)")
    parser.add_argument("--resize", type=int, default=256)
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--grain", type=float, default=3.0, help="sensor noise added to synthetic RGB frames")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    rows = bench_packed_store(args.root, resize=args.resize, crop=args.crop, size=(width, height),
                              quality=args.quality, grain=args.grain, repeats=args.repeats)
    first = rows[0]
    print(f"frames {first['frame_size']}, JPEGs {first['jpeg_bytes'] / 1e6:.2f} MB, jpeg store "
          f"{first['jpeg_store_bytes'] / 1e6:.2f} MB ({first['jpeg_store_bytes'] / first['jpeg_bytes']:.3f}x), raw store "
          f"{first['raw_store_bytes'] / 1e6:.2f} MB ({first['raw_store_bytes'] / first['jpeg_bytes']:.1f}x)")
    for row in rows:
        print(f"{row['clip']:11} {row['way']:27} reference {row['reference_s'] * 1e3:7.1f} ms/clip, fpar "
              f"{row['fpar_s'] * 1e3:7.1f} ms/clip, {row['speedup']:5.1f}x"
              + (f", checksums {row['checksum_share'] * 100:.1f}% of its time" if row["checksum_share"] else ""))


if __name__ == "__main__":
    main()

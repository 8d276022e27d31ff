"""``fpar bench``'s data rows, on the CPU with one thread as a DataLoader worker or a flow job has:

* **loading** (clips/s): two-stream and two-in-one training clips, the reference's PIL per frame
  against the image tree (first epoch, later epochs with the frame cache) and the store
  (:mod:`fpar.bench.loading`), with each way's peak memory over one epoch;
* **flow** (pairs/s): TV-L1 per 320x240 frame pair, OpenCV's (the reference's flow) against fpar's
  PyTorch solver, checked by the mean end-point error between them; on a GPU the batched solver;
  and warp flow's camera homography per pair (no reference way: its cost next to a TV-L1 pair).

Each row has name, kind, unit, reference_s and fpar_s (seconds per unit), the rates, speedup, the
peak memories (None where not measured) and agreement; a new storage format or data path adds its
maker to ``fpar.bench.run.LOADING_ROWS``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fpar.bench.loading import bench_clip_loading
from fpar.bench.measure import Setting, compare, peak_memory, seconds, single_thread

def data_row(name: str, kind: str, unit: str, t_ref: float | None, t_ours: float, agreement: str,
             memory: tuple[int | None, int | None] = (None, None), **extra: Any) -> dict[str, Any]:
    """A row of seconds per unit (clip, frame pair, run); ``t_ref`` None: no reference way to compare with."""
    return {"name": name, "kind": kind, "unit": unit, **extra, "reference_s": t_ref, "fpar_s": t_ours,
            "reference_rate": 1 / t_ref if t_ref else None, "fpar_rate": 1 / t_ours,
            "speedup": t_ref / t_ours if t_ref else None, "reference_peak_memory": memory[0],
            "fpar_peak_memory": memory[1], "agreement": agreement}


def bench_loading(resize: int, crop: int, repeats: int) -> list[dict[str, Any]]:
    """Two-stream and two-in-one training clips per DataLoader worker (one thread): the reference's
    PIL per frame against the image tree's first epoch, its later epochs (cached) and the store
    (:mod:`fpar.bench.loading`, on a synthetic dataset of 320x240 frames)."""
    rows = bench_clip_loading(resize=resize, crop=crop, size=(320, 240), repeats=repeats,
                              peak_memory=lambda fn: peak_memory(fn, "cpu"))
    return [data_row(f"loading {r['clip']}, {r['way']}", "loading", "clips/s", r["reference_s"], r["fpar_s"],
                     f"{resize}px/{crop}, {r['agreement']}", (r["reference_peak_memory"], r["fpar_peak_memory"]),
                     clip=r["clip"], way=r["way"], clips=r["clips"]) for r in rows]


FLOW_SHIFT = (1.6, -0.7)  # px (x, y): the camera's motion between the two synthetic frames


def textured_pair(width: int = 320, height: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two grey frames like consecutive video frames: texture at several scales (edges, blobs,
    flat areas), the whole view moved by :data:`FLOW_SHIFT` (sub-pixel, as a turning head) and one
    square patch (a hand) moving its own way, with a little sensor noise on each."""
    import cv2

    rng = np.random.default_rng(seed)
    texture = np.zeros((height + 40, width + 40), np.float32)
    for sigma, weight in ((1.0, 0.3), (3.0, 0.5), (8.0, 1.0)):
        texture += weight * cv2.GaussianBlur(rng.standard_normal(texture.shape).astype(np.float32), (0, 0), sigma)
    texture = (texture - texture.min()) / (texture.max() - texture.min()) * 255

    def view(dx: float, dy: float) -> np.ndarray:
        shift = np.float32([[1, 0, 20 - dx], [0, 1, 20 - dy]])  # output(x) = texture(x + 20 - d)
        return cv2.warpAffine(texture, shift, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)

    first, second = view(0, 0), view(*FLOW_SHIFT)
    side = min(width, height) // 4
    patch = texture[:side, :side] * 0.6 + 60
    first[height // 3:height // 3 + side, width // 3:width // 3 + side] = patch
    second[height // 3 + 3:height // 3 + 3 + side, width // 3 - 4:width // 3 - 4 + side] = patch
    noisy = [np.clip(f + rng.normal(0, 1.0, f.shape), 0, 255).astype(np.uint8) for f in (first, second)]
    return noisy[0], noisy[1]


def bench_flow(repeats: int, setting: Setting, width: int = 320, height: int = 240,
               batch: int = 32) -> list[dict[str, Any]]:
    """TV-L1 per frame pair on one core: OpenCV's (the reference's flow) against fpar's PyTorch
    solver of the same algorithm, with the mean end-point error between the two as the check;
    on a GPU, fpar's batched pairs/s; and the cost of warp flow's camera-motion estimate."""
    import cv2

    from fpar.prepare.tvl1 import tvl1_flow
    from fpar.prepare.warp import camera_homography

    first, second = textured_pair(width, height)
    where = f"{width}x{height}"
    rows = []
    opencv = cv2.optflow.DualTVL1OpticalFlow_create() if hasattr(cv2, "optflow") else None
    with single_thread():
        ours_flow = tvl1_flow(first, second).numpy()
        ours_fn = lambda: tvl1_flow(first, second)  # noqa: E731
        if opencv is not None:
            theirs_flow = opencv.calc(first, second, None)
            epe = float(np.linalg.norm(ours_flow - theirs_flow, axis=-1).mean())
            # the background's flow is the camera's shift: the median ignores the patch
            off = float(np.hypot(*(np.median(ours_flow.reshape(-1, 2), axis=0) - FLOW_SHIFT)))
            t_ref, t_ours = compare(lambda: opencv.calc(first, second, None), ours_fn, repeats)
            rows.append(data_row(f"TV-L1 flow {where}, 1 core", "flow", "pairs/s", t_ref, t_ours,
                                 f"EPE to OpenCV's {epe:.3f}px; median off the true shift {off:.2f}px",
                                 method="tvl1", device="cpu", batch=1, epe_px=epe, shift_error_px=off))
        else:
            t_ref, t_ours = None, seconds(ours_fn, repeats)
            rows.append(data_row(f"TV-L1 flow {where}, 1 core", "flow", "pairs/s", None, t_ours,
                                 "no OpenCV TV-L1 here (opencv-contrib missing)", method="tvl1", device="cpu",
                                 batch=1))
        t_warp = seconds(lambda: camera_homography(first, second), repeats)
        homography = camera_homography(first, second)
        shift = homography[:2, 2] / homography[2, 2]
        error = float(np.hypot(shift[0] - FLOW_SHIFT[0], shift[1] - FLOW_SHIFT[1]))
        rows.append(data_row(f"warp flow: camera homography {where}", "flow", "pairs/s", None, t_warp,
                             f"+{100 * t_warp / t_ours:.0f}% on a TV-L1 pair; shift error {error:.2f}px",
                             method="homography", device="cpu", batch=1, shift_error_px=error))
    if setting.device == "cuda":
        pairs = [textured_pair(width, height, seed) for seed in range(batch)]  # pair 0 is the one above
        first_frames = torch.from_numpy(np.stack([pair[0] for pair in pairs])).cuda()
        second_frames = torch.from_numpy(np.stack([pair[1] for pair in pairs])).cuda()
        gpu = lambda: tvl1_flow(first_frames, second_frames)  # noqa: E731
        epe = float((gpu()[0].cpu() - torch.from_numpy(ours_flow)).norm(dim=-1).mean())
        t_gpu = seconds(gpu, repeats, "cuda") / batch
        against = t_ref if t_ref is not None else t_ours
        rows.append(data_row(f"TV-L1 flow {where}, cuda, {batch} pairs/batch", "flow", "pairs/s", against, t_gpu,
                             f"against {'OpenCV' if t_ref is not None else 'fpar'} on 1 core; EPE to CPU {epe:.3f}px",
                             method="tvl1", device="cuda", batch=batch, epe_px=epe))
    return rows

"""What a model looked at in one clip: CAM attention GIF, MS head predictions against the motion
maps, and the two-in-one modulation maps (the report's §5 figures, for any video)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from fpar.models.ms_task import ms_target
from fpar.pictures import denormalize, overlay_maps
from fpar.viz.cam import caption_frames, save_gif
from fpar.viz.plots import plot_map_grid


def explain_clip(clip: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor], out_dir: str | os.PathLike,
                 *, title: str = "", fps: float = 4.0, predicted: str | None = None,
                 probability: float | None = None, true: str | None = None) -> list[Path]:
    """Write the pictures that ``outputs`` (a batch of one) allow; returns their paths.

    * ``cam.gif``: the attention map over each sampled frame (models with CAM attention), a band
      under each naming the frame (``k/T`` of the sampled frames), the ``predicted`` class with its
      ``probability`` and, where known, the ``true`` one;
    * ``ms.png``: motion maps, the same downsampled to the head's grid (the target), and the MS
      head's predictions (sigmoid of its outputs) per frame;
    * ``modulation.png``: two-in-one's conv1 output before modulation, scale, shift and after,
      averaged over channels, per frame.
    """
    out_dir = Path(out_dir)
    written = []
    frames = denormalize(clip["frames"]) if "frames" in clip else None
    if "attention" in outputs and frames is not None:
        path = out_dir / "cam.gif"
        overlaid = overlay_maps(frames, outputs["attention"][0].float().cpu().numpy())
        scale = max(1, 224 // frames.shape[1])
        overlaid = overlaid.repeat(scale, axis=1).repeat(scale, axis=2)
        guess = None if predicted is None else \
            f"predicted {predicted}" + ("" if probability is None else f" ({100 * probability:.0f}%)")
        lines = [line for line in (guess, None if true is None else f"true {true}") if line]
        save_gif(caption_frames(overlaid, lines), path, fps=fps)
        written.append(path)
    if "ms" in outputs:
        grid = int(round(outputs["ms"].shape[-1] ** 0.5))
        rows = [] if frames is None else [("frames", frames)]
        if "mmaps" in clip:
            maps = clip["mmaps"].float()  # (T, 1, H, W)
            target = ms_target(maps.unsqueeze(0), grid * grid)[0].reshape(-1, grid, grid)  # what the loss compares
            rows += [("motion maps", maps[:, 0].numpy()), (f"target {grid}x{grid}", target.numpy())]
        predictions = torch.sigmoid(outputs["ms"][0].float()).reshape(-1, grid, grid)
        rows.append(("MS head", predictions.cpu().numpy()))
        path = out_dir / "ms.png"
        plot_map_grid(rows, path, title=title, value_range=(0.0, 1.0))
        written.append(path)
    if "scale" in outputs:
        rows = [] if frames is None else [("frames", frames)]
        rows += [(name, outputs[name][0].float().mean(dim=1).cpu().numpy()) for name in ("pre", "scale", "shift", "post")]
        path = out_dir / "modulation.png"
        plot_map_grid(rows, path, title=title, cmap="magma")
        written.append(path)
    return written

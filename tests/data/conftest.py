"""Helpers that write small datasets into ``tmp_path`` for the data-layer tests."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest

Painter = Callable[[str, int, int, int], np.ndarray]


def ramp(kind: str, number: int, height: int, width: int) -> np.ndarray:
    """A frame whose pixels tell where they came from: x position and frame number.

    Channel 0 (or the grey value) is the column index, so a crop's first column reveals its
    x origin; channel 1 is the frame number; channel 2 is the row index.
    """
    ys, xs = np.mgrid[0:height, 0:width]
    if kind == "rgb":
        return np.stack([xs, np.full_like(xs, number), ys], axis=-1).astype(np.uint8)
    return xs.astype(np.uint8)


def write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), image)


def add_processed_instance(
    root: Path,
    subject: str,
    class_name: str,
    instance: str,
    n: int,
    *,
    size: tuple[int, int] = (40, 30),
    n_mmaps: int | None = None,
    n_flow: int | None = None,
    paint: Painter = ramp,
) -> Path:
    """Write one instance of the processed layout with ``n`` frames (counts can be made to differ)."""
    width, height = size
    inst = root / "processed_frames" / subject / class_name / instance
    for k in range(1, n + 1):
        write_png(inst / "rgb" / f"rgb{k:04d}.png", paint("rgb", k, height, width))
    for k in range(1, (n if n_mmaps is None else n_mmaps) + 1):
        write_png(inst / "mmaps" / f"map{k:04d}.png", paint("mmaps", k, height, width))
    for axis in ("x", "y"):
        folder = root / f"flow_{axis}_processed" / subject / class_name / instance
        for k in range(1, (n if n_flow is None else n_flow) + 1):
            write_png(folder / f"flow_{axis}_{k:05d}.png", paint(f"flow_{axis}", k, height, width))
    return inst


@pytest.fixture
def processed_root(tmp_path: Path) -> Path:
    """Two subjects, three classes (``pour_tea`` only for S2), eight frames per instance."""
    root = tmp_path / "ds"
    for subject in ("S1", "S2"):
        for class_name in ("close_jam", "open_jam"):
            add_processed_instance(root, subject, class_name, "1", 8)
    add_processed_instance(root, "S2", "pour_tea", "1", 8)
    return root

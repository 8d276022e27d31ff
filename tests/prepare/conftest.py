"""Small synthetic videos for the prepare tests: a textured background and a textured square moving on it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image


def texture(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth random texture, uint8 grey: every patch is distinct, so flow is well defined."""
    noise = np.random.default_rng(seed).random((height, width)) * 255
    return cv2.GaussianBlur(noise, (0, 0), 1.5).astype(np.uint8)


def moving_square(n: int = 8, height: int = 72, width: int = 96, step: int = 2) -> list[np.ndarray]:
    """``n`` RGB frames: a still background and a 24 px square moving ``step`` px right per frame."""
    background = texture(height, width, seed=0)
    square = texture(24, 24, seed=1)
    frames = []
    for k in range(n):
        frame = background.copy()
        x = 20 + step * k
        frame[24:48, x : x + 24] = square
        frames.append(cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB))
    return frames


def write_avi(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_gif(path: Path, frames: list[np.ndarray], duration_ms: int = 50) -> Path:
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return path


GTEA_LABELS = """\
<open><jam> (1-6) [0]
<stir><cup> (3-8)

this line is not a label
<put><tea> (2-7)
<close><jam,lid> (20-30)
<take> <bread> ( 4 - 9 )
"""


def make_raw_gtea(root: Path, frames_dir: str = "png", labels_dir: str = "labels") -> None:
    """A raw GTEA tree: one video S2_Jam_C1 of 10 frames (numbered from 1, as GTEA's png files are)
    and its label file: a plain line, Ego-RNN's rename (stir_cup) and drop (put_tea), a malformed
    line (line 4), a segment past the last frame, and a line with odd spacing."""
    folder = root / frames_dir / "S2_Jam_C1"
    folder.mkdir(parents=True)
    for k, frame in enumerate(moving_square(n=10), 1):
        cv2.imwrite(str(folder / f"{k:010d}.png"), frame)
    (root / labels_dir).mkdir()
    (root / labels_dir / "S2_Jam_C1.txt").write_text(GTEA_LABELS)


@pytest.fixture
def square_frames() -> list[np.ndarray]:
    return moving_square()


@pytest.fixture
def square_avi(tmp_path: Path, square_frames: list[np.ndarray]) -> Path:
    return write_avi(tmp_path / "clip.avi", square_frames)

"""Helpers for the engine tests: a tiny processed-layout dataset and configs that train in seconds."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import cv2
import numpy as np
import yaml

SUBJECTS = ("S1", "S2", "S3")
CLASSES = ("close_red", "open_green", "stir_blue")
COLOURS = ((220, 40, 40), (40, 200, 60), (40, 60, 220))
DIRECTIONS = ((0, 2), (0, -2), (2, 0))  # (dx, dy) px per frame: the class's motion
SIZE = 48
FRAMES = 6


def write_dataset(root: Path, videos: int = 2, seed: int = 0) -> Path:
    """ROOT/processed_frames/S/<class>/<n>/{rgb,mmaps}, ROOT/flow_{x,y}_processed/S/<class>/<n>.

    S2 (validation) has one video more of the first class: an odd count, so a sampler that pads
    shards for two processes would score a clip twice."""
    rng = np.random.default_rng(seed)
    for subject in SUBJECTS:
        for c, (name, colour, (dx, dy)) in enumerate(zip(CLASSES, COLOURS, DIRECTIONS)):
            for v in range(1, videos + 1 + (subject == "S2" and c == 0)):
                folder = root / "processed_frames" / subject / name / str(v)
                flow_x = root / "flow_x_processed" / subject / name / str(v)
                flow_y = root / "flow_y_processed" / subject / name / str(v)
                for d in (folder / "rgb", folder / "mmaps", flow_x, flow_y):
                    d.mkdir(parents=True)
                x, y = rng.integers(12, 24, size=2)
                for t in range(1, FRAMES + 1):
                    rgb = rng.integers(90, 140, size=(SIZE, SIZE, 3), dtype=np.uint8)
                    mask = np.zeros((SIZE, SIZE), np.uint8)
                    px, py = x + dx * t, y + dy * t
                    mask[py:py + 12, px:px + 12] = 255
                    rgb[mask > 0] = colour
                    fx = np.full((SIZE, SIZE), 128, np.uint8)
                    fy = np.full((SIZE, SIZE), 128, np.uint8)
                    fx[mask > 0] = 128 + 16 * dx
                    fy[mask > 0] = 128 + 16 * dy
                    cv2.imwrite(str(folder / "rgb" / f"rgb{t:04d}.png"), rgb[:, :, ::-1])
                    cv2.imwrite(str(folder / "mmaps" / f"map{t:04d}.png"), mask)
                    cv2.imwrite(str(flow_x / f"flow_x_{t:05d}.png"), fx)
                    cv2.imwrite(str(flow_y / f"flow_y_{t:05d}.png"), fy)
    return root


TINY = {
    "experiment": "tiny",
    "model": {"name": "rgb_attention", "backbone": "resnet18", "pretrained": None, "mem_size": 16},
    "data": {"train_subjects": ["S1", "S3"], "val_subjects": ["S2"], "modalities": ["frames"],
             "num_frames": 2, "stack_size": 2, "resize": 48, "crop": 48, "workers": 0},
    "stage": {"name": "rgb_stage2"},
    "optimizer": {"name": "adam", "lr": 1.0e-3},
    "scheduler": {"name": "multistep", "milestones": [2]},
    # fp32 pinned: the tests' numbers must not depend on whether this CPU has bf16 instructions
    # (precision auto is tested on its own in test_hardware.py)
    "trainer": {"epochs": 2, "batch_size": 4, "val_every": 1, "accelerator": "cpu", "log_every_n_steps": 1,
                "precision": "32-true"},
    # validation on S2, whose clip counts the tests rely on; the default (holdout) is tested in
    # tests/engine/test_selection.py
    "selection": "test",
}


def tiny_config(**sections) -> dict:
    """TINY with some sections merged over (one level deep)."""
    config = copy.deepcopy(TINY)
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = value
    return config


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def subprocess_env() -> dict[str, str]:
    """Environment for `python -m fpar ...` test subprocesses: single-threaded, like the tests."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


FLOW = {"name": "flow_resnet", "backbone": "resnet18", "pretrained": None, "stack_size": 2}


def flow_config(**sections) -> dict:
    """The tiny flow network: the whole network trains, so its loss falls within two epochs."""
    config = tiny_config(stage={"name": "flow"}, data={"modalities": ["flow"]}, **sections)
    config["model"] = dict(FLOW)
    return config

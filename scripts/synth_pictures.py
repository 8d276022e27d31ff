#!/usr/bin/env python3
"""The pictures of the synthetic dataset in docs/images (one RGB frame per class, flow, motion map).

Documentation tooling, not part of the package. Regenerate them with::

    fpar synth /tmp/synth && python scripts/synth_pictures.py /tmp/synth docs/images
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402

from fpar.data import Instance, load_index  # noqa: E402

FRAME = 12  # a frame from the middle of a 24-frame video


def save_pictures(root: str | Path, out: str | Path, subject: str = "S1") -> list[Path]:
    """Write ``synth_classes.png``, ``synth_flow.png`` and ``synth_mmap.png`` into ``out``."""
    index = load_index(root)
    first = {}
    for inst in index.instances:
        if inst.subject == subject:
            first.setdefault(inst.class_name, inst)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return [
        _classes_grid(first, out / "synth_classes.png"),
        _flow_figure([first[c] for c in _examples(first)], out / "synth_flow.png"),
        _mmap_figure([first[c] for c in _examples(first)], out / "synth_mmap.png"),
    ]


def _examples(first: dict[str, Instance]) -> list[str]:
    # One class per verb, so the figure shows each kind of motion.
    verbs: dict[str, str] = {}
    for name in sorted(first):
        verbs.setdefault(name.split("_")[0], name)
    return list(verbs.values())


def _frame(inst: Instance, kind: str):
    path = inst.frames(kind)[min(FRAME, len(inst.frames(kind))) - 1]
    if kind != "rgb":
        return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)  # OpenCV 4.10 has no IMREAD_COLOR_RGB


def _classes_grid(first: dict[str, Instance], path: Path) -> Path:
    names = sorted(first)
    cols = 4
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.1 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, name in zip(axes.flat, names):
        ax.imshow(_frame(first[name], "rgb"))
        ax.set_title(name, fontsize=10)
    return _save(fig, path)


def _flow_figure(instances: list[Instance], path: Path) -> Path:
    """RGB, x-flow and y-flow (grey: 128 = still, darker = left/up, lighter = right/down)."""
    fig, axes = plt.subplots(len(instances), 3, figsize=(7.5, 2.1 * len(instances)), squeeze=False)
    for row, inst in zip(axes, instances):
        row[0].imshow(_frame(inst, "rgb"))
        row[0].set_ylabel(inst.class_name, fontsize=10)
        for ax, kind in zip(row[1:], ("flow_x", "flow_y")):
            ax.imshow(_frame(inst, kind), cmap="gray", vmin=0, vmax=255)
    for ax, title in zip(axes[0], ("RGB", "flow x", "flow y")):
        ax.set_title(title, fontsize=10)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return _save(fig, path)


def _mmap_figure(instances: list[Instance], path: Path) -> Path:
    """RGB beside its motion map: only the hand and what it moves, not the camera's motion."""
    fig, axes = plt.subplots(2, len(instances), figsize=(2.4 * len(instances), 4.2), squeeze=False)
    for col, inst in enumerate(instances):
        axes[0, col].imshow(_frame(inst, "rgb"))
        axes[0, col].set_title(inst.class_name, fontsize=10)
        axes[1, col].imshow(_frame(inst, "mmaps"), cmap="gray", vmin=0, vmax=255)
    axes[1, 0].set_ylabel("motion map", fontsize=10)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=80, metadata={"Software": None})  # no version stamp: same data, same file
    plt.close(fig)
    return path


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python scripts/synth_pictures.py DATASET OUT_DIR")
    for written in save_pictures(sys.argv[1], sys.argv[2]):
        print(written)

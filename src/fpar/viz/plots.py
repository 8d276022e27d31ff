"""Static figures: training curves, confusion matrices and grids of small maps (PNG)."""

from __future__ import annotations

import os
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402

from fpar.engine.metric_registry import MONITORED, file_column  # noqa: E402
from fpar.io import atomic_path  # noqa: E402
from fpar.pictures import confusion_rates  # noqa: E402


def _save(fig, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_curves(rows: Sequence[dict], path: str | os.PathLike, title: str = "") -> None:
    """Loss (train and validation) and validation accuracy per epoch.

    ``rows``: dicts with ``epoch`` and any of ``train_loss``, ``val_loss``, ``val_accuracy``
    (missing or None values are skipped, since validation runs only every few epochs).
    """
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    # every point marked: a 1-epoch run (one point per curve) shows, and sparse validations read as such
    for key, style in (("train_loss", ".-"), ("val_loss", "o-")):
        points = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
        if points:
            ax_loss.plot(*zip(*points), style, label=key.replace("_", " "))
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    monitored = file_column(MONITORED)  # the accuracy that chooses best.ckpt
    points = [(r["epoch"], 100 * r[monitored]) for r in rows if r.get(monitored) is not None]
    if points:
        ax_acc.plot(*zip(*points), "o-", color="tab:green")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("validation accuracy (%)")
    ax_acc.set_ylim(0, 100)
    epochs = [r["epoch"] for r in rows if r.get("epoch") is not None]
    for ax in (ax_loss, ax_acc):  # epochs are whole: no tick at 2.5 (nor at 0.96 around a single epoch)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        if epochs:  # both panels over every epoch, with room around a single one
            margin = max(0.5, 0.03 * (max(epochs) - min(epochs)))
            ax.set_xlim(min(epochs) - margin, max(epochs) + margin)
    if title:
        fig.suptitle(title)
    _save(fig, path)


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: str | os.PathLike,
                   title: str = "") -> None:
    """Row-normalised confusion matrix (rows: true class, columns: predicted)."""
    rates = confusion_rates(matrix)
    size = max(4.0, 0.28 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(class_names)), class_names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(class_names)), class_names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title)
    _save(fig, path)


def plot_correlation(matrix: np.ndarray, names: Sequence[str], path: str | os.PathLike, title: str = "") -> None:
    """A symmetric correlation matrix in [-1, 1] (e.g. of class-mean features)."""
    size = max(4.0, 0.28 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title)
    _save(fig, path)


def plot_map_grid(rows: Sequence[tuple[str, np.ndarray]], path: str | os.PathLike, title: str = "",
                  cmap: str = "viridis", value_range: tuple[float, float] | None = None) -> None:
    """One row per named stack of maps ``(T, h, w)`` (or RGB ``(T, H, W, 3)``), one column per frame.

    Used for motion maps before/after downsampling, the MS head's predictions and the two-in-one
    modulation maps, side by side over time. ``value_range`` fixes the colour scale of every map
    (e.g. (0, 1) for probabilities); by default each row spans its own range. Every row of maps
    gets a colour bar saying what its colours mean.
    """
    columns = max(len(maps) for _, maps in rows)
    # shown at a page's width (the report: about 1200 px), a wide strip is scaled down: its labels grow with it
    label_size = max(9.0, 1.1 * columns)
    fig, axes = plt.subplots(len(rows), columns, figsize=(1.6 * columns + 0.8, 1.6 * len(rows)), squeeze=False)
    for r, (name, maps) in enumerate(rows):
        pictures = [m for m in maps if np.ndim(m) != 3]
        vmin, vmax = value_range or ((float(np.min(pictures)), float(np.max(pictures))) if pictures else (None, None))
        image = None
        for c in range(columns):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(maps):
                if np.ndim(maps[c]) == 3:
                    ax.imshow(maps[c])
                else:
                    image = ax.imshow(maps[c], cmap=cmap, vmin=vmin, vmax=vmax)
        axes[r][0].set_title(name, fontsize=label_size, loc="left")
        if image is not None:
            bar = fig.colorbar(image, ax=list(axes[r]), fraction=0.02, pad=0.01)
            bar.ax.tick_params(labelsize=0.8 * label_size)
    if title:
        fig.suptitle(title, fontsize=label_size)
    _save(fig, path)

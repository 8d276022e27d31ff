import numpy as np
import pytest
import torch
from PIL import Image

from fpar.data.normalization import RGB_MEAN, RGB_STD
from fpar.viz import denormalize, overlay_maps, plot_confusion, plot_curves, plot_map_grid, save_gif


def test_denormalize_inverts_imagenet_normalisation():
    rgb = np.random.default_rng(0).integers(0, 256, size=(2, 8, 6, 3)).astype(np.uint8)
    normalised = (rgb / 255.0 - RGB_MEAN) / RGB_STD
    frames = torch.from_numpy(normalised).permute(0, 3, 1, 2).float()
    assert np.array_equal(denormalize(frames), rgb)


def test_overlay_heats_where_the_map_peaks():
    frames = np.full((1, 28, 28, 3), 128, dtype=np.uint8)
    attention = np.zeros((1, 7, 7), dtype=np.float32)
    attention[0, 0, 6] = 1.0  # top-right cell
    out = overlay_maps(frames, attention)
    assert out.shape == frames.shape and out.dtype == np.uint8
    top_right, bottom_left = out[0, 1, 26], out[0, 26, 1]
    assert top_right[0] > top_right[2]  # red (hot) there
    assert bottom_left[2] > bottom_left[0]  # blue (cold) far away


def test_gif_has_every_frame(tmp_path):
    frames = np.stack([np.full((10, 12, 3), 40 * i, dtype=np.uint8) for i in range(4)])
    path = tmp_path / "cam.gif"
    save_gif(frames, path, fps=5)
    with Image.open(path) as gif:
        assert gif.n_frames == 4 and gif.size == (12, 10)
    assert [p.name for p in tmp_path.iterdir()] == ["cam.gif"]  # no temp file left behind


@pytest.mark.parametrize("epochs", [1, 5])
def test_curves_mark_every_point_on_whole_epoch_ticks(epochs, tmp_path, monkeypatch):
    from fpar.viz import plots

    drawn = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: drawn.append(fig))
    rows = [{"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.1 / e if e % 2 == 0 or e == epochs else None,
             "val_accuracy": 0.1 * e if e % 2 == 0 or e == epochs else None} for e in range(1, epochs + 1)]
    plot_curves(rows, tmp_path / "curves.png")
    for ax in drawn[0].axes:
        drawn[0].canvas.draw()
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)  # no tick at 0.96 or 2.5
        assert ax.lines and all(line.get_marker() not in (None, "None", "") for line in ax.lines)  # a 1-epoch run shows


def test_plots_write_png_files(tmp_path):
    plot_curves([{"epoch": 1, "train_loss": 2.0}, {"epoch": 2, "train_loss": 1.5, "val_loss": 1.7, "val_accuracy": 0.4}],
                tmp_path / "curves.png")
    plot_confusion(np.array([[3, 1], [0, 4]]), ["open_jar", "close_jar"], tmp_path / "confusion.png")
    plot_map_grid([("motion", np.random.rand(3, 7, 7)), ("frames", np.zeros((2, 8, 8, 3), np.uint8))],
                  tmp_path / "maps.png")
    for name in ("curves.png", "confusion.png", "maps.png"):
        with Image.open(tmp_path / name) as im:
            assert im.format == "PNG" and im.width > 100

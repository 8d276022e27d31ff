"""ClipDataset items: shapes, frame choice, one shared crop/flip per clip, broken frames, cache."""

import numpy as np
import pytest
import torch

from fpar.data import ClipDataset, ClipSettings, FrameCache, load_index, normalize_batch
from fpar.data.transforms import RGB_MEAN, RGB_STD
from fpar.errors import FparError

from .conftest import add_processed_instance, ramp, write_png

ALL = ("frames", "flow", "mmaps")


def numbered(kind: str, number: int, height: int, width: int) -> np.ndarray:
    """Flat frames whose value is the frame number (x: 10k, y: 10k + 5), to read back the order."""
    value = {"rgb": number, "mmaps": number, "flow_x": 10 * number, "flow_y": 10 * number + 5}[kind]
    shape = (height, width, 3) if kind == "rgb" else (height, width)
    return np.full(shape, value, np.uint8)


def to_uint8_rgb(frames: torch.Tensor) -> np.ndarray:
    """Undo the ImageNet normalisation of a (..., 3, H, W) tensor."""
    array = frames.movedim(-3, -1).numpy() * RGB_STD + RGB_MEAN
    return np.rint(array * 255).astype(int)


def to_uint8_flow(flow: torch.Tensor) -> np.ndarray:
    return np.rint((flow.numpy() * 0.226 + 0.449) * 255).astype(int)


@pytest.fixture
def numbered_instance(tmp_path):
    add_processed_instance(tmp_path, "S1", "open_jam", "1", 8, paint=numbered)
    return load_index(tmp_path).instances


def test_item_shapes_types_and_only_the_modalities_asked_for(processed_root):
    instances = load_index(processed_root).instances
    item = ClipDataset(instances, ClipSettings(modalities=ALL, num_frames=4, resize=24, crop=16))[0]
    assert item["frames"].shape == (4, 3, 16, 16) and item["frames"].dtype == torch.float32
    assert item["flow"].shape == (10, 16, 16)
    assert item["mmaps"].shape == (4, 1, 16, 16) and 0 <= item["mmaps"].min() <= item["mmaps"].max() <= 1
    assert item["label"].dtype == torch.int64 and item["label"].ndim == 0
    assert item["id"] == "S1/close_jam/1"
    only_flow = ClipDataset(instances, ClipSettings(modalities=("flow",), flow_mode="pairs", num_frames=3, resize=24, crop=16))[1]
    assert set(only_flow) == {"flow", "label", "id"} and only_flow["flow"].shape == (3, 2, 16, 16)


@pytest.mark.parametrize("views, count", [("five", 5), ("ten", 10)])
def test_multi_view_items_get_a_leading_view_axis(processed_root, views, count):
    instances = load_index(processed_root).instances
    item = ClipDataset(instances, ClipSettings(modalities=ALL, num_frames=2, resize=20, crop=12), views=views)[0]
    assert item["frames"].shape == (count, 2, 3, 12, 12)
    assert item["flow"].shape == (count, 10, 12, 12)
    assert item["mmaps"].shape == (count, 2, 1, 12, 12)


def test_eval_frame_numbers_rgb_and_flow_stack_order(numbered_instance):
    item = ClipDataset(numbered_instance, ClipSettings(modalities=ALL, num_frames=4, resize=30, crop=20))[0]
    # rgb: floor(linspace(1, 8, 4, endpoint=False)) = 1, 2, 4, 6; flow: centre start ceil(3/2) = 2.
    assert to_uint8_rgb(item["frames"])[:, 0, 0, 1].tolist() == [1, 2, 4, 6]
    assert np.rint(item["mmaps"][:, 0, 0, 0].numpy() * 255).tolist() == [1, 2, 4, 6]
    assert to_uint8_flow(item["flow"])[:, 0, 0].tolist() == [20, 25, 30, 35, 40, 45, 50, 55, 60, 65]


def test_pairs_mode_uses_the_same_frames_for_rgb_and_flow(numbered_instance):
    item = ClipDataset(numbered_instance, ClipSettings(modalities=ALL, flow_mode="pairs", num_frames=4, resize=30, crop=20))[0]
    # n = 8 > T = 4: consecutive frames from ceil(4/2) = 2.
    assert to_uint8_rgb(item["frames"])[:, 0, 0, 1].tolist() == [2, 3, 4, 5]
    assert to_uint8_flow(item["flow"])[:, :, 0, 0].tolist() == [[20, 25], [30, 35], [40, 45], [50, 55]]


def test_one_crop_and_flip_shared_by_every_frame_and_modality(processed_root):
    # ramp frames: rgb channel 0, mmaps, flow x and flow y all hold the column index.
    instances = load_index(processed_root).instances
    seen_flips, seen_columns = set(), set()
    for seed in range(12):
        item = ClipDataset(instances, ClipSettings(modalities=ALL, num_frames=4, resize=30, crop=16), train=True, seed=seed)[0]
        columns = to_uint8_rgb(item["frames"])[..., 0]  # (T, H, W)
        assert (columns == columns[0]).all()  # every frame cropped the same way
        maps = np.rint(item["mmaps"][:, 0].numpy() * 255)
        flow = to_uint8_flow(item["flow"])
        np.testing.assert_array_equal(maps, columns)
        np.testing.assert_array_equal(flow[1::2], np.broadcast_to(columns[0], flow[1::2].shape))
        flipped = columns[0, 0, 0] > columns[0, 0, -1]
        expected_x = 255 - flow[1::2] if flipped else flow[1::2]
        # Inversion precedes the resize (as the reference), so rounding may differ by one level.
        np.testing.assert_allclose(flow[0::2], expected_x, atol=1)
        seen_flips.add(bool(flipped))
        seen_columns.add(int(columns[0, 0, 0]))
    assert seen_flips == {True, False} and len(seen_columns) > 2  # the draws really vary


def test_training_draws_are_reproducible_by_seed_and_epoch(processed_root):
    instances = load_index(processed_root).instances
    ds = ClipDataset(instances, ClipSettings(modalities=("flow",), resize=30, crop=16), train=True, seed=3)
    first = [ds[i]["flow"] for i in range(len(ds))]
    assert all(torch.equal(a, ds[i]["flow"]) for i, a in enumerate(first))
    assert torch.equal(ds[(2, 0)]["flow"], first[2])
    ds.set_epoch(1)
    assert not all(torch.equal(a, ds[i]["flow"]) for i, a in enumerate(first))
    assert torch.equal(ds[(2, 1)]["flow"], ds[2]["flow"])


def test_corrupt_and_missing_frames_raise_naming_the_file_and_instance(numbered_instance):
    ds = ClipDataset(numbered_instance, ClipSettings(modalities=("frames",), num_frames=4, resize=30, crop=20))
    bad = numbered_instance[0].rgb[1]  # frame 2 is sampled
    bad.write_bytes(b"not a png at all")
    with pytest.raises(FparError, match=r"S1/open_jam/1.*rgb0002\.png.*corrupt"):
        ds[0]
    bad.write_bytes(b"")
    with pytest.raises(FparError, match="zero-byte"):
        ds[0]
    bad.unlink()
    with pytest.raises(FparError, match=r"S1/open_jam/1.*rgb0002\.png"):
        ds[0]


def test_truncated_png_is_refused(numbered_instance):
    path = numbered_instance[0].mmaps[0]
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(FparError, match=r"map0001\.png: truncated"):
        ClipDataset(numbered_instance, ClipSettings(modalities=("mmaps",), num_frames=4, resize=30, crop=20))[0]


def test_frame_cache_serves_later_epochs_without_reading_files(numbered_instance):
    cache = FrameCache()
    ds = ClipDataset(numbered_instance, ClipSettings(modalities=("frames", "flow"), num_frames=4, resize=30, crop=20), cache=cache)
    before = ds[0]
    assert len(cache) == 4 + 10 and cache.nbytes > 0
    for path in numbered_instance[0].rgb + numbered_instance[0].flow_x:
        path.unlink()
    assert torch.equal(ds[0]["frames"], before["frames"])
    tiny = ClipDataset(numbered_instance, ClipSettings(modalities=("frames",), num_frames=4, resize=30, crop=20), cache=FrameCache(max_bytes=10))
    with pytest.raises(FparError):  # nothing fits, so the (deleted) files are read again
        tiny[0]


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"modalities": ("depth",)}, "modalities"),
        ({"modalities": ["frames", "frames"]}, "each modality once"),
        ({"flow_mode": "warp"}, "flow_mode"),
        ({"resize": 16, "crop": 32}, "must not exceed resize"),
    ],
)
def test_bad_clip_settings_name_the_setting(settings, message):
    with pytest.raises(FparError, match=message) as error:  # one line, as a config file's error
        ClipSettings(**settings)
    assert str(error.value).startswith("ClipSettings: ") and "\n" not in str(error.value)


def test_multi_view_training_is_refused(processed_root):
    with pytest.raises(FparError, match="evaluation only"):
        ClipDataset(load_index(processed_root).instances, ClipSettings(), views="ten", train=True)
    with pytest.raises(FparError, match="views must be one of center, five, ten"):
        ClipDataset(load_index(processed_root).instances, ClipSettings(), views="six")


def test_missing_modality_is_an_error(tmp_path):
    for k in range(1, 6):
        write_png(tmp_path / "frames" / "S1" / "a" / "1" / f"image_{k:05d}.jpg", ramp("rgb", k, 12, 16))
    instances = load_index(tmp_path).instances
    with pytest.raises(FparError, match="S1/a/1: no mmaps frames"):
        ClipDataset(instances, ClipSettings(modalities=("mmaps",), resize=12, crop=8))[0]


@pytest.mark.parametrize("train, views, flow_mode", [(True, "center", "stack"), (False, "ten", "pairs")])
def test_uint8_items_normalised_later_equal_the_normalised_items(processed_root, train, views, flow_mode):
    """``normalize=False`` + :func:`normalize_batch` (what the device does) gives the dataset's own tensors."""
    instances = load_index(processed_root).instances
    settings = ClipSettings(modalities=ALL, num_frames=3, resize=24, crop=16, flow_mode=flow_mode)
    normalised = ClipDataset(instances, settings, train=train, views=views, seed=5)
    raw = ClipDataset(instances, settings, train=train, views=views, seed=5, normalize=False)
    for key in [(0, 0), (1, 3)]:
        want, item = normalised[key], raw[key]
        assert all(item[m].dtype == torch.uint8 and item[m].shape == want[m].shape for m in ("frames", "flow", "mmaps"))
        batch = {k: v.unsqueeze(0) if isinstance(v, torch.Tensor) else v for k, v in item.items()}
        got = normalize_batch(batch)
        for m in ("frames", "flow", "mmaps"):
            assert got[m].dtype == torch.float32
            torch.testing.assert_close(got[m][0], want[m], rtol=0, atol=1e-6)
        assert torch.equal(got["label"][0], want["label"])

"""A frame of another size within an instance: `fpar data check` reports it, and every reader
(the image files and the dataset store) refuses it, naming the file, instead of resizing it into
a clip that looks whole."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import pytest

from fpar.data import ClipDataset, load_index
from fpar.data.check import check_dataset
from fpar.data.settings import ClipSettings
from fpar.data.store import build_store
from fpar.data.synth import generate
from fpar.errors import FparError


@pytest.fixture(scope="module")
def clean_root(module_tmp) -> Path:
    return generate(module_tmp("synth") / "ds", subjects=1, classes=2, videos_per_class=1, frames=8,
                    size=(64, 48), seed=1)


def with_odd_frame(clean_root: Path, tmp_path: Path, tree: str, name: str) -> tuple[Path, Path]:
    """A copy of the dataset whose frame ``name`` of instance S1/open_jar/1 is twice the size: the same
    picture, so resizing alone would hide it."""
    root = shutil.copytree(clean_root, tmp_path / "ds")
    folder = root / tree / "S1" / "open_jar" / "1"
    odd = next(p for p in folder.rglob(name))
    image = cv2.imread(str(odd), cv2.IMREAD_UNCHANGED)
    assert cv2.imwrite(str(odd), cv2.resize(image, None, fx=2, fy=2))
    return root, odd


EXPECTED = "frame is 128x96, the instance's others 64x48 (frames of one instance must share one size)"


@pytest.mark.parametrize("modality, tree, name", [
    ("frames", "processed_frames", "rgb0004.png"),
    ("flow", "flow_y_processed", "flow_y_00003.png"),
    ("mmaps", "processed_frames", "map0004.png"),
])
def test_the_image_path_refuses_a_frame_of_another_size_naming_it(modality, tree, name, clean_root, tmp_path):
    root, odd = with_odd_frame(clean_root, tmp_path, tree, name)
    assert any(p.path == str(odd) for p in check_dataset(root, progress=False).problems)  # as data check says
    index = load_index(root)
    settings = ClipSettings(modalities=[modality], num_frames=8, stack_size=5, resize=48, crop=40)
    dataset = ClipDataset([i for i in index.instances if i.instance_id == "S1/open_jar/1"], settings)
    with pytest.raises(FparError) as caught:
        dataset[0]
    assert str(caught.value) == f"instance S1/open_jar/1: {odd}: {EXPECTED}"


def test_the_store_refuses_a_frame_of_another_size_naming_it(clean_root, tmp_path):
    root, odd = with_odd_frame(clean_root, tmp_path, "processed_frames", "rgb0004.png")
    with pytest.raises(FparError) as caught:
        build_store(root, tmp_path / "store", resize=48, progress=False)
    assert str(caught.value) == f"instance S1/open_jar/1: {odd}: {EXPECTED}"

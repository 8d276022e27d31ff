"""import_gtea: raw GTEA frame folders + label files -> processed layout, Ego-RNN's renames and drops."""

import logging

import cv2
import pytest

from fpar.data import load_index
from fpar.errors import FparError
from fpar.prepare import import_gtea

from .conftest import make_raw_gtea


def test_import_gtea(tmp_path, caplog):
    make_raw_gtea(tmp_path / "raw")
    with caplog.at_level(logging.WARNING):
        result = import_gtea(tmp_path / "raw", tmp_path / "out", flow="dis", progress=False)

    assert sorted(result.written) == [
        "S2/open_jam/S2_Jam_C1_1-6", "S2/stir_spoon,cup/S2_Jam_C1_3-8", "S2/take_bread/S2_Jam_C1_4-9"]
    assert result.dropped == 1  # put_tea
    # The malformed line (named by file and line number) and the segment beyond the last frame.
    assert len(result.problems) == 2
    assert "S2_Jam_C1.txt:4:" in result.problems[0] and "not a label" in result.problems[0]
    assert "S2_Jam_C1_20-30" in result.problems[1] and result.failed == 1
    assert "S2_Jam_C1.txt:4:" in caplog.text

    index = load_index(tmp_path / "out")
    assert index.classes == ["open_jam", "stir_spoon,cup", "take_bread"]
    assert {i.subject for i in index.instances} == {"S2"}
    lengths = {i.instance_id: (len(i.rgb), len(i.mmaps), len(i.flow_x), len(i.flow_y)) for i in index.instances}
    assert lengths == {
        "S2/open_jam/S2_Jam_C1_1-6": (6, 6, 6, 6),
        "S2/stir_spoon,cup/S2_Jam_C1_3-8": (6, 6, 6, 6),
        "S2/take_bread/S2_Jam_C1_4-9": (6, 6, 6, 6),
    }
    # Segment 3-8 starts at raw frame 3: its first RGB image is that frame.
    raw3 = cv2.imread(str(tmp_path / "raw/png/S2_Jam_C1/0000000003.png"))
    first = next(i for i in index.instances if i.class_name == "stir_spoon,cup").rgb[0]
    assert cv2.imread(str(first)).tobytes() == raw3.tobytes()


def test_import_gtea_resumes_and_takes_other_folder_names(tmp_path):
    make_raw_gtea(tmp_path / "raw", frames_dir="frames", labels_dir="annotations")
    kwargs = dict(flow="dis", frames_dir="frames", labels_dir="annotations", progress=False)
    first = import_gtea(tmp_path / "raw", tmp_path / "out", **kwargs)
    assert len(first.written) == 3 and not first.resumed
    second = import_gtea(tmp_path / "raw", tmp_path / "out", **kwargs)
    assert not second.written and len(second.resumed) == 3


def test_not_a_raw_gtea_folder(tmp_path):
    with pytest.raises(FparError, match="no label files"):
        import_gtea(tmp_path, tmp_path / "out", flow="dis", progress=False)

"""Instance-level splits a dataset records (splits.json): the clip lists of EGTEA-style folds."""

import json

import pytest

from fpar.data import load_index
from fpar.data.splits import SPLITS_FILE, read_splits, split_by_clips
from fpar.errors import FparError


def test_a_recorded_split_selects_its_clips_and_names_what_is_wrong(tiny_data, tmp_path):
    index = load_index(tiny_data)
    ids = [inst.instance_id for inst in index.instances]
    (tiny_data / SPLITS_FILE).write_text(json.dumps({"a": {"train": ids[:5], "test": ids[5:7] + ["gone"]},
                                                     "b": {"train": ids[:2], "test": ids[1:3]}}))
    try:
        train, test = split_by_clips(index, "a")
        assert [i.instance_id for i in train] == ids[:5] and [i.instance_id for i in test] == ids[5:7]
        with pytest.raises(FparError, match="no split named 'c'.*a, b"):
            split_by_clips(index, "c")
        with pytest.raises(FparError, match="lists .* as a train and a test clip"):
            split_by_clips(index, "b")
        (tiny_data / SPLITS_FILE).write_text(json.dumps({"a": {"train": "x"}}))
        with pytest.raises(FparError, match="not a splits file"):
            read_splits(tiny_data)
    finally:
        (tiny_data / SPLITS_FILE).unlink()
    assert read_splits(tiny_data) == {}

"""Subject splits (REFERENCE.md §1: train S1,S3,S4, validate S2)."""

import pytest

from fpar.data import leave_one_subject_out, load_index, split_by_subject
from fpar.errors import FparError

from .conftest import add_processed_instance


@pytest.fixture
def four_subjects(tmp_path):
    for subject in ("S1", "S2", "S3", "S4"):
        add_processed_instance(tmp_path, subject, "open_jam", "1", 5, size=(8, 6))
    return load_index(tmp_path)


def test_default_split_trains_on_s1_s3_s4_and_validates_on_s2(four_subjects):
    train, val = split_by_subject(four_subjects)
    assert [i.subject for i in train] == ["S1", "S3", "S4"]
    assert [i.subject for i in val] == ["S2"]


def test_empty_split_is_one_line_error(four_subjects):
    with pytest.raises(FparError, match="empty validation split") as err:
        split_by_subject(four_subjects, val=("S9",))
    assert "\n" not in str(err.value)
    with pytest.raises(FparError, match="both"):
        split_by_subject(four_subjects, train=("S1", "S2"), val=("S2",))


def test_leave_one_subject_out_folds(four_subjects):
    folds = leave_one_subject_out(four_subjects)
    assert [[i.subject for i in val] for _, val in folds] == [["S1"], ["S2"], ["S3"], ["S4"]]
    for train, val in folds:
        assert len(train) == 3 and val[0].subject not in {i.subject for i in train}

"""Verb and noun labels: split from GTEA-style class names, or read from a labels.csv (EPIC's class
numbers), and returned by the dataset as label_verb / label_noun."""

import pytest

from fpar.data import ClipDataset, ClipSettings, load_index
from fpar.data.labels import LABELS_FILE
from fpar.errors import FparError

from .conftest import add_processed_instance

SETTINGS = ClipSettings(num_frames=2, resize=30, crop=30)


def test_gtea_class_names_split_into_verb_and_objects(processed_root):
    add_processed_instance(processed_root, "S1", "pour_mustard,hotdog,bread", "1", 8)
    index = load_index(processed_root)
    assert index.label_classes == {"verb": ["close", "open", "pour"], "noun": ["jam", "mustard,hotdog,bread", "tea"]}
    by_class = {inst.class_name: inst for inst in index.instances}
    assert (by_class["pour_mustard,hotdog,bread"].verb, by_class["pour_mustard,hotdog,bread"].noun) == \
        ("pour", "mustard,hotdog,bread")

    dataset = ClipDataset(index.instances, SETTINGS, labels=index.label_classes)
    for k, inst in enumerate(index.instances):
        item = dataset[k]
        assert index.label_classes["verb"][item["label_verb"]] == inst.verb
        assert index.label_classes["noun"][item["label_noun"]] == inst.noun
    # asked for no labels, an item is what it always was
    assert set(ClipDataset(index.instances, SETTINGS)[0]) == {"frames", "label", "id"}


def test_class_names_without_a_verb_give_no_labels(tmp_path):
    for name in ("jump", "close_jam"):
        add_processed_instance(tmp_path / "ds", "S1", name, "1", 6)
    index = load_index(tmp_path / "ds")
    assert index.label_classes == {} and index.instances[0].verb is None
    with pytest.raises(FparError, match="no verb label"):
        ClipDataset(index.instances, SETTINGS, labels={"verb": ["close"]})


def test_labels_file_numbers_classes_as_the_dataset_does(processed_root):
    (processed_root / LABELS_FILE).write_text(
        "id,verb,verb_class,noun,noun_class\n"  # EPIC's numbers; instances named by their folder
        "S1/close_jam/1,close,3,jam,0\n1,open,1,jam,0\nS2/close_jam/1,close,3,jam,0\n"
        "S2/open_jam/1,open,1,jar,2\nS2/pour_tea/1,pour,0,tea,5\n")
    index = load_index(processed_root)
    assert index.label_classes["verb"] == ["pour", "open", "2", "close"]  # 2: no row uses it
    assert index.label_classes["noun"] == ["jam", "1", "jar", "3", "4", "tea"]
    by_id = {inst.instance_id: inst for inst in index.instances}
    assert (by_id["S2/pour_tea/1"].verb, by_id["S2/open_jam/1"].noun) == ("pour", "jar")
    assert by_id["S1/open_jam/1"].verb == "open"  # matched by its instance name
    item = ClipDataset([by_id["S2/pour_tea/1"]], SETTINGS, labels=index.label_classes)[0]
    assert (int(item["label_verb"]), int(item["label_noun"])) == (0, 5)


def test_a_labels_file_that_contradicts_itself_is_one_line(processed_root):
    (processed_root / LABELS_FILE).write_text("id,verb,verb_class\na,close,3\nb,open,3\n")
    with pytest.raises(FparError, match=r"labels.csv:3: verb_class 3 is named 'open' here and 'close' before"):
        load_index(processed_root)
    (processed_root / LABELS_FILE).write_text("id,noun_class\na,x\n")
    with pytest.raises(FparError, match=r"labels.csv:2: noun_class must be a class number, got 'x'"):
        load_index(processed_root)

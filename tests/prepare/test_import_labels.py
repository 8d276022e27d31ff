"""`fpar prepare --epic / --egtea` write the annotations' verb and noun classes as the dataset's labels.csv."""

from fpar.cli import main
from fpar.data import load_index
from fpar.data.labels import LABELS_FILE
from fpar.prepare.importers import egtea_labels

from .test_importers import make_egtea, make_epic


def test_fpar_prepare_epic_gives_instances_epic_verb_and_noun_numbers(tmp_path, capsys):
    root = make_epic(tmp_path)
    out = tmp_path / "out"
    main(["prepare", "--epic", str(root / "EPIC_100_train.csv"), "--videos", str(root / "EPIC-KITCHENS"),
          "--out", str(out), "--flow", "dis"])
    capsys.readouterr()
    index = load_index(out)
    verbs, nouns = index.label_classes["verb"], index.label_classes["noun"]
    # class k is EPIC's verb_class / noun_class k; numbers no narration uses are named by their number
    assert (verbs[0], verbs[2], verbs[3], verbs[7], verbs[1]) == ("take", "wash", "open", "cut", "1")
    assert (nouns[8], nouns[5], nouns[13]) == ("door", "pan:dust", "cup")
    by_id = {inst.instance_id: inst for inst in index.instances}
    assert (by_id["P01/take_pan-dust/P01_01_1"].verb, by_id["P01/take_pan-dust/P01_01_1"].noun) == ("take", "pan:dust")

    # a second CSV imported into the same dataset adds its narrations and keeps the first's
    (root / "EPIC_100_validation.csv").write_text(
        (root / "EPIC_100_train.csv").read_text().splitlines()[0] + "\n"
        "P02_03_9,P02,P02_03,00:00:00.00,00:00:00.00,00:00:00.10,2,8,stir pan,stir,96,pan,299,\"['pan']\",[299]\n")
    main(["prepare", "--epic", str(root / "EPIC_100_validation.csv"), "--videos", str(root / "EPIC-KITCHENS"),
          "--out", str(out), "--flow", "dis"])
    index = load_index(out)
    assert len(index.label_classes["verb"]) == 97 and index.label_classes["noun"][299] == "pan"
    assert index.label_classes["verb"][3] == "open"
    # header + every imported narration of both CSVs (the first's row without frame numbers is refused,
    # and so are its labels)
    assert (out / LABELS_FILE).read_text().count("\n") == 6


def test_egtea_labels_number_from_zero_and_take_names_from_the_index_files(tmp_path):
    root = make_egtea(tmp_path)
    (root / "verb_idx.txt").write_text("Open 1\nTake 2\n")
    rows = egtea_labels(root / "train_split1.txt", root / "verb_idx.txt", root / "noun_idx.txt")
    assert rows[0] == {"id": "OP01-R01-PastaSalad-100-400-F000003-F000008", "verb_class": "4", "noun_class": "6"}
    assert rows[2] == {"id": "OP01-R01-PastaSalad-5000-5600-F000150-F000155", "verb_class": "1", "verb": "take",
                       "noun_class": "1"}
    assert len(rows) == 4  # the line that is no clip is left out

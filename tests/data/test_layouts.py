"""Reading the three layouts into a DatasetIndex, and the structural problems found on the way."""

import json
from pathlib import Path

import pytest

from fpar.data import detect_layout, load_index, with_class_ids
from fpar.errors import FparError, NotADatasetError

from .conftest import add_processed_instance, ramp, write_png


def reasons(index):
    return [p.reason for p in index.problems]


def test_processed_layout_is_read_with_class_ids_from_the_union(processed_root):
    index = load_index(processed_root)
    assert index.layout == "processed"
    assert index.classes == ["close_jam", "open_jam", "pour_tea"]
    by_id = {inst.instance_id: inst for inst in index.instances}
    # S1 has no pour_tea: ids must not depend on which classes a subject has.
    assert by_id["S1/open_jam/1"].class_id == by_id["S2/open_jam/1"].class_id == 1
    assert by_id["S2/pour_tea/1"].class_id == 2
    inst = by_id["S1/close_jam/1"]
    assert (inst.subject, inst.class_name, inst.n_frames) == ("S1", "close_jam", 8)
    assert inst.rgb[2].name == "rgb0003.png" and inst.flow_y[0].name == "flow_y_00001.png"
    assert len(inst.mmaps) == len(inst.flow_x) == 8
    assert index.problems == [] and index.subjects == ["S1", "S2"]


def test_stray_duplicate_flow_file_is_ignored(processed_root):
    folder = processed_root / "flow_x_processed" / "S1" / "close_jam" / "1"
    (folder / "flow_x_00007(1).png").write_bytes((folder / "flow_x_00007.png").read_bytes())
    index = load_index(processed_root)
    inst = next(i for i in index.instances if i.instance_id == "S1/close_jam/1")
    assert len(inst.flow_x) == 8 and all("(" not in p.name for p in inst.flow_x)
    assert reasons(index) == ["unknown file (ignored)"]


def test_numbering_gap_skips_the_instance(processed_root):
    (processed_root / "processed_frames/S1/open_jam/1/rgb/rgb0004.png").unlink()
    index = load_index(processed_root)
    assert "S1/open_jam/1" in [i.instance_id for i in index.skipped]
    assert "S1/open_jam/1" not in [i.instance_id for i in index.instances]
    gap = [p for p in index.problems if p.reason.startswith("numbering gap")]
    assert gap[0].path.endswith("open_jam/1/rgb") and "frame 4 missing" in gap[0].reason


def test_count_mismatch_and_short_instances_are_skipped(tmp_path):
    add_processed_instance(tmp_path, "S1", "a", "1", 8)
    add_processed_instance(tmp_path, "S1", "a", "2", 8, n_mmaps=7)
    add_processed_instance(tmp_path, "S1", "b", "1", 3)
    index = load_index(tmp_path)
    assert [i.instance_id for i in index.instances] == ["S1/a/1"]
    assert sorted(reasons(index)) == [
        "fewer frames than the flow stack (3 < 5)",
        "rgb/mmaps count mismatch (8 vs 7)",
    ]
    assert load_index(tmp_path, min_frames=3).instances[-1].instance_id == "S1/b/1"


def test_empty_class_folder_is_a_problem_but_keeps_its_class(processed_root):
    (processed_root / "processed_frames/S1/zz_empty").mkdir()
    index = load_index(processed_root)
    assert index.classes[-1] == "zz_empty"
    assert reasons(index) == ["empty class folder"]


def test_egornn_layout(tmp_path):
    for kind, name in (("frames", "image_{:05d}.jpg"), ("flow_x", "flow_x_{:05d}.jpg"), ("flow_y", "flow_y_{:05d}.jpg")):
        for k in range(1, 7):
            write_png(tmp_path / kind / "S2" / "open_tea" / "3" / name.format(k), ramp("rgb", k, 12, 16))
    index = load_index(tmp_path)
    assert detect_layout(tmp_path) == "egornn" and index.layout == "egornn"
    (inst,) = index.instances
    assert (inst.instance_id, inst.n_frames, inst.mmaps) == ("S2/open_tea/3", 6, ())
    assert inst.rgb[0].name == "image_00001.jpg" and len(inst.flow_y) == 6


def _manifest_tree(tmp_path: Path) -> list[dict]:
    rows = []
    for i, (subject, label) in enumerate([("S1", "take_cup"), ("S2", "put_cup")]):
        for k in range(1, 6):
            write_png(tmp_path / f"v{i}" / "img" / f"f{k:03d}.png", ramp("rgb", k, 12, 16))
            write_png(tmp_path / f"v{i}" / "fx" / f"x{k:03d}.png", ramp("flow_x", k, 12, 16))
            write_png(tmp_path / f"v{i}" / "fy" / f"y{k:03d}.png", ramp("flow_y", k, 12, 16))
        rows.append({"id": f"clip{i}", "subject": subject, "label": label, "frames": f"v{i}/img",
                     "flow_x": f"v{i}/fx", "flow_y": f"v{i}/fy"})
    return rows


def test_manifest_csv_and_jsonl(tmp_path):
    rows = _manifest_tree(tmp_path)
    header = "id,subject,label,frames,flow_x,flow_y"
    (tmp_path / "manifest.csv").write_text("\n".join([header] + [",".join(r.values()) for r in rows]) + "\n")
    jsonl = tmp_path / "other.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    for root in (tmp_path, jsonl):
        index = load_index(root)
        assert index.layout == "manifest"
        assert index.classes == ["put_cup", "take_cup"]
        assert [(i.instance_id, i.class_id, i.n_frames, len(i.flow_x)) for i in index.instances] == [
            ("clip0", 1, 5, 5), ("clip1", 0, 5, 5)]


def test_manifest_without_a_required_column_names_the_line(tmp_path):
    (tmp_path / "manifest.csv").write_text("id,subject,frames\nc1,S1,x\n")
    with pytest.raises(FparError, match=r"manifest.csv:2: missing label"):
        load_index(tmp_path)


def test_not_a_dataset_and_unknown_layout(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(NotADatasetError, match=str(tmp_path)):
        load_index(tmp_path)
    with pytest.raises(NotADatasetError, match="no such file"):
        load_index(tmp_path / "missing")
    with pytest.raises(FparError, match="unknown layout 'weird'") as err:
        load_index(tmp_path, layout="weird")
    assert not isinstance(err.value, NotADatasetError)


def test_with_class_ids_renumbers_against_another_class_list(processed_root):
    index = load_index(processed_root)
    renumbered = with_class_ids(index.instances, ["pour_tea", "open_jam", "close_jam", "extra"])
    assert {i.class_name: i.class_id for i in renumbered} == {"pour_tea": 0, "open_jam": 1, "close_jam": 2}
    with pytest.raises(FparError, match="pour_tea"):
        with_class_ids(index.instances, ["open_jam", "close_jam"])

"""The scale measurement's synthetic EPIC-shaped dataset is what docs/scale.md says: shared frame folders,
every segment indexed and every frame present (its figures come from the same code at 100,000 segments)."""

from fpar.data import load_index
from fpar.bench.in_place import in_place_rows, measure_in_place, write_epic_shaped


def test_the_synthetic_epic_shaped_manifest_indexes_and_checks_clean(tmp_path):
    manifest = write_epic_shaped(tmp_path, segments=300, videos=3, frames=450)
    index = load_index(manifest)
    assert len(index.instances) == 300 and index.problems == []
    folders = {inst.rgb.folder for inst in index.instances}
    assert len(folders) == 3  # 100 segments share each video's frame folder
    assert all(inst.flow_stride == 2 and inst.flow_bound == 25.0 for inst in index.instances)
    result = measure_in_place(manifest)
    assert result["index"]["instances"] == 300 and result["check"]["problems"] == 0
    assert result["index"]["peak_rss_mb"] > 0


def test_in_place_rows_report_index_and_check_of_the_manifest():
    index, check = in_place_rows(True, 1, None, segments=200, videos=2, frames=300)
    assert index["name"] == "in place: index of 200 segments" and index["reference_rate"] is None
    assert index["fpar_s"] > 0 and index["fpar_peak_memory"] > 0
    assert check["name"] == "in place: data check of 200 segments" and "0 problems" in check["agreement"]

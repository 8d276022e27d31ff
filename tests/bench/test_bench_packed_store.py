"""The packed-store benchmark runs on a given dataset of JPEGs and reports rates and sizes."""

from __future__ import annotations

from fpar.bench.packed_store import bench_packed_store, jpeg_tree
from fpar.data.synth import generate


def test_the_packed_store_benchmark_runs_on_a_given_dataset(tmp_path):
    pngs = generate(tmp_path / "png", subjects=1, classes=2, videos_per_class=1, frames=8, size=(48, 32), seed=0,
                    progress=None)
    root = jpeg_tree(pngs, tmp_path / "jpeg", quality=90, grain=3.0)
    rows = bench_packed_store(root, resize=32, crop=24, repeats=1)
    assert [(r["clip"], r["way"]) for r in rows] == [(c, w) for c in ("rgb", "two-stream")
                                                    for w in ("images", "jpeg store", "raw store")]
    for row in rows:
        assert row["fpar_s"] > 0 and row["speedup"] > 0
        assert row["checksum_share"] is None if row["way"] == "images" else 0 < row["checksum_share"] < 1
        assert row["jpeg_bytes"] < row["jpeg_store_bytes"] <= 1.1 * row["jpeg_bytes"] + 4096

import json

import torch

from fpar.bench import STAGE_MODELS, format_table, make_batch, reference_forward, reference_rgb_forward, run_benchmarks
from fpar.cli import main
from fpar.engine.stages import configure_stage
from fpar.models import build_model
from fpar.models.assembled import RGBConvLSTM


def test_reference_way_computes_the_same_logits():
    """The benchmark's reference path must be the same function, or its timing means nothing."""
    torch.manual_seed(0)
    model = RGBConvLSTM(num_classes=5, arch="resnet18", mem_size=32, input_size=64).eval()
    frames = torch.randn(2, 3, 3, 64, 64)
    with torch.inference_mode():
        ours = model({"frames": frames})["logits"]
        theirs = reference_rgb_forward(model, frames)
    assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_reference_way_of_every_stage_model():
    for stage, (name, options, _) in STAGE_MODELS.items():
        torch.manual_seed(0)
        small = {} if name == "flow_resnet" else {"mem_size": 16}
        model = build_model(name, num_classes=5, backbone="resnet18", input_size=64, **small, **options).eval()
        configure_stage(model, stage)
        batch = make_batch(stage, 2, 3, 64, "cpu")
        with torch.no_grad():
            ours, theirs = model(batch), reference_forward(model, batch)
        for key in ("logits", "ms"):
            if key in ours:
                assert torch.allclose(ours[key], theirs[key], rtol=1e-4, atol=1e-5), (stage, key)


ROW_FIELDS = {"name", "unit", "kind", "stage", "arch", "size", "batch", "frames", "precision", "reference_s", "fpar_s",
              "reference_rate", "fpar_rate", "speedup", "flops_per_unit", "reference_peak_fraction",
              "fpar_peak_fraction", "reference_peak_memory", "fpar_peak_memory", "agreement"}


def test_bench_end_to_end_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--size", "64", "--batch", "2", "--frames", "2,3", "--rows", "eval,train",
                 "--stages", "rgb_stage1,flow", "--repeats", "1", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    result = json.loads(out.read_text())
    machine = result["machine"]
    assert {"device", "name", "isa", "torch", "threads", "precision", "precision_reason",
            "matmul_peak_flops"} <= machine.keys()
    assert machine["precision"] in machine["matmul_peak_flops"] and "32-true" in machine["matmul_peak_flops"]
    rows = result["rows"]
    # eval and rgb_stage1 at each T, the flow stream (no time axis) once
    assert [(r["kind"], r["stage"], r["frames"]) for r in rows] == [
        ("eval", None, 2), ("train", "rgb_stage1", 2), ("train", "flow", None), ("eval", None, 3),
        ("train", "rgb_stage1", 3)]
    for row in rows:
        assert set(row) == ROW_FIELDS
        assert row["reference_rate"] > 0 and row["fpar_rate"] > 0 and row["flops_per_unit"] > 0
        assert row["fpar_peak_memory"] > 0
        assert row["name"] in table
    assert machine["name"] in table and machine["precision"] in table


def test_table_reports_speedup():
    row = {"name": "x", "kind": "loading", "reference_s": 0.2, "fpar_s": 0.1, "speedup": 2.0, "agreement": "ok"}
    machine = {"device": "cpu", "name": "cpu", "isa": ["avx2"], "threads": 2, "torch": "2", "precision": "32-true",
               "precision_reason": "why", "matmul_peak_flops": {"32-true": 1e11}}
    table = format_table({"machine": machine, "rows": [row]})
    assert "2.00x" in table and "200.0ms" in table and "avx2" in table

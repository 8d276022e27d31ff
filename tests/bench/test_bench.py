import os
import json

import pytest
import torch

from fpar.bench import (STAGE_MODELS, bench_flow, bench_loading, bench_process, bench_stream, data_row, format_table,
                        make_batch, reference_forward, reference_rgb_forward, setting_for)
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
    for stage, (name, options, loss) in STAGE_MODELS.items():
        torch.manual_seed(0)
        small = {} if name == "flow_resnet" else {"mem_size": 16}
        model = build_model(name, num_classes=5, backbone="resnet18", input_size=64, **small, **options).eval()
        configure_stage(model, stage)
        batch = make_batch(model, loss, 2, 3, "cpu")
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
                 "--stages", "rgb_stage1,rgb_stage2,flow", "--repeats", "1", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    result = json.loads(out.read_text())
    machine = result["machine"]
    assert {"device", "name", "isa", "torch", "threads", "precision", "precision_reason",
            "matmul_peak_flops"} <= machine.keys()
    assert machine["precision"] in machine["matmul_peak_flops"] and "32-true" in machine["matmul_peak_flops"]
    # fpar env's whole report travels with the numbers: the instruction set, versions, threads
    environment = result["environment"]
    assert environment["cpu"]["onednn_isa"] and environment["versions"]["torch"]
    if environment["choices"]["device"] == "cpu":  # env's choice is for the GPU where there is one
        assert environment["choices"]["precision"] == machine["precision"]
    rows = result["rows"]
    # eval and the RGB stages at each T (stage 2 with its MS head's loss), the flow stream (no time axis) once
    assert [(r["kind"], r["stage"], r["frames"]) for r in rows] == [
        ("eval", None, 2), ("train", "rgb_stage1", 2), ("train", "rgb_stage2", 2), ("train", "flow", None),
        ("eval", None, 3), ("train", "rgb_stage1", 3), ("train", "rgb_stage2", 3)]
    for row in rows:
        assert set(row) == ROW_FIELDS
        assert row["reference_rate"] > 0 and row["fpar_rate"] > 0 and row["flops_per_unit"] > 0
        assert row["fpar_peak_memory"] > 0
        assert row["name"] in table
    assert machine["name"] in table and machine["precision"] in table


MACHINE = {"device": "cpu", "name": "cpu", "isa": ["avx2"], "threads": 2, "torch": "2", "precision": "32-true",
           "precision_reason": "why", "matmul_peak_flops": {"32-true": 1e11}}


def test_table_reports_speedup():
    row = data_row("x", "loading", "clips/s", 0.2, 0.1, "ok")
    table = format_table({"machine": MACHINE, "rows": [row]})
    assert "2.00x" in table and "5.00" in table and "10.00" in table and "avx2" in table


def test_table_header_names_the_cpu_and_its_instruction_sets():
    machine = {**MACHINE, "device": "cuda", "name": "H100", "cuda_capability": [9, 0], "cpu": "EPYC",
               "cpu_isa": ["avx2", "avx512_bf16", "amx_bf16"]}
    header = format_table({"machine": machine, "rows": []}).splitlines()[0]
    assert "H100" in header and "EPYC" in header and "avx512_bf16 amx_bf16" in header


def test_table_says_when_only_onednn_is_capped():
    """An AVX2 emulation that caps oneDNN but not MKL times the fp32 matrix products on AVX-512."""
    capped = {**MACHINE, "isa_cap": "AVX2"}
    assert "set MKL_ENABLE_INSTRUCTIONS" in format_table({"machine": capped, "rows": []})
    assert "MKL_ENABLE" not in format_table({"machine": {**capped, "mkl_cap": "AVX2"}, "rows": []})
    assert "MKL_ENABLE" not in format_table({"machine": MACHINE, "rows": []})


def test_loading_rows_time_every_way_against_the_reference():
    rows = bench_loading(resize=40, crop=32, repeats=1)
    assert [(r["clip"], r["way"]) for r in rows] == [
        (clip, way) for clip in ("two-stream", "two-in-one") for way in ("images", "images, cached", "store")]
    for row in rows:
        assert row["kind"] == "loading" and row["unit"] == "clips/s"
        assert row["reference_rate"] > 0 and row["fpar_rate"] > 0
        assert row["speedup"] == row["reference_s"] / row["fpar_s"]
        assert row["reference_peak_memory"] > 0 and row["fpar_peak_memory"] > 0
    table = format_table({"machine": MACHINE, "rows": rows})
    assert "loading two-in-one, store" in table and "same tensors as images" in table


def test_flow_rows_compare_fpar_tvl1_with_opencv_on_one_thread():
    threads = torch.get_num_threads()
    rows = bench_flow(1, setting_for("cpu"), width=96, height=72)
    assert torch.get_num_threads() == threads  # restored after the single-threaded timing
    tvl1, warp = rows
    assert (tvl1["method"], warp["method"]) == ("tvl1", "homography")
    # the same algorithm: within a small fraction of a pixel of OpenCV's, and of the true shift
    assert tvl1["epe_px"] < 0.2 and tvl1["shift_error_px"] < 0.2
    assert tvl1["fpar_rate"] > 0 and tvl1["reference_rate"] > 0
    assert warp["reference_rate"] is None and warp["speedup"] is None and warp["shift_error_px"] < 0.5
    table = format_table({"machine": MACHINE, "rows": rows})
    assert "EPE to OpenCV's" in table and "warp flow" in table


def test_process_row_runs_fpar_eval_and_the_reference_script_on_the_same_clips():
    row = bench_process("resnet18", 32, classes=2, videos_per_class=1, frames=5, repeats=1)
    assert row["kind"] == "process" and row["clips"] == 2
    assert row["same_predictions"] == 2  # both ways score the same clips with the same weights
    assert row["reference_s"] > 0 and row["fpar_s"] > 0
    assert row["reference_peak_memory"] > 0 and row["fpar_peak_memory"] > 0


def test_bench_refuses_an_unknown_row_kind(capsys):
    assert main(["bench", "--rows", "eval,nonsense"]) != 0
    assert "nonsense" in capsys.readouterr().err


def test_a_flow_training_row_that_batch_norm_cannot_train_is_one_line(capsys):
    # one clip at 32 px: the flow network's last batch norm would see one value per channel
    assert main(["bench", "--rows", "train", "--stages", "flow", "--batch", "1", "--size", "32"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--batch 1 at --size 32" in err and "Traceback" not in err


@pytest.mark.slow  # nine rows, each timed against two batched forwards and a recomputed window
def test_stream_rows_time_the_stream_against_recomputing_the_window():
    setting = setting_for("cpu", "32")
    rows = bench_stream(True, 1, setting, crop=48, window=3)
    cores = os.cpu_count()
    bf16 = [("stream rgb_attention torch bf16, every 1", 3)] if setting.hardware.fast_bf16 else []
    assert [(r["name"], r["frames"]) for r in rows] == [
        ("stream rgb_attention torch fp32, every 1", 3), *bf16, ("stream rgb_attention torch fp32, every 2", 3),
        ("stream rgb_attention torch fp32, every 1, answer every 3", 3),
        ("stream rgb_attention torch fp32, every 1, answer every 3, frames batched", 3),
        ("stream rgb_attention torch fp32, every 2, answer every 3", 3),
        ("stream rgb_attention torch fp32, every 1, busy CPU, threads auto", 3),
        (f"stream rgb_attention torch fp32, every 1, busy CPU, {cores} threads", 3),
        ("stream two_stream dis flow torch fp32, every 1", 3),
        ("stream rgb_attention onnx fp32, every 1", 3), ("stream rgb_attention onnx int8, every 1", 3)]
    onnx_fp32, onnx_int8 = rows[-2:]
    assert onnx_fp32["relative_difference"] < 1e-4 and onnx_int8["onnx_precision"] == "int8"
    assert "accuracy: not measured (no --data)" in rows[0]["agreement"] and rows[0]["accuracy_change_points"] is None
    for row in rows:
        assert row["kind"] == "stream" and row["unit"] == "frames/s" and row["batch"] == 1
        assert row["fpar_rate"] > 0 and row["reference_rate"] > 0
        assert 0 < row["median_latency_ms"] <= row["p95_latency_ms"]
        assert row["target_met"] is None  # the targets are stated at 224 px and T = 16, not this size
        assert row["per_frame_vs_batched"] > 0
    for row in rows[:-2]:
        assert row["batched_frame_s"] > 0 and 1 <= row["threads"] <= cores
    # the window's T recurrent steps per answered frame against the clip forward's one
    flops = {row["name"]: row["flops_vs_batched"] for row in rows[:-2]}
    assert flops["stream rgb_attention torch fp32, every 1"] > \
        flops["stream rgb_attention torch fp32, every 1, answer every 3"] > 0.9
    batched = rows[3 + len(bf16)]  # the same answers, the frames between them encoded as one batch
    assert batched["batch_frames"] and not rows[2 + len(bf16)]["batch_frames"]
    assert batched["flops_vs_batched"] == pytest.approx(rows[2 + len(bf16)]["flops_vs_batched"], rel=0.05)
    busy = rows[5 + len(bf16)]
    assert busy["busy_cpu"] and busy["slowdown_vs_idle"] > 0
    assert "p95" in format_table({"machine": MACHINE, "rows": rows})



def test_every_row_kind_has_a_maker_and_the_cli_offers_it(capsys):
    from fpar.bench.run import LOADING_ROWS
    from fpar.bench.vocabulary import DATA_ROWS, MODEL_ROWS, ROW_KINDS

    assert tuple(LOADING_ROWS) == DATA_ROWS and ROW_KINDS == (*MODEL_ROWS, *DATA_ROWS)
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    assert ", ".join(ROW_KINDS) in " ".join(capsys.readouterr().out.split())

"""``fpar bench``: fpar's way of computing against the reference's, on this machine, in one run.

Every row times both ways on the same inputs and the same weights, alternately (so load from
other processes hits both alike), and reports rates, the speed-up, each way's share of the
machine's limit and its peak memory (:mod:`fpar.bench.measure`). The rows: the models' evaluation
forward and training steps (:mod:`fpar.bench.model_rows`), clip loading and optical flow
(:mod:`fpar.bench.data_rows`), the packed store against the reference's JPEG reading
(:mod:`fpar.bench.packed_store`), streaming one frame at a time against recomputing the window
(:mod:`fpar.bench.stream_rows`), indexing and checking an in-place manifest of EPIC's size
(:mod:`fpar.bench.in_place`) and ``fpar eval`` as a whole process (:mod:`fpar.bench.process_rows`).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from fpar.bench.data_rows import bench_flow, bench_loading
from fpar.bench.in_place import in_place_rows
from fpar.bench.measure import Setting, limit_clause, machine_info, matmul_peak, setting_for
from fpar.engine.environment import environment
from fpar.engine.hardware import autocast_dtype
from fpar.progress import bar as progress_bar
from fpar.bench.model_rows import STAGE_MODELS, bench_eval, bench_train
from fpar.bench.packed_store import packed_store_rows
from fpar.bench.process_rows import bench_process
from fpar.bench.runtime_accuracy import runtime_accuracies
from fpar.bench.stream_rows import SAMPLING_WAYS, bench_stream, precision_name, stream_settings
from fpar.bench.vocabulary import ROW_KINDS
from fpar.errors import FparError

# row kind (fpar.bench.vocabulary.DATA_ROWS) -> maker of its rows (quick, repeats, setting)
LOADING_ROWS: dict[str, Callable[[bool, int, Setting], list[dict[str, Any]]]] = {
    "loading": lambda quick, repeats, setting: bench_loading(*((128, 112) if quick else (256, 224)), repeats),
    "packed": lambda quick, repeats, setting: packed_store_rows(quick, repeats),
    "flow": lambda quick, repeats, setting: bench_flow(repeats, setting),
    "stream": bench_stream,
    "in-place": in_place_rows,
    "process": lambda quick, repeats, setting: [
        bench_process("resnet18", 112, 3, 2, 7, repeats, setting.device) if quick else
        bench_process("resnet34", 224, 6, 4, 16, repeats, setting.device)],
}


def run_benchmarks(quick: bool = True, repeats: int = 3, frames: tuple[int, ...] = (7,), batch: int | None = None,
                   size: int | None = None, stages: tuple[str, ...] = tuple(STAGE_MODELS),
                   rows: tuple[str, ...] = ROW_KINDS,
                   device: str = "cpu", precision: str = "auto", progress: bool | None = None,
                   data: str | None = None, checkpoint: str | None = None) -> dict[str, Any]:
    """All benchmarks: ``{"machine": {...}, "environment": {...} (fpar env), "rows": [...]}``.

    ``quick`` uses ResNet-18 at 112px and 2 clips per batch, otherwise the paper's ResNet-34 at
    224px and 4 clips; ``frames`` are the clip lengths T to run the model rows at; ``batch`` and
    ``size`` (input side, px) override the defaults. ``progress``: as :func:`fpar.progress.bar`.
    ``data`` and ``checkpoint`` (both or neither): the stream rows' accuracy change per runtime x
    precision, measured on that trained checkpoint over the dataset's evaluation clips
    (:mod:`fpar.bench.runtime_accuracy`).
    """
    unknown = sorted(set(rows) - set(ROW_KINDS)) + sorted(set(stages) - set(STAGE_MODELS))
    if unknown:
        raise FparError(f"unknown benchmark {unknown}: rows are {list(ROW_KINDS)}, stages {list(STAGE_MODELS)}")
    if (data is None) != (checkpoint is None):
        raise FparError("--data and --checkpoint go together: the accuracy of the stream's runtimes and "
                        "precisions is measured on a trained checkpoint over a dataset's evaluation clips")
    if data is not None and "stream" not in rows:
        raise FparError("--data and --checkpoint are for the stream rows (--rows stream)")
    setting = setting_for(device, precision)
    arch, default_size = ("resnet18", 112) if quick else ("resnet34", 224)
    size = size or default_size
    batch = batch or (2 if quick else 4)
    if "train" in rows and "flow" in stages and batch * (-(-size // 32)) ** 2 < 2:
        # the flow network has no time axis: its last batch norm sees B x (size/32)^2 values per channel
        raise FparError(f"--batch {batch} at --size {size}: the flow stage's last batch norm would see one value "
                        "per channel in training; give --batch 2 or more, or --size 33 or more")
    model_rows = "eval" in rows or "train" in rows or "stream" in rows  # rows with a share of the peak
    peaks = {"32-true": matmul_peak(device, torch.float32)} if model_rows else {}
    if model_rows and setting.dtype is not None:
        peaks[setting.precision] = matmul_peak(device, setting.dtype)
    if "stream" in rows:  # the stream's rows per precision the CPU runs fast (fpar.bench.stream_rows)
        for other in stream_settings(setting)[1:]:
            if other.dtype is not None:
                peaks[other.precision] = matmul_peak(device, other.dtype)
    setting.peaks = peaks
    results = []
    # a bar on a terminal, one line at the end in a log (fpar.progress)
    with progress_bar(desc="bench", unit="row", progress=progress) as bar:
        for steps in frames:
            if "eval" in rows:
                results.append(bench_eval(arch, size, batch, steps, repeats, setting))
                bar.update()
            if "train" in rows:
                for stage in stages:
                    if stage != "flow" or steps == frames[0]:  # the flow stream has no time axis
                        results.append(bench_train(stage, arch, size, batch, steps, repeats, setting))
                        bar.update()
        for kind, make in LOADING_ROWS.items():
            if kind in rows:
                if kind == "stream" and data is not None:
                    accuracies = runtime_accuracies(checkpoint, data, tuple(s.precision for s in stream_settings(setting)),
                                                    SAMPLING_WAYS)
                    made = bench_stream(quick, repeats, setting, accuracies=accuracies)
                else:
                    made = make(quick, repeats, setting)
                results += made
                bar.update(len(made))
    if any("flops_per_unit" in row for row in results):
        # measured again at the end, keeping the better: load from other processes during either
        # measurement would otherwise inflate every row's share of the peak
        for name in peaks:
            dtype = autocast_dtype(name) or torch.float32
            peaks[name] = max(peaks[name], matmul_peak(device, dtype))
        for row in results:
            if "flops_per_unit" in row:
                reference_flops = row.get("reference_flops_per_unit", row["flops_per_unit"])
                row["reference_peak_fraction"] = (None if reference_flops is None or row["reference_rate"] is None
                                                  else reference_flops * row["reference_rate"] / peaks["32-true"])
                # a torch row's own precision; onnxruntime's rows against the fp32 peak
                used = "32-true" if row.get("runtime") == "onnx" else row.get("precision", setting.precision)
                row["fpar_peak_fraction"] = row["flops_per_unit"] * row["fpar_rate"] / peaks[used]
                if row.get("limit_frames_per_second") is not None:  # a stream row's limit, from the better peak
                    name, target = precision_name(used), row["target_frames_per_second"]
                    limit = peaks[used] / row["flops_per_unit"]
                    row["agreement"] = row["agreement"].replace(
                        limit_clause(row["limit_frames_per_second"], target, name), limit_clause(limit, target, name))
                    row["limit_frames_per_second"] = limit
    # the whole of `fpar env` too: versions, threads and variables decide a rate as much as the CPU does
    return {"machine": machine_info(setting, peaks), "environment": environment(), "rows": results}

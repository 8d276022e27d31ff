"""ONNX export of every fpar model: ``fpar export CHECKPOINT OUT --format onnx`` (docs/deployment.md).

``OUT/model.onnx`` is written beside ``OUT/fpar.json`` by the machinery every export shares
(:func:`fpar.checkpoint.write_export`: a fresh folder renamed into place, one writer at a time,
``fpar.json`` bound to the graph by its BLAKE2b hash). The graph:

* inputs named after the batch keys the model reads (its ``input_spec``), float32 and normalised
  as the dataset gives them: ``frames`` ``(B, T, 3, crop, crop)``; ``flow`` ``(B, 2L, crop, crop)``
  (a stack) or ``(B, T, 2, crop, crop)`` (two-in-one's pairs);
* outputs named after the model's output keys: ``logits`` first, then ``features`` and, where the
  model has them, ``attention`` and ``ms``;
* a dynamic batch axis; the clip length ``T`` is fixed at export (the ConvLSTM's loop over time is
  unrolled), and ``fpar.json``'s clip settings say that ``T``, so a reader samples clips the graph takes.

The export is checked before it is kept: onnxruntime runs the graph on a batch of two and its
outputs must match PyTorch's (the relative error is recorded in ``fpar.json``, ``onnx.max_relative_error``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from fpar.checkpoint import EXPORT_ONNX, load_model, write_export
from fpar.data.settings import ClipSettings
from fpar.errors import FparError
from fpar.progress import bar

if TYPE_CHECKING:
    from fpar.models import ClipModel

EXPORT_FORMATS = ("safetensors", "onnx")
QUANTIZATIONS = ("int8",)  # weights of MatMul/Gemm/Conv as int8, activations quantised at run time
ONNX_ENTRY = "onnx"  # fpar.json's description of the graph
ACCURACY_ENTRY = "int8_accuracy"  # onnx.int8_accuracy: a calibrated int8 graph's top-1 against the fp32 graph's
NORMALISATION_ENTRY = "normalisation"  # fpar.json: how pixels become each modality's input
OPSET = 18
# the largest relative difference (max |onnx - torch| / max |torch|, per output) an fp32 export may
# show: onnxruntime's kernels round differently from PyTorch's; a tiny model stays under 1e-4 (the
# tests), a ResNet-34 at 224 px unrolled over 16 frames near it (docs/deployment.md); a wrong
# graph is off by far more
FP32_TOLERANCE = 1e-3
CHECK_BATCH = 2  # the example batch: not 1, which torch.export would fix as a constant


def input_shapes(model: ClipModel, frames: int) -> dict[str, list[int | str]]:
    """Each graph input's shape: the model's own input spec (:meth:`fpar.models.ClipModel.input_spec`),
    with ``"batch"`` for the dynamic axis and the clip length fixed at ``frames``."""
    return {key: ["batch" if size == "B" else frames if size == "T" else size for size in shape]
            for key, shape in model.input_spec().items()}


def export_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike, *, frames: int | None = None,
                quantize: str | None = None, stream: bool = False, calibrate: str | os.PathLike | None = None,
                calibrate_clips: int | None = None, measure_accuracy: bool = True,
                progress: bool | None = None) -> Path:
    """Write ``out/model.onnx`` and ``out/fpar.json`` from any checkpoint; returns ``out``.

    ``frames``: the clip length the graph takes (default the checkpoint's ``num_frames``); with
    ``stream``, the per-frame graph instead (:mod:`fpar.interop.onnx_stream`), whose window is
    ``frames``. ``quantize="int8"``: weights stored as int8 (dynamic quantisation), or with
    ``calibrate`` (a dataset folder) weights and activations (static, scales from ``calibrate_clips``
    clips of it, :mod:`fpar.interop.onnx_quantize`; the accuracy change on its validation subjects
    is recorded in ``onnx.int8_accuracy``, unless not ``measure_accuracy``: a graph only timed, as
    ``fpar bench`` times one); the difference from the fp32 model's outputs is recorded,
    not bounded. ``progress``: the long steps (tracing, quantising, checking) as
    :func:`fpar.progress.bar` shows them."""
    if quantize not in (None, *QUANTIZATIONS):
        raise FparError(f"unknown quantisation {quantize!r}: choose one of {list(QUANTIZATIONS)}")
    if calibrate is not None and quantize is None:
        raise FparError("--calibrate is for --quantize int8 (static quantisation)")
    if frames is not None and frames < 1:
        raise FparError(f"--frames must be at least 1, got {frames}")
    _require_onnx()

    def write_graph(ckpt: dict[str, Any], folder: Path) -> tuple[Path, dict[str, Any]]:
        model, contract = load_model(checkpoint, mmap=False)
        clip = contract.clip
        if frames is not None:
            try:
                clip = ClipSettings.model_validate({**clip.model_dump(), "num_frames": frames})
            except ValidationError as exc:
                raise FparError(f"--frames {frames}: {exc.errors()[0]['msg']}") from None
        graph = folder / EXPORT_ONNX
        if stream:
            from fpar.interop.onnx_stream import STREAM_GRAPH, stream_graph

            model, example, shapes = stream_graph(model, contract.model["name"], clip.num_frames, clip.crop)
            with _step("ONNX tracing", progress):
                outputs = _export(model, example, graph, contract.model["name"], dynamic=False)
            entry: dict[str, Any] = {"graph": STREAM_GRAPH, "window": clip.num_frames}
        else:
            example = _example_batch(model, clip.num_frames)
            with _step("ONNX tracing", progress):
                outputs = _export(model, example, graph, contract.model["name"])
            shapes, entry = input_shapes(model, clip.num_frames), {"graph": "clip"}
        entry.update({"inputs": shapes, "outputs": outputs, "opset": OPSET, "quantize": quantize})
        if quantize:
            fp32 = folder / "model.fp32.onnx"
            os.replace(graph, fp32)
            if calibrate is None:
                with _step("int8 quantisation", progress):
                    _quantize(fp32, graph)
            else:
                entry["calibration"], measured = _quantize_calibrated(
                    fp32, graph, dataclasses.replace(contract, clip=clip), calibrate, calibrate_clips, stream,
                    measure_accuracy, progress)
                if measured is not None:
                    entry[ACCURACY_ENTRY] = measured
            fp32.unlink()
        with _step("onnxruntime check", progress):
            errors = _check(model, example, graph, outputs)
        # a streaming graph is held to the bound by its answers (logits, attention); its next state
        # is recorded, not bounded: measured against the state's largest value, a random-weight
        # ResNet-34's state differed by 8e-3 while its logits stayed within the bound, and the
        # answers over a stream are what the tests and fpar bench compare with fpar.Stream
        answers = errors
        if stream:
            from fpar.interop.onnx_stream import STATE_SUFFIX

            answers = {name: error for name, error in errors.items() if not name.endswith(STATE_SUFFIX)}
        worst = max(answers, key=answers.get)
        if quantize is None and errors[worst] > FP32_TOLERANCE:
            raise FparError(f"the ONNX graph of {checkpoint} differs from the PyTorch model by {errors[worst]:.2g} "
                            f"in {worst!r} (relative; at most {FP32_TOLERANCE:g} allowed): the export is not kept")
        entry["max_relative_error"] = answers[worst]
        entry["relative_errors"] = errors
        return graph, {"clip": clip.model_dump(mode="json"), ONNX_ENTRY: entry, NORMALISATION_ENTRY: normalisation()}

    return write_export(checkpoint, out, write_graph)


def _require_onnx() -> None:
    missing = [name for name in ("onnx", "onnxscript", "onnxruntime") if not _importable(name)]
    if missing:
        raise FparError(f"ONNX export needs {', '.join(missing)}: pip install 'fpar[onnx]'")


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _example_batch(model: ClipModel, frames: int) -> dict[str, Any]:
    import torch

    from fpar.models import example_batch

    return example_batch(model, CHECK_BATCH, frames, torch.Generator().manual_seed(0))


def _positional(model, inputs: tuple[str, ...], outputs: tuple[str, ...]):
    """The model as ``forward(*inputs) -> tuple(outputs)``: ONNX graphs take and give flat lists."""
    from torch import nn

    class Graph(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors):
            result = self.model(dict(zip(inputs, tensors)))
            return tuple(result[name] for name in outputs)

    return Graph().eval()


def normalisation() -> dict[str, dict[str, Any]]:
    """How a runtime turns 8-bit pixels into each modality's input (fpar.data.normalization):
    ``(value / 255 - mean) / std``, per channel for RGB; flow is coded to 8 bits first, as a
    prepared dataset stores it (docs/prepare.md)."""
    from fpar.data.normalization import FLOW_MEAN, FLOW_STD, RGB_MEAN, RGB_STD

    return {"frames": {"scale": 1 / 255, "mean": RGB_MEAN.tolist(), "std": RGB_STD.tolist(), "channels": "RGB"},
            "flow": {"scale": 1 / 255, "mean": [FLOW_MEAN], "std": [FLOW_STD], "channels": "x, y per pair"}}


def _export(model, example: dict[str, Any], path: Path, name: str, dynamic: bool = True) -> list[str]:
    """Trace ``model`` on ``example`` into ``path``; returns the output names, in the graph's order.
    ``dynamic``: the batch axis stays free (a streaming graph takes one frame: all fixed)."""
    import torch

    model.requires_grad_(False)  # the inference paths (no training recurrence) are the ones traced
    with torch.no_grad():
        produced = model(example)
    outputs = [key for key, value in produced.items() if isinstance(value, torch.Tensor)]
    outputs.sort(key=lambda key: key != "logits")  # logits first, the rest in the model's order
    inputs = tuple(example)
    batch = torch.export.Dim("batch", min=1, max=4096)
    shapes = (tuple({0: batch} for _ in inputs),) if dynamic else None
    graph = _positional(model, inputs, tuple(outputs))
    # the exporter's and its optimiser's notes (operator sets it does not need, folds it skips)
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, tuple(example.values()), str(path), dynamo=True, input_names=list(inputs),
                              output_names=outputs, dynamic_shapes=shapes,
                              opset_version=OPSET, external_data=False, verbose=False)
    except torch.onnx.errors.OnnxExporterError as exc:
        summary = next((line.strip() for line in str(exc).splitlines() if "Error" in line and ":" in line),
                       str(exc).splitlines()[0])
        raise FparError(f"model '{name}' cannot be exported to ONNX: {summary}") from None
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
    return outputs


def _computed_weights(source: Path) -> list[str]:
    """The Conv, MatMul and Gemm nodes whose weights are computed at run time (the ConvLSTM's gate
    convs take weights split from one stored tensor; the window's hidden matrix product takes
    unfolded states): they stay fp32."""
    import onnx

    graph = onnx.load(str(source), load_external_data=False).graph
    stored = {initializer.name for initializer in graph.initializer}
    return [node.name for node in graph.node if node.op_type in ("Conv", "MatMul", "Gemm") and node.input[1] not in stored]


def _quantize_calibrated(source: Path, target: Path, contract: Any, data: str | os.PathLike, count: int | None,
                         stream: bool, measure: bool, progress: bool | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Static int8 from calibration clips of ``data``; returns the calibration record (data, clips)
    and, if ``measure``, the accuracy record (:func:`fpar.interop.onnx_quantize.accuracy_change`:
    top-1 of the fp32 and the int8 graph on the clips ``fpar eval`` scores by default)."""
    from fpar.interop.onnx_quantize import (CALIBRATION_CLIPS, accuracy, accuracy_change, dataset_clips,
                                            quantize_static_int8)
    from fpar.interop.onnx_runtime import OnnxGraph

    count = CALIBRATION_CLIPS if count is None else count
    if count < 1:
        raise FparError(f"--calibrate-clips must be at least 1, got {count}")
    _, clips = dataset_clips(contract, data, evaluated=False, limit=count)
    with _quantizer_quiet():
        quantize_static_int8(source, target, clips, stream, _computed_weights(source), progress=progress)
    if not measure:
        return {"data": str(data), "clips": len(clips)}, None
    split, evaluation = dataset_clips(contract, data, evaluated=True)
    fp32, int8 = (accuracy(OnnxGraph(path), evaluation, stream, desc=f"{name} accuracy on {split}", progress=progress)
                  for name, path in (("fp32", source), ("int8", target)))
    return ({"data": str(data), "clips": len(clips)},
            accuracy_change(fp32, int8, clips=len(evaluation), data=data, split=split))


@contextlib.contextmanager
def _step(desc: str, progress: bool | None):
    """One long step as one unit of a bar: on a terminal while it runs, in a log one line when done."""
    with bar(total=1, desc=desc, unit="step", progress=progress) as shown:
        yield
        shown.update()


def _quantize(source: Path, target: Path) -> None:
    """int8 weights for every Conv, MatMul and Gemm whose weights are stored as such (dynamic
    quantisation: activations quantised at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    computed = _computed_weights(source)
    with _quantizer_quiet():
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, nodes_to_exclude=computed)


@contextlib.contextmanager
def _quantizer_quiet():
    """onnxruntime's quantiser without its advice to pre-process (on the root logger), its
    warnings and its prints: the export prints its own one-line summary."""
    quiet = logging.getLogger()
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        quiet.setLevel(level)


def _check(model, example: dict[str, Any], graph: Path, outputs: list[str]) -> dict[str, float]:
    """Per output, the relative difference between onnxruntime's and PyTorch's on ``example``."""
    import torch

    from fpar.interop.onnx_runtime import OnnxGraph

    with torch.no_grad():
        expected = model(example)
    got = OnnxGraph(graph)({name: value.numpy() for name, value in example.items()})
    return {name: relative_error(got[name], expected[name].numpy()) for name in outputs}


def relative_error(got, expected) -> float:
    """``max |got - expected| / max |expected|``: the error measure the export is held to."""
    import numpy as np

    scale = float(np.abs(expected).max()) or 1.0
    return float(np.abs(np.asarray(got, np.float64) - expected).max()) / scale

"""An ONNX export run by onnxruntime, without PyTorch (``--runtime onnx``, docs/deployment.md).

:class:`OnnxModel` opens an export folder written by ``fpar export --format onnx``
(:mod:`fpar.interop.onnx_export`): its ``fpar.json`` is checked against the graph's hash and read
as the same :class:`~fpar.checkpoint.ModelContract` a PyTorch checkpoint carries (class names, clip
settings), and the graph runs on a dict of numpy arrays named as the model's batch keys, giving a
dict of arrays named as its output keys. This module imports neither torch nor OpenCV.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from fpar.checkpoint import (EXPORT_CONTRACT, EXPORT_ONNX, check_class_names, head_class_names, read_contract,
                             read_export_contract)
from fpar.data.settings import ClipSettings
from fpar.errors import FparError

# a per-frame graph's recurrent state: inputs beside the clip's modalities, each given back as an
# output named with STATE_SUFFIX (fpar.interop.onnx_stream; docs/deployment.md)
STATE = ("hidden", "cell")
RUNTIMES = ("torch", "onnx")  # what runs a model: PyTorch (checkpoints, exports) or onnxruntime (ONNX exports)


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise FparError("--runtime onnx needs onnxruntime: pip install 'fpar[onnx]'") from None
    return onnxruntime


def _ort_errors() -> tuple[type[BaseException], ...]:
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    return tuple(getattr(state, name) for name in ("Fail", "InvalidGraph", "InvalidProtobuf", "NoSuchFile",
                                                   "InvalidArgument", "RuntimeException", "NotImplemented")
                 if hasattr(state, name))


class OnnxGraph:
    """One ONNX file in an onnxruntime CPU session. ``threads``: onnxruntime's intra-op threads
    (default: its own choice, one per core)."""

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None) -> None:
        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: its notes on unused initialisers are not the user's business
        if threads:
            options.intra_op_num_threads = threads
        # subnormal floats as zero on every onnxruntime thread, as PyTorch's ConvLSTM drops them
        # (docs/streaming.md, "What keeps a push fast"): the full-size stream 10.4 -> 11.2 frames/s
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
        self.path = Path(path)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except _ort_errors() as exc:
            raise FparError(f"{path} is not a readable ONNX model ({str(exc).splitlines()[0][:200]})") from None
        self.inputs = tuple(node.name for node in self.session.get_inputs())
        self.outputs = tuple(node.name for node in self.session.get_outputs())
        self.shapes = {node.name: list(node.shape) for node in self.session.get_inputs()}

    def __call__(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        """``batch``: one float array per graph input, batch axis first (other keys are ignored)."""
        missing = [name for name in self.inputs if name not in batch]
        if missing:
            raise FparError(f"{self.path} reads {list(self.inputs)}; the batch has no {missing}")
        feed = {}
        for name in self.inputs:
            value = np.ascontiguousarray(batch[name], dtype=np.float32)
            expected = self.shapes[name]
            if value.ndim != len(expected) or any(isinstance(want, int) and want != got
                                                  for want, got in zip(expected[1:], value.shape[1:])):
                raise FparError(f"{self.path}: input {name!r} must be {_shape_text(expected)}, got "
                                f"{_shape_text(list(value.shape))}")
            feed[name] = value
        try:
            values = self.session.run(list(self.outputs), feed)
        except _ort_errors() as exc:
            raise FparError(f"{self.path} failed on its input ({str(exc).splitlines()[0][:200]})") from None
        return dict(zip(self.outputs, values))


def _shape_text(shape: list) -> str:
    return "(" + ", ".join(str(size) if isinstance(size, int) else "B" for size in shape) + ")"


def onnx_export_folder(path: str | os.PathLike) -> Path | None:
    """The export folder if ``path`` is an ONNX export (its folder or its ``model.onnx``), else None."""
    path = Path(path)
    folder = path.parent if path.suffix == ".onnx" else path
    return folder if (folder / EXPORT_ONNX).is_file() else None


class OnnxModel(OnnxGraph):
    """An ONNX export: its graph and its contract (``contract``: model, classes, clip settings)."""

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None) -> None:
        folder = onnx_export_folder(path)
        if folder is None:
            raise FparError(f"{path} is not an ONNX export (no {EXPORT_ONNX}): make one with "
                            "`fpar export CHECKPOINT OUT --format onnx`, or run this one with `--runtime torch`")
        info = read_export_contract(folder / EXPORT_CONTRACT, folder / EXPORT_ONNX)
        self.contract = read_contract({"fpar": info}, folder / EXPORT_CONTRACT)
        self.info = info  # fpar.json: the graph's entry (onnx), the normalisation, ...
        super().__init__(folder / EXPORT_ONNX, threads=threads)
        self._check_contract(folder / EXPORT_CONTRACT)

    def _check_contract(self, contract: Path) -> None:
        """fpar.json against the graph: the clip settings give every input the graph reads, and the
        class names are one per output of each head (:func:`fpar.checkpoint.check_class_names`)."""
        unread = [name for name in self.inputs if name not in (*self.contract.clip.modalities, *STATE)]
        if unread:
            raise FparError(f"{contract}: the graph reads {list(self.inputs)} but fpar.json's clip gives "
                            f"{list(self.contract.clip.modalities)} (model {self.contract.model.get('name')!r}); "
                            "the export's fpar.json and its graph do not match")
        widths = {}
        for node in self.session.get_outputs():
            head = "action" if node.name == "logits" else node.name.removeprefix("logits_") \
                if node.name.startswith("logits_") else None
            if head is not None and isinstance(node.shape[-1], int):
                widths[head] = node.shape[-1]
        check_class_names(self.contract, widths, contract)
        # one name per output of each head, as the PyTorch session names them
        self.head_classes = head_class_names(self.contract, widths)

    @property
    def classes(self) -> list[str]:
        """A name per output class (``class N`` where the export names none)."""
        return self.head_classes["action"]

    @property
    def label_classes(self) -> dict[str, list[str]]:
        """The label heads' (verb, noun) class names; {} for a model with the action head only."""
        return {head: names for head, names in self.head_classes.items() if head != "action"}

    @property
    def clip(self) -> ClipSettings:
        """The clip settings of the inputs the graph reads (an export's graph takes no motion maps):
        :func:`fpar.engine.video_clip.clip_arrays` reads a video's clip with them."""
        return self.contract.clip.model_copy(update={"modalities": [m for m in self.contract.clip.modalities
                                                                    if m in self.inputs]})

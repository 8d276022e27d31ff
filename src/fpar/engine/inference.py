"""One inference session: a checkpoint's model made ready to score, the same way for every path
that runs one: ``fpar predict`` (:mod:`fpar.engine.predict`), ``fpar.Stream``
(:mod:`fpar.engine.stream.core`) and ``fpar eval`` (:mod:`fpar.engine.evaluate`, both its plain
loop and Lightning's). The ONNX runtime (:class:`fpar.interop.onnx_runtime.OnnxModel`) runs
without torch; it shares the rest: the clip (its frame numbers from
:func:`fpar.data.sampling.eval_frame_numbers`, built by :func:`fpar.engine.video_clip.clip_arrays`)
and the class names per head (:func:`fpar.checkpoint.head_class_names`).

A session owns, once each: loading (a checkpoint file or an export folder,
:func:`fpar.checkpoint.load_model`), the precision (resolved once, its line said once),
:func:`fpar.engine.compute.prepare_for_inference` with the caller's options, the context every
forward runs in (no autograd, autocast, a modality the clip does not give as one line naming the
checkpoint) and the class names of each head.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch

from fpar.checkpoint import ModelContract, head_class_names, load_model, model_reads_its_clip
from fpar.data.settings import ClipSettings
from fpar.engine.compute import prepare_for_inference
from fpar.engine.hardware import AUTO, autocast_dtype, choose_precision, describe, detect, device_for
from fpar.engine.settings import PRECISIONS
from fpar.errors import FparError
from fpar.models.heads import ACTION

log = logging.getLogger(__name__)  # the precision line: shown with --verbose


class InferenceSession:
    """``model`` (a :class:`~fpar.models.ClipModel`) and ``contract`` (what it reads, its class
    names), run by ``source`` (the checkpoint's path, named in errors). :meth:`load` reads a
    checkpoint; :meth:`prepare` makes the model ready to score (in place: never train or save it
    afterwards); :meth:`running` is the context its forward runs in."""

    def __init__(self, model: torch.nn.Module, contract: ModelContract, source: str | os.PathLike) -> None:
        self.model, self.contract, self.source = model, contract, str(source)
        self.precision: str | None = None  # resolved by prepare()
        self.dtype: torch.dtype | None = None  # the autocast dtype; None: full precision
        self.device = torch.device("cpu")
        self._said: Callable[[], str] | None = None

    @classmethod
    def load(cls, checkpoint: str | os.PathLike) -> "InferenceSession":
        """The model of ``checkpoint`` (a file or an export folder), not yet prepared."""
        # read into memory, not mapped: under bf16 each weight's fp32 original is freed once cast
        model, contract = load_model(checkpoint, mmap=False)
        return cls(model, contract, checkpoint)

    def prepare(self, *, precision: str | None = None, device: str = "cpu", channels_last: bool = True,
                frames_per_pass: int | None = None, autocast: bool = True) -> "InferenceSession":
        """Resolve ``precision`` (default the checkpoint's training precision; ``auto``: the
        device's fastest) for ``device`` (``cpu``, ``cuda``, ``cuda:N``) and prepare the model
        (:func:`~fpar.engine.compute.prepare_for_inference` with ``channels_last`` and
        ``frames_per_pass``; its convolutions stored in the autocast dtype) on that device.
        ``autocast=False``: Lightning's precision plugin casts at each call and places the model
        (several processes): the weights stay as they are, and :meth:`running` sets no autocast."""
        requested = str(precision or self.contract.trained_precision)  # YAML's `precision: 32` is an int
        if requested not in PRECISIONS:  # a typo would otherwise run in full precision, silently
            raise FparError(f"precision '{requested}' is not one of {', '.join(PRECISIONS)}")
        self.device = torch.device(device)
        hardware = detect(device_for("cpu" if self.device.type == "cpu" else "cuda"))
        self.precision, reason = choose_precision(hardware, requested)
        # the line is said only where `auto` chose: an explicit setting needs no explaining
        self._said = (lambda: describe(hardware, self.precision, reason)) if requested == AUTO else None
        self.dtype = autocast_dtype(self.precision) if autocast else None
        prepare_for_inference(self.model, channels_last=channels_last, dtype=self.dtype,
                              frames_per_pass=frames_per_pass)
        if autocast:
            self.model.to(self.device)
        return self

    def announce(self, to: Callable[[str], Any] = log.info) -> None:
        """Say which precision ``auto`` chose, and why (one line; nothing for an explicit one)."""
        if self._said is not None:
            to(self._said())

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """No autograd, the autocast dtype, and a model that asks for a modality its clip settings
        do not give as one line naming the checkpoint."""
        autocast = torch.autocast(self.device.type, self.dtype or torch.float32, enabled=self.dtype is not None)
        with torch.inference_mode(), autocast, model_reads_its_clip(self.source, self.contract):
            yield

    def clip(self, explain: bool = False) -> ClipSettings:
        """The clip settings its inputs are read with: the checkpoint's; with ``explain`` also the
        inputs its explanation pictures show beside its outputs (the MS head's motion maps)."""
        settings = self.contract.clip
        for key in self.model.explanation_inputs() if explain else ():
            settings = settings.with_modality(key)
        return settings

    def head_classes(self, known: Mapping[str, Sequence[str]] | None = None) -> dict[str, list[str]]:
        """Each head's class names (``action`` and the label heads), one per output
        (:func:`fpar.checkpoint.head_class_names`; ``known``: a dataset's, for the heads the
        checkpoint names none of)."""
        heads = self.model.label_heads_module()
        widths = {ACTION: self.contract.num_classes, **(heads.widths() if heads is not None else {})}
        return head_class_names(self.contract, widths, known)

    @property
    def classes(self) -> list[str]:
        """The action head's class names, one per output."""
        return self.head_classes()[ACTION]

    @property
    def label_classes(self) -> dict[str, list[str]]:
        """The label heads' (verb, noun) class names; {} for a model with the action head only."""
        return {head: names for head, names in self.head_classes().items() if head != ACTION}

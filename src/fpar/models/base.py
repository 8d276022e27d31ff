"""What every fpar model is to the rest of fpar: :class:`ClipModel`, the one seam between a model
and the engine, the exporters and the stream (docs/models.md, "Adding a model").

A model owns everything that depends on its architecture; the engine holds only the loop:

==========================  ===================================================================
``forward(batch, explain)``  batch-first dict in, dict out: at least ``logits`` (B, classes)
``input_spec()``             the batch keys it reads and their shapes (as timm's ``_cfg``)
``training_stages()``        the stages (``fpar.engine.stages.STAGES``) it can train in
``stage_parameters(stage)``  per stage, the optimiser's parameter groups; the rest is frozen
``set_stage_mode(stage)``    after ``train()``: frozen parts back in eval mode
``loss(out, batch, ...)``    its named loss terms, already weighted; the engine sums and logs
``loss_inputs(settings)``    the batch keys its loss reads besides its inputs
``classify(features)``       ``logits`` from ``classifier`` and, with label heads, ``logits_verb`` ...
``prepare_for_inference``    folding and slicing for scoring; the engine adds layout and dtype
``explanation_inputs()``     batch keys explanations show beside the outputs (MS targets)
``encode_frames``,           optional, for streaming (docs/streaming.md): the per-frame part and
``decode_window``            the part over a window of encoded frames; ``streams_per_frame()``
                             says whether the model has them
``begin/end_training``       caches a training run may keep (a frozen backbone's folded copy)
==========================  ===================================================================

Label heads (verb, noun; :class:`fpar.models.heads.LabelHeads`) come with the defaults: a model
that calls :meth:`ClipModel.add_label_heads` in its constructor and :meth:`ClipModel.classify` in
its forward is trained, validated and evaluated on every head with nothing else to write.

Input shapes name the batch axis ``"B"`` and the clip length ``"T"``; the other sizes are
numbers. Image inputs arrive normalised float32 (the data pipeline's job). A new model subclasses
:class:`ClipModel`, implements ``forward``, ``input_spec`` and whatever differs from the defaults
below, and is registered with :func:`fpar.models.register_model`: nothing under ``fpar.engine``
changes (the test ``tests/models/test_new_model.py`` does exactly this).
"""

from __future__ import annotations

from typing import Any, Union

import torch
import torch.nn.functional as F
from torch import nn

from fpar.errors import FparError
from fpar.models.heads import LabelHeads
from fpar.models.losses import LossSettings

Shape = tuple[Union[int, str], ...]
# the stage in which every parameter trains: any model can train in it
FULL_STAGE = "full"


class ClipModel(nn.Module):
    """Base of every fpar model; the defaults fit a model trained end to end with cross-entropy."""

    # name + build keywords, recorded by the registry so a checkpoint rebuilds the same model
    build_spec: dict[str, Any]

    def forward(self, batch: dict[str, torch.Tensor], explain: bool = False) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def input_spec(self) -> dict[str, Shape]:
        """Batch key -> shape, e.g. ``{"frames": ("B", "T", 3, 224, 224)}``."""
        raise NotImplementedError

    # --- training ----------------------------------------------------------------------------

    def training_stages(self) -> tuple[str, ...]:
        return (FULL_STAGE,)

    def stage_parameters(self, stage: str, **options: Any) -> dict[str, list[nn.Parameter]]:
        """Parameter groups (name -> parameters) that train in ``stage``; every other parameter is
        frozen by the engine. Group names let a config set their own learning rate."""
        self.check_stage(stage)
        return {"main": list(self.parameters())}

    def set_stage_mode(self, stage: str, **options: Any) -> None:
        """Called after ``model.train()``: modules whose statistics must not move go back to eval."""

    def check_stage(self, stage: str) -> None:
        if stage not in self.training_stages():
            raise FparError(f"stage '{stage}' does not apply to a {type(self).__name__} model "
                            f"(it trains in {', '.join(self.training_stages())})")

    def loss_inputs(self, settings: LossSettings) -> tuple[str, ...]:
        """Batch keys the loss reads besides the model's inputs; refuses settings it cannot honour."""
        if settings.ms is not None:
            raise FparError(f"loss.ms needs a model with an MS head; '{self.build_spec['name']}' has none "
                            "(use rgb_ms, or set model.ms_head)")
        return self.classification_inputs()

    def loss(self, out: dict[str, torch.Tensor], batch: dict[str, Any],
             settings: LossSettings) -> dict[str, torch.Tensor]:
        """Named loss terms, each already weighted: the training loss is their sum."""
        return self.classification_loss(out, batch)

    # --- classification heads ----------------------------------------------------------------

    def add_label_heads(self, in_features: int, widths: dict[str, int] | None, dropout: float) -> None:
        """Give the model a verb / noun head per entry of ``widths`` ({kind: classes}; none: no
        module, so a single-head model's weights are exactly those of before label heads existed)."""
        if widths:
            self.label_heads = LabelHeads(in_features, widths, dropout)

    def label_heads_module(self) -> LabelHeads | None:
        return self._modules.get("label_heads")

    def classification_heads(self) -> list[nn.Module]:
        """The modules that classify ``features``: ``classifier`` and the label heads; stage rules
        train them together."""
        heads = self.label_heads_module()
        return [self.classifier] if heads is None else [self.classifier, heads]

    def classify(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every head's scores of ``features``: ``logits`` (the action ``classifier``) and the label
        heads' ``logits_<kind>``."""
        out = {"logits": self.classifier(features)}
        heads = self.label_heads_module()
        if heads is not None:
            out.update(heads(features))
        return out

    def classification_inputs(self) -> tuple[str, ...]:
        """The batch keys of every head's class ids: ``label`` and ``label_<kind>`` per label head."""
        heads = self.label_heads_module()
        return ("label", *(heads.loss_inputs() if heads is not None else ()))

    def classification_loss(self, out: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Cross-entropy of the action head (``ce``) plus each label head's (``ce_verb``, ``ce_noun``)."""
        terms = {"ce": F.cross_entropy(out["logits"], batch["label"])}
        heads = self.label_heads_module()
        if heads is not None:
            terms.update(heads.loss(out, batch))
        return terms

    def begin_training(self, compute_dtype: torch.dtype) -> None:
        """At the start of a training run, after the weights are final; ``compute_dtype``: the dtype
        the convolutions run in (autocast's, else float32)."""

    def end_training(self) -> None:
        """At the end of a training run: drop what :meth:`begin_training` cached."""

    # --- inference ---------------------------------------------------------------------------

    def explanation_inputs(self) -> tuple[str, ...]:
        """Batch keys the model does not read but its explanation pictures show beside its outputs
        (the MS head's target motion maps)."""
        return ()

    def prepare_for_inference(self, frames_per_pass: int | None = None) -> None:
        """Made ready to score, in place (never trained or saved again): e.g. batch norms folded;
        ``frames_per_pass`` bounds how many frames a per-frame part takes at once."""


    # --- streaming (docs/streaming.md) -----------------------------------------------------------

    def streams_per_frame(self) -> bool:
        """Whether :meth:`encode_frames` and :meth:`decode_window` are implemented, so that a stream
        encodes each frame once; without them ``fpar.Stream`` runs ``forward`` over its window."""
        return False

    def encode_frames(self, batch: dict[str, torch.Tensor], explain: bool = False) -> dict[str, torch.Tensor]:
        """The per-frame work for the batch's frames (B, T, ...), each output (B, T, ...)."""
        raise NotImplementedError

    def decode_window(self, encoded: dict[str, torch.Tensor],
                      batch: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """What ``forward`` returns, from a window of :meth:`encode_frames` outputs and the inputs
        without a time axis (a flow stack); ``forward(b) == decode_window(encode_frames(b), b)``."""
        raise NotImplementedError

    def carries_windows(self) -> bool:
        """Whether :meth:`advance_windows` and :meth:`decode_windows` are implemented: a stream then
        keeps a recurrent state instead of re-running :meth:`decode_window` over its whole window."""
        return False

    def advance_windows(self, encoded: dict[str, torch.Tensor], state: dict[str, torch.Tensor] | None,
                        start: bool = True) -> dict[str, torch.Tensor]:
        """One more frame's :meth:`encode_frames` output (B = T = 1) into ``state`` (None: no
        window yet): ``{"hidden", "cell"}``, one row per window in flight, oldest first, each advanced
        by the frame; with ``start`` the frame also begins a window (the last row). A window's
        ``cell`` after its T frames, given to :meth:`decode_windows`, answers as ``decode_window``
        over those frames' encodings."""
        raise NotImplementedError

    def decode_windows(self, cell: torch.Tensor, newest: dict[str, torch.Tensor],
                       batch: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """What ``forward`` returns over the window whose final cell state is ``cell`` (1, ...);
        ``newest``: the newest frame's encodings (its per-frame outputs, e.g. the attention map)."""
        raise NotImplementedError


def example_batch(model: ClipModel, batch_size: int = 1, frames: int = 1,
                  generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Random inputs shaped as ``model.input_spec()`` says: for exports, benchmarks and tests."""
    sizes = {"B": batch_size, "T": frames}
    return {key: torch.randn([sizes.get(d, d) if isinstance(d, str) else d for d in shape], generator=generator)
            for key, shape in model.input_spec().items()}


def clip_inputs(spec: dict[str, Shape]) -> tuple[list[str], str]:
    """The data pipeline's words for an input spec: (modalities, flow mode). Flow with a time axis
    (B, T, 2, H, W) is read as pairs, one per frame; without, (B, 2L, H, W), as a stack."""
    flow = spec.get("flow")
    return list(spec), "pairs" if flow is not None and len(flow) == 5 else "stack"

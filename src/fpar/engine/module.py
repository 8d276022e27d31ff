"""``FparModule``: one LightningModule for every model and training stage of the paper.

It holds the registry model as ``self.model`` (so checkpoint keys are ``model.*``, the shared
format of ``fpar.checkpoint``), applies the stage rules (which parameters train, which modules
stay in eval mode), sums the model's own loss terms and logs the losses and, per validation, top-1,
top-5 and mean-class accuracy (of every head: ``val/acc`` the action's, ``val/verb_acc``, ... the
label heads', ``val/verb_noun_acc`` both right); it keeps the validation's confusion matrix and one clip's attention
maps for the loggers that take pictures (``fpar.engine.callbacks.ValidationPictures``).
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch
from torchmetrics import MeanMetric

from fpar.checkpoint import checkpoint_contract, label_head_names
from fpar.engine.compute import prepare_model
from fpar.engine.hardware import autocast_dtype
from fpar.engine.losses import total_loss
from fpar.engine.metric_registry import JOINT_KEY, MONITORED, logged_key
from fpar.engine.metrics import JOINT, METRICS, ClassificationMetrics, LabelMetrics
from fpar.engine.settings import ExperimentSettings
from fpar.engine.stages import configure_stage, set_train_mode
from fpar.errors import FparError
from fpar.models import build_model


class DivergedError(FparError):
    """The loss or a weight became NaN or infinite: the run stops before anything worse is saved."""


def model_spec(config: ExperimentSettings, classes: list[str],
               label_classes: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """``build_model`` keywords from the settings: class counts from the dataset (``label_classes``:
    its verb/noun classes, for label heads), input size from the crop."""
    if config.model.num_classes is not None and config.model.num_classes < len(classes):
        raise FparError(f"model.num_classes is {config.model.num_classes} but the dataset has "
                        f"{len(classes)} classes")
    return config.model.build_arguments(num_classes=len(classes), input_size=config.data.crop,
                                        label_classes=label_classes)


def head_classes(widths: dict[str, int], label_classes: dict[str, list[str]]) -> dict[str, list[str]]:
    """Each label head's class names, one per output: the dataset's, then (a head wider than the
    dataset's classes, e.g. EPIC's 97 verbs) the remaining outputs named by their number."""
    return {kind: label_head_names(label_classes[kind], width) for kind, width in widths.items()}


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def adam(param_groups: list[dict[str, Any]], **options: Any) -> torch.optim.Adam:
    """``torch.optim.Adam``, fused where PyTorch has a fused kernel for the parameters' device (CPU,
    CUDA): one pass over each parameter per step instead of several, the same updates (to fp32
    rounding), 2x faster on the ConvLSTM's 19M weights here."""
    devices = {p.device.type for group in param_groups for p in group["params"]}
    return torch.optim.Adam(param_groups, fused=devices <= {"cpu", "cuda"} or None, **options)


class FparModule(L.LightningModule):
    """``label_classes``: the dataset's verb/noun classes ({kind: names}), for a model with label heads."""

    def __init__(self, config: ExperimentSettings, classes: list[str],
                 label_classes: dict[str, list[str]] | None = None):
        super().__init__()
        self.config = config
        self.classes = list(classes)
        spec = model_spec(config, self.classes, label_classes)
        self.label_classes = head_classes(spec.get("heads") or {}, label_classes or {})
        # plain values only: checkpoints must load with weights_only=True
        self.save_hyperparameters({"config": config.as_dict(), "classes": list(classes),
                                   **({"label_classes": self.label_classes} if self.label_classes else {})})
        self.model = prepare_model(build_model(**spec), config.trainer.compile)
        self.stage = config.stage.name
        self.stage_options = config.stage.options
        # Freeze now, not in configure_optimizers: DDP wraps the model before that runs and
        # expects a gradient for every parameter that requires one at wrapping time.
        self.param_groups = configure_stage(self.model, self.stage, **self.stage_options)
        self.loss_settings = config.loss
        missing = [key for key in self.model.loss_inputs(config.loss)
                   if key not in self.model.classification_inputs() and key not in config.data.modalities]
        if missing:
            raise FparError(f"data.modalities must include {', '.join(missing)}: the loss of "
                            f"'{spec['name']}' with these loss settings reads them")
        self.train_loss = MeanMetric()
        self.val_loss = MeanMetric()
        self.val_metrics = ClassificationMetrics(spec["num_classes"])
        self.val_label_metrics = LabelMetrics(spec.get("heads") or {})
        # the latest validation's confusion matrix and the first clip's frames and attention (CPU)
        self.val_confusion: torch.Tensor | None = None
        self.val_attention: tuple[torch.Tensor, torch.Tensor] | None = None

    # --- training ----------------------------------------------------------------------------

    def on_train_start(self) -> None:
        # after the weights are restored (resume) and final: the model may cache what stays fixed
        # (a frozen backbone as a folded copy in the convolutions' dtype)
        self.model.begin_training(autocast_dtype(self.trainer.precision) or torch.float32)

    def on_train_end(self) -> None:
        self.model.end_training()

    def on_train_epoch_start(self) -> None:
        # Dropout draws from the global generator: seed it per (epoch, rank) so a resumed run
        # repeats the uninterrupted one exactly.
        seed = epoch_seed(self.config.trainer.seed, self.current_epoch, self.global_rank)
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        self.model.train()
        set_train_mode(self.model, self.stage, **self.stage_options)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        out = self.model(batch)
        loss, terms = total_loss(self.model, out, batch, self.loss_settings)
        if not torch.isfinite(loss):
            raise DivergedError(f"training loss is {loss.item()} at epoch {self.current_epoch}, "
                                     f"global step {self.global_step} (batch {batch_idx}); run stopped")
        size = len(batch["label"])
        self.train_loss.update(loss.detach(), weight=size)
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=size)
        if len(terms) > 1:
            self.log_dict({f"train/{name}": term.detach() for name, term in terms.items()}, batch_size=size)
        self.log("train/loss_epoch", self.train_loss, on_step=False, on_epoch=True, batch_size=size)
        return loss

    # --- validation --------------------------------------------------------------------------

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        out = self.model(batch)
        loss, _ = total_loss(self.model, out, batch, self.loss_settings)
        size = len(batch["label"])
        self.val_loss.update(loss, weight=size)
        self.val_metrics.update(out["logits"].detach(), batch["label"])
        self.val_label_metrics.update(out, batch)
        self.log("val/loss", self.val_loss, on_epoch=True, batch_size=size)
        if batch_idx == 0 and "attention" in out and "frames" in batch:
            self.val_attention = (batch["frames"][0].detach().cpu(), out["attention"][0].detach().float().cpu())

    def on_validation_epoch_end(self) -> None:
        numbers = self.val_metrics.compute()  # gathered over every process
        self.val_metrics.reset()
        for name in METRICS:
            self.log(logged_key(name), numbers[name], prog_bar=name == MONITORED)
        self.val_confusion = numbers["confusion"].cpu()
        heads = self.val_label_metrics.compute()
        self.val_label_metrics.reset()
        for kind, numbers in heads.items():
            if kind == JOINT[0]:
                self.log(JOINT_KEY, numbers)
                continue
            for name in METRICS:
                self.log(logged_key(name, kind), numbers[name])

    # --- optimisation ------------------------------------------------------------------------

    def configure_optimizers(self) -> dict[str, Any]:
        groups = self.param_groups
        opt = self.config.optimizer
        names = {g["name"] for g in groups}
        for name in opt.group_lr:
            if name not in names:
                raise FparError(f"optimizer.group_lr.{name}: stage '{self.stage}' has no parameter "
                                f"group '{name}' (it has {', '.join(sorted(names))})")
        param_groups = [{"name": g["name"], "params": g["params"], "lr": opt.group_lr.get(g["name"], opt.lr)}
                        for g in groups if g["params"]]
        if opt.name == "adam":
            optimizer = adam(param_groups, lr=opt.lr, weight_decay=opt.weight_decay, eps=opt.eps)
        else:
            optimizer = torch.optim.SGD(param_groups, lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay)
        sched = self.config.scheduler
        if sched.name == "none":
            return {"optimizer": optimizer}
        if sched.name == "multistep":
            scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, sched.milestones, sched.gamma)
        else:
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, sched.step_size, sched.gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    # --- checkpoints -------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # A diverged model must not overwrite the last good checkpoint.
        for name, tensor in self.model.state_dict().items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise DivergedError(f"weight '{name}' is not finite at epoch {self.current_epoch}, "
                                         f"global step {self.global_step}; run stopped, checkpoint not written")
        checkpoint["fpar"] = checkpoint_contract(model=self.model.build_spec, classes=self.classes,
                                                 clip=self.config.data.clip, config=self.config,
                                                 label_classes=self.label_classes)

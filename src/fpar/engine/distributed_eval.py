"""Evaluation over several processes (DDP) or on accelerators fpar does not drive itself, through
Lightning's test loop: each rank scores every ``world_size``-th clip of the dataset (no padding,
so no clip counts twice) and the rows are gathered to all ranks. A single process on a CPU or a
GPU is scored by :func:`fpar.engine.evaluate.score_in_process` instead, without importing Lightning.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch.distributed as dist
from lightning.fabric.utilities.exceptions import MisconfigurationException
from torch.utils.data import DataLoader

from fpar.engine.callbacks import progress_callback
from fpar.engine.datamodule import ShardSampler
from fpar.engine.inference import InferenceSession
from fpar.engine.scoring import ClipResult, ClipScorer
from fpar.engine.lightning_env import distributed_run, quiet_lightning
from fpar.errors import FparError


class ScoringModule(L.LightningModule):
    """Lightning's view of a :class:`ClipScorer`; ``results`` holds every rank's rows once the test ran."""

    def __init__(self, scorer: ClipScorer, batch_size: int, workers: int):
        super().__init__()
        self.scorer = scorer
        self.model = scorer.model  # registered, so that Lightning moves it to the device
        self.batch_size = batch_size
        self.workers = workers
        self.results: list[ClipResult] = []

    def _sampler(self) -> ShardSampler:
        return ShardSampler(len(self.scorer.dataset), rank=self.global_rank, world_size=self.trainer.world_size)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.scorer.dataset, batch_size=self.batch_size, sampler=self._sampler(),
                          num_workers=self.workers)

    def on_test_epoch_start(self) -> None:
        # the loader keeps the sampler's order: the k-th scored clip is the sampler's k-th index
        self._positions = iter(self._sampler())
        self._rows: list[ClipResult] = []

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._rows += self.scorer.score(batch, self._positions)

    def on_test_epoch_end(self) -> None:
        rows = self._rows
        if self.trainer.world_size > 1:
            gathered: list[Any] = [None] * self.trainer.world_size
            dist.all_gather_object(gathered, rows)
            rows = [row for part in gathered for row in part]
        self.results = sorted(rows, key=lambda row: row.position)


def score_distributed(session: InferenceSession, scorer: ClipScorer, batch_size: int, workers: int, accelerator: str,
                      devices: int, progress: bool) -> tuple[list[ClipResult], int]:
    """Every clip of ``scorer``'s dataset over ``devices`` processes, at ``session``'s precision
    (prepared with ``autocast=False``): (rows in dataset order, this process's rank)."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    module = ScoringModule(scorer, batch_size, workers)
    precision = session.precision
    if progress and rank_zero_only.rank == 0:
        session.announce()
    with quiet_lightning():
        try:
            trainer = L.Trainer(accelerator=accelerator, devices=devices, strategy="ddp" if devices > 1 else "auto",
                                logger=False, enable_checkpointing=False, enable_model_summary=False,
                                enable_progress_bar=progress, callbacks=[progress_callback()] if progress else [],
                                use_distributed_sampler=False, precision=precision)
        except (MisconfigurationException, ValueError, RuntimeError) as exc:
            raise FparError(f"accelerator={accelerator}, devices={devices}: {exc}") from None
        with distributed_run(trainer):
            trainer.test(module, verbose=False)
    return module.results, trainer.global_rank

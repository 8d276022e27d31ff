"""``FparDataModule``: the experiment's dataset, subject split and loaders.

Reproducibility: training clips are indexed by ``(index, epoch)`` pairs, so item ``i`` of epoch
``e`` draws its crop/flip/start from ``[seed, e, i]`` (``ClipDataset``) in whatever worker loads
it, and the shuffle of epoch ``e`` comes from ``[seed, e]``. The train loader is rebuilt at the
start of every epoch (the Trainer's ``reload_dataloaders_every_n_epochs=1``) for the epoch it is
about to run, so a run resumed at epoch ``e`` draws exactly the clips the uninterrupted run drew.

Distribution is done here rather than by Lightning's sampler replacement: training shards a padded
permutation across ranks (every rank takes the same number of steps), validation gives every
sample to exactly one rank with no padding (DDP accuracy counts each clip once).
"""

from __future__ import annotations

from typing import Any, Iterator

import lightning as L
from lightning.pytorch.accelerators import CUDAAccelerator
import torch
from torch.utils.data import DataLoader, Sampler

from fpar.data import ClipDataset, load_index, split_by_subject
from fpar.engine.compute import channels_last_batch
from fpar.errors import FparError


class EpochShuffleSampler(Sampler[tuple[int, int]]):
    """This rank's share of a seeded permutation of ``range(size)``, yielded as ``(index, epoch)``."""

    def __init__(self, size: int, *, seed: int, epoch: int, rank: int = 0, world_size: int = 1):
        self.size, self.seed, self.epoch, self.rank, self.world_size = size, seed, epoch, rank, world_size

    def _order(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        order += order[: (-self.size) % self.world_size]  # equal shares: DDP ranks step together
        return order[self.rank::self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(index, self.epoch) for index in self._order()])

    def __len__(self) -> int:
        return -(-self.size // self.world_size)


class ShardSampler(Sampler[int]):
    """Every ``world_size``-th index from ``rank``: each sample on exactly one rank, none repeated."""

    def __init__(self, size: int, *, rank: int = 0, world_size: int = 1):
        self.size, self.rank, self.world_size = size, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.size, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.world_size))


def subject_split(config: dict[str, Any], subjects: list[str]) -> tuple[list[str], list[str]]:
    """(train, val) subjects: ``data.fold`` holds one subject out, else the configured lists."""
    data = config["data"]
    if data["fold"] is None:
        return data["train_subjects"], data["val_subjects"]
    if data["fold"] not in subjects:
        raise FparError(f"config key 'data.fold': subject {data['fold']} is not in the dataset ({', '.join(subjects)})")
    return [s for s in subjects if s != data["fold"]], [data["fold"]]


class FparDataModule(L.LightningDataModule):
    """Train on the training subjects (random clips), validate on the held-out ones (centre view)."""

    def __init__(self, config: dict[str, Any], data_root: str | None = None):
        super().__init__()
        self.config = config
        data = config["data"]
        root = data_root or data["root"]
        if not root:
            raise FparError("no dataset given: pass --data ROOT or set data.root in the config")
        self.index = load_index(root, data["layout"])
        self.train_subjects, self.val_subjects = subject_split(config, self.index.subjects)
        self.train_set: ClipDataset | None = None
        self.val_set: ClipDataset | None = None

    @property
    def classes(self) -> list[str]:
        return self.index.classes

    def _dataset(self, instances, *, train: bool) -> ClipDataset:
        data = self.config["data"]
        return ClipDataset(instances, modalities=data["modalities"], num_frames=data["num_frames"],
                           stack_size=data["stack_size"], flow_mode=data["flow_mode"], train=train,
                           resize=data["resize"], crop=data["crop"], seed=self.config["trainer"]["seed"],
                           cache=data["cache"])

    def setup(self, stage: str | None = None) -> None:
        if self.val_set is None:
            train, val = split_by_subject(self.index, self.train_subjects, self.val_subjects)
            self.train_set = self._dataset(train, train=True)
            self.val_set = self._dataset(val, train=False)

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _loader(self, dataset: ClipDataset, sampler: Sampler) -> DataLoader:
        pin = self.trainer is not None and isinstance(self.trainer.accelerator, CUDAAccelerator)
        # The clips draw from their own seeded generators; a fixed loader generator keeps the
        # global RNG (dropout) untouched by the loader's worker seeds.
        return DataLoader(dataset, batch_size=self.config["trainer"]["batch_size"], sampler=sampler,
                          num_workers=self.config["data"]["workers"], pin_memory=pin,
                          generator=torch.Generator().manual_seed(0))

    def train_dataloader(self) -> DataLoader:
        rank, world_size = self._rank()
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        sampler = EpochShuffleSampler(len(self.train_set), seed=self.config["trainer"]["seed"], epoch=epoch,
                                      rank=rank, world_size=world_size)
        return self._loader(self.train_set, sampler)

    def val_dataloader(self) -> DataLoader:
        rank, world_size = self._rank()
        return self._loader(self.val_set, ShardSampler(len(self.val_set), rank=rank, world_size=world_size))

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        # on the device, once per batch: the model's convs then read NHWC without reorders
        return channels_last_batch(batch)

"""``FparDataModule``: the experiment's dataset, subject split and loaders.

Reproducibility: training clips are indexed by ``(index, epoch)`` pairs, so item ``i`` of epoch
``e`` draws its crop/flip/start from ``[seed, e, i]`` (``ClipDataset``) in whatever worker loads
it, and the shuffle of epoch ``e`` comes from ``[seed, e]``. The loaders are built once; the
train sampler runs in the main process and asks the DataModule, each time an epoch's iteration
starts, which epoch it is (:meth:`FparDataModule.epoch_to_draw`), then hands ``(index, epoch)``
pairs to the workers. So a run resumed at epoch ``e`` draws exactly the clips the uninterrupted
run drew, and the workers can persist across epochs (``data.persistent_workers``) with their open
store, cache and imports.

Feeding the device: pinned memory on CUDA, ``data.prefetch`` batches ahead per worker, and with
``data.normalize_on_device`` the clips travel as uint8 (a quarter of the bytes) and are converted
and normalised on the device after the transfer (:meth:`FparDataModule.on_after_batch_transfer`).

Distribution is done here rather than by Lightning's sampler replacement: training shards a padded
permutation across ranks (every rank takes the same number of steps), validation gives every
sample to exactly one rank with no padding (DDP accuracy counts each clip once).
"""

from __future__ import annotations

import functools
import os
from typing import Callable, Iterator

import lightning as L
from lightning.pytorch.accelerators import CUDAAccelerator
import torch
from torch.utils.data import DataLoader, Sampler

from fpar.data import ClipDataset, load_index, normalize_batch, split_by_subject
from fpar.data.splits import split_by_clips
from fpar.data.settings import DataSettings
from fpar.engine.settings import ExperimentSettings
from fpar.engine.compute import channels_last_batch
from fpar.engine.selection import selection_split
from fpar.errors import FparError
from fpar.io import die_with_parent, no_links_below


def worker_dies_with(parent: int, worker_id: int) -> None:
    """A DataLoader worker exits at once when the process that loads with it is killed."""
    die_with_parent(parent)


class EpochShuffleSampler(Sampler[tuple[int, int]]):
    """This rank's share of a seeded permutation of ``range(size)``, yielded as ``(index, epoch)``.

    ``epoch_source``: called when an iteration starts, for the epoch it is (else ``epoch`` stays)."""

    def __init__(self, size: int, *, seed: int, epoch: int, rank: int = 0, world_size: int = 1,
                 epoch_source: Callable[[], int] | None = None):
        self.size, self.seed, self.epoch, self.rank, self.world_size = size, seed, epoch, rank, world_size
        self.epoch_source = epoch_source

    def _order(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        order += order[: (-self.size) % self.world_size]  # equal shares: DDP ranks step together
        return order[self.rank::self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.epoch_source is not None:
            self.epoch = self.epoch_source()
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


def subject_split(data: DataSettings, subjects: list[str]) -> tuple[list[str], list[str]]:
    """(train, val) subjects: ``data.fold`` holds one subject out, else the configured lists."""
    if data.fold is None:
        return data.train_subjects, data.val_subjects
    if data.fold not in subjects:
        raise FparError(f"data.fold: subject {data.fold} is not in the dataset ({', '.join(subjects)})")
    return [s for s in subjects if s != data.fold], [data.fold]


class FparDataModule(L.LightningDataModule):
    """Train on the training subjects (random clips), validate (centre view) on what ``config.selection``
    chooses the checkpoint with: a part carved from the training subjects, or the held-out subjects."""

    def __init__(self, config: ExperimentSettings, data_root: str | None = None):
        super().__init__()
        self.config = config
        data = config.data
        root = data_root or data.root
        if not root:
            raise FparError("no dataset given: pass --data ROOT or set data.root in the config")
        self.index = load_index(root, data.layout)
        self.train_subjects, self.val_subjects = subject_split(data, self.index.subjects)
        # split here, not in setup(): an empty split fails before the run folder is written.
        # What validates is what selects the checkpoint (config.selection): a part carved from the
        # training clips, or the held-out ones themselves.
        if data.split is not None:  # a recorded instance-level split (docs/protocols.md, "EGTEA Gaze+")
            train, test = split_by_clips(self.index, data.split)
        else:
            train, test = split_by_subject(self.index, self.train_subjects, self.val_subjects)
        self._split = selection_split(train, test, config.selection, config.trainer.seed)
        self.train_set: ClipDataset | None = None
        self.val_set: ClipDataset | None = None
        self._loaders: dict[str, DataLoader] = {}

    @property
    def classes(self) -> list[str]:
        return self.index.classes

    @property
    def label_classes(self) -> dict[str, list[str]]:
        """The dataset's verb/noun classes ({kind: names}; docs/data.md, "Verb and noun labels")."""
        return self.index.label_classes

    def _dataset(self, instances, *, train: bool) -> ClipDataset:
        data = self.config.data
        # the labels of the model's label heads (model.heads), numbered as the dataset's classes
        labels = {kind: self.index.label_classes[kind] for kind in self.config.model.heads or ()}
        return ClipDataset(instances, data.clip, train=train, seed=self.config.trainer.seed,
                           cache=data.cache, normalize=not data.normalize_on_device, labels=labels)

    def _store(self, *, build: bool):
        """``data.store``: build it if missing or out of date (``build``), else open it."""
        from fpar.data.store import ensure_store, open_store

        from fpar.data.store import default_store_path

        data = self.config.data
        path = None if data.store is True else data.store
        if path is None:  # a .fpar-store link planted in the dataset would take the build's deletes elsewhere
            default = default_store_path(self.index.root, data.resize)
            no_links_below(default.parents[1], default)
        opener = ensure_store if build else open_store
        return opener(self.index, path, resize=data.resize, modalities=data.modalities)

    def prepare_data(self) -> None:
        # Lightning runs this in one process per node before setup(): the store is built once,
        # and every rank then opens the finished store.
        if self.config.data.store:
            self._store(build=True)

    def setup(self, stage: str | None = None) -> None:
        if self.val_set is None:
            store = self._store(build=False) if self.config.data.store else None
            train, val = self._split
            self.train_set = self._dataset(train, train=True)
            self.val_set = self._dataset(val, train=False)
            if store is not None:
                self.train_set.use_store(store)
                self.val_set.use_store(store)

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _loader(self, dataset: ClipDataset, sampler: Sampler, drop_last: bool = False) -> DataLoader:
        data = self.config.data
        pin = self.trainer is not None and isinstance(self.trainer.accelerator, CUDAAccelerator)
        workers = {"persistent_workers": data.persistent_workers, "prefetch_factor": data.prefetch} if data.workers else {}
        # The clips draw from their own seeded generators; a fixed loader generator keeps the
        # global RNG (dropout) untouched by the loader's worker seeds.
        return DataLoader(dataset, batch_size=self.config.trainer.batch_size, sampler=sampler,
                          num_workers=data.workers, pin_memory=pin, generator=torch.Generator().manual_seed(0),
                          drop_last=drop_last,
                          worker_init_fn=functools.partial(worker_dies_with, os.getpid()) if data.workers else None,
                          **workers)

    def train_dataloader(self) -> DataLoader:
        if "train" not in self._loaders:
            rank, world_size = self._rank()
            trainer = self.trainer
            sampler = EpochShuffleSampler(len(self.train_set), seed=self.config.trainer.seed,
                                          epoch=trainer.current_epoch if trainer is not None else 0, rank=rank,
                                          world_size=world_size,
                                          epoch_source=self.epoch_to_draw if trainer is not None else None)
            # a last batch of one clip cannot train batch norm ("Expected more than 1 value per channel"): dropped
            self._loaders["train"] = self._loader(self.train_set, sampler,
                                                  drop_last=len(sampler) % self.config.trainer.batch_size == 1)
        return self._loaders["train"]

    def epoch_to_draw(self) -> int:
        """The epoch the train loader's iteration starting now serves: the number of epochs whose
        training has been processed. An iteration starts at different moments depending on the
        loader: with workers, when the loader is made (for a resumed run while Lightning restores,
        ``current_epoch`` still naming the checkpoint's epoch); without, at its first batch, after the
        epoch has begun. The fit loop's ``processed`` count names the epoch to train at both moments
        (fpar saves checkpoints at epoch ends only, after an epoch is processed), so every worker
        count, a resumed and an extended run draw the clips of the uninterrupted run
        (docs/reliability.md)."""
        return self.trainer.fit_loop.epoch_progress.current.processed

    def val_dataloader(self) -> DataLoader:
        if "val" not in self._loaders:
            rank, world_size = self._rank()
            self._loaders["val"] = self._loader(self.val_set, ShardSampler(len(self.val_set), rank=rank,
                                                                           world_size=world_size))
        return self._loaders["val"]

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """The batch on the device: made float and normalised there with ``data.normalize_on_device``, then
        laid out channels-last."""
        if self.config.data.normalize_on_device:
            batch = normalize_batch(batch)
        # on the device, once per batch: the model's convs then read NHWC without reorders
        return channels_last_batch(batch)

"""The DataModule: subject splits and folds, seeded epoch shuffles, shards that cover each clip once."""

import pytest
import torch

from fpar.engine.config import validate_config
from fpar.engine.datamodule import EpochShuffleSampler, FparDataModule, ShardSampler
from fpar.errors import FparError

from helpers.tiny import tiny_config


def test_fixed_split_and_leave_one_subject_out(tiny_data):
    fixed = FparDataModule(validate_config(tiny_config()), str(tiny_data))
    fixed.setup()
    assert (fixed.train_subjects, fixed.val_subjects) == (["S1", "S3"], ["S2"])
    assert len(fixed.train_set) == 12 and len(fixed.val_set) == 7
    assert fixed.train_set.train and not fixed.val_set.train

    fold = FparDataModule(validate_config(tiny_config(data={"fold": "S3"})), str(tiny_data))
    fold.setup()
    assert (fold.train_subjects, fold.val_subjects) == (["S1", "S2"], ["S3"])
    assert {i.subject for i in fold.val_set.instances} == {"S3"}

    with pytest.raises(FparError, match="data.fold"):
        FparDataModule(validate_config(tiny_config(data={"fold": "S9"})), str(tiny_data))


def test_epoch_shuffle_is_seeded_by_epoch_and_shared_out_evenly():
    def order(epoch, seed=0, rank=0, world_size=1):
        return list(EpochShuffleSampler(10, seed=seed, epoch=epoch, rank=rank, world_size=world_size))

    assert order(3) == order(3)
    assert order(3) != order(4) and order(3) != order(3, seed=1)
    assert all(epoch == 3 for _, epoch in order(3))  # the dataset draws that epoch's crops
    assert sorted(i for i, _ in order(3)) == list(range(10))
    shards = [order(3, rank=r, world_size=3) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4] == [len(EpochShuffleSampler(10, seed=0, epoch=3, rank=r,
                                                                             world_size=3)) for r in range(3)]
    assert {i for s in shards for i, _ in s} == set(range(10))


def test_validation_shards_hold_every_clip_exactly_once():
    shards = [list(ShardSampler(7, rank=r, world_size=2)) for r in range(2)]
    assert sorted(shards[0] + shards[1]) == list(range(7))
    assert [len(ShardSampler(7, rank=r, world_size=2)) for r in range(2)] == [4, 3]


def test_data_store_is_built_on_first_use_and_gives_the_same_batches(tiny_data, tmp_path):
    store = tmp_path / "store"
    plain = FparDataModule(validate_config(tiny_config()), str(tiny_data))
    stored = FparDataModule(validate_config(tiny_config(data={"store": str(store)})), str(tiny_data))
    with pytest.raises(FparError, match="no finished store"):
        stored.setup()  # setup() only opens: prepare_data() builds
    stored.prepare_data()
    stored.setup()
    plain.setup()
    assert stored.train_set.store is not None and (store / "index.json").is_file()
    for want, got in ((plain.train_set[(3, 1)], stored.train_set[(3, 1)]), (plain.val_set[2], stored.val_set[2])):
        assert all(torch.equal(want[k], got[k]) for k in want if k != "id")


def _clips(loader):
    """(id, frames checksum) of every clip of one pass, in order."""
    return [(i, float(f.double().sum())) for batch in loader for i, f in zip(batch["id"], batch["frames"])]


def test_persistent_workers_keep_their_processes_and_draw_each_epochs_clips(tiny_data):
    """One loader for the whole run: the same worker processes every epoch, and epoch e draws the
    clips a fresh loader started at epoch e (a resumed run) draws."""
    config = validate_config(tiny_config(data={"workers": 1, "prefetch": 3}))
    module = FparDataModule(config, str(tiny_data))
    module.setup()
    loader = module.train_dataloader()
    assert loader.persistent_workers and loader.prefetch_factor == 3
    epochs, workers = [], []
    for epoch in range(3):
        loader.sampler.epoch = epoch  # under a Trainer, its current_epoch when the iteration starts
        epochs.append(_clips(loader))
        workers.append([w.pid for w in loader._iterator._workers])
    assert module.train_dataloader() is loader and workers[0] == workers[1] == workers[2]
    assert epochs[0] != epochs[1] != epochs[2]
    resumed = FparDataModule(config, str(tiny_data))
    resumed.setup()
    fresh = resumed.train_dataloader()
    fresh.sampler.epoch = 2
    assert _clips(fresh) == epochs[2]


def test_loader_settings_are_checked(tiny_data):
    with pytest.raises(FparError, match="data: prefetch needs workers > 0"):
        validate_config(tiny_config(data={"workers": 0, "prefetch": 2}))
    with pytest.raises(FparError, match="prefetch"):
        validate_config(tiny_config(data={"workers": 2, "prefetch": 0}))


def test_normalising_on_the_device_trains_the_same_model(tiny_data, tmp_path):
    """uint8 batches normalised after the transfer (here on the CPU) give the weights of the
    normalised-in-the-loader run, to within float rounding."""
    from fpar.checkpoint import load_checkpoint
    from fpar.engine.train import train

    runs = {}
    for on_device in (False, True):
        config = tiny_config(data={"normalize_on_device": on_device}, trainer={"epochs": 1})
        result = train(config, data_root=tiny_data, out_dir=tmp_path / str(on_device), progress=False)
        runs[on_device] = load_checkpoint(result["last_ckpt"])["state_dict"]
    assert runs[True].keys() == runs[False].keys()
    for key, value in runs[False].items():
        torch.testing.assert_close(runs[True][key], value, rtol=1e-4, atol=1e-5, msg=key)

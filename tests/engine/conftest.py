"""Engine test fixtures: a tiny dataset, single-threaded torch."""

from pathlib import Path

import pytest
import torch

from engine_tiny import write_dataset


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("tiny") / "data")


@pytest.fixture(autouse=True)
def one_thread():
    """The test machine's cores are shared: one intra-op thread is several times faster there."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)



@pytest.fixture(scope="session")
def trained_run(tiny_data, tmp_path_factory) -> dict:
    """Two epochs of the tiny flow network, validated after each (shared by several test files)."""
    from engine_tiny import flow_config
    from fpar.engine.train import train

    torch.set_num_threads(1)
    config = flow_config(experiment="flow-tiny")
    result = train(config, data_root=tiny_data, out_dir=tmp_path_factory.mktemp("runs"), progress=False)
    return {**result, "config": config}

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


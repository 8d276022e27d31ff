"""Shared test settings: paths to test data and the shared fixtures beside the project."""

import sys
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).parent
FIXTURES = TESTS / "fixtures"
# the tiny dataset and configs that train in seconds, shared by the engine and workflow tests
sys.path.insert(0, str(TESTS / "engine"))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    from engine_tiny import write_dataset

    return write_dataset(tmp_path_factory.mktemp("tiny") / "data")


@pytest.fixture
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

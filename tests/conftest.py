"""Shared test settings: paths to test data and the shared fixtures beside the project."""

import shutil
import sys
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).parent
FIXTURES = TESTS / "fixtures"
# tests/helpers: the tiny dataset, trees and stand-ins that several test files share
sys.path.insert(0, str(TESTS))

# The numerics tests: results that depend on the instructions oneDNN computes with (parity in fp32
# and bf16, precision choice, compute preparation, ONNX, stream = predict). CI runs them a second
# time as on an AVX2-only CPU (`make test-avx2`: ONEDNN_MAX_CPU_ISA=AVX2; docs/hardware.md).
NUMERICS = (
    "interop/test_parity.py", "interop/test_parity_bf16.py", "interop/test_from_reference.py",
    "interop/test_onnx_export.py", "engine/test_hardware.py", "engine/test_compute.py",
    "engine/test_predict.py", "engine/test_stream.py", "interop/test_onnx_stream.py", "models/test_blocks.py",
    "engine/test_packed_convolutions.py",
)


def pytest_collection_modifyitems(config, items):
    missing = [name for name in NUMERICS if not (TESTS / name).exists()]
    if missing:  # a renamed file would silently drop out of the AVX2 run
        raise pytest.UsageError(f"tests/conftest.py NUMERICS names missing files: {', '.join(missing)}")
    for item in items:
        if Path(item.fspath).relative_to(TESTS).as_posix() in NUMERICS:
            item.add_marker(pytest.mark.numerics)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    from helpers.tiny import write_dataset

    return write_dataset(tmp_path_factory.mktemp("tiny") / "data")


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory):
    """`tmp_path_factory.mktemp` for module-scoped fixtures, whose folders go when the module is done.

    The suite writes about 26 GB in all (ResNet checkpoints, frame trees); a CI disk holds a few.
    Each test's own `tmp_path` goes when it passes (pyproject: tmp_path_retention_policy).
    """
    made = []

    def mktemp(name: str) -> Path:
        made.append(tmp_path_factory.mktemp(name))
        return made[-1]

    yield mktemp
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


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
    from helpers.tiny import flow_config
    from fpar.engine.train import train

    torch.set_num_threads(1)
    config = flow_config(experiment="flow-tiny")
    result = train(config, data_root=tiny_data, out_dir=tmp_path_factory.mktemp("runs"), progress=False)
    return {**result, "config": config}


def _mount(args: list[str], folder: Path) -> bool:
    import subprocess

    done = subprocess.run(["mount", *args, str(folder), str(folder)] if "--bind" in args
                          else ["mount", *args, str(folder)], capture_output=True)
    return done.returncode == 0


def _umount(folder: Path) -> None:
    import gc
    import subprocess

    gc.collect()  # a writer that failed may hold its file open until collected
    if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "--lazy", str(folder)], capture_output=True)


@pytest.fixture
def read_only_dir(tmp_path) -> Path:
    """A folder nothing can be written into: a read-only bind mount as root (root ignores file
    modes), mode 0555 otherwise. Skipped where neither is possible."""
    import os

    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if not _mount(["--bind", "-o", "ro"], folder):
        pytest.skip("cannot mount a read-only folder here")
    try:
        try:
            (folder / "probe").write_text("x")
        except OSError:
            yield folder
        else:
            pytest.skip("the bind mount is not read-only here")
    finally:
        _umount(folder)


@pytest.fixture
def small_disk(tmp_path):
    """``make(size)``: a fresh file system of ``size`` (tmpfs), to fill up for real. Skipped
    where this process may not mount one."""
    made = []

    def make(size: str) -> Path:
        folder = tmp_path / f"disk{len(made)}"
        folder.mkdir()
        if not _mount(["-t", "tmpfs", "-o", f"size={size}", "tmpfs"], folder):
            pytest.skip("cannot mount a small file system (tmpfs) here")
        made.append(folder)
        return folder

    yield make
    for folder in made:
        _umount(folder)

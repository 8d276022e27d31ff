"""fpar as people install it: the built wheel in a fresh virtual environment, used outside the source
tree. The environment reuses this one's installed packages (a .pth line) so nothing is downloaded,
except the OpenCV floor test, which installs the oldest OpenCV that pyproject.toml allows."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# what building the wheel reads (copied, so the build's build/ and *.egg-info never land in the checkout)
SOURCES = ("src", "pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "docs", "ARCHITECTURE.md", "Makefile")
TINY_RUN = ("trainer.epochs=1", "trainer.val_every=1", "trainer.batch_size=2", "data.num_frames=2",
            "data.resize=32", "data.crop=32", "model.mem_size=8")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(module_tmp) -> Path:
    work = module_tmp("wheel")
    source = work / "source"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif (ROOT / name).is_file():
            source.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
          "-w", str(work / "dist"), str(source)], cwd=work)
    (built,) = (work / "dist").glob("fpar-*.whl")
    return built


def _venv(path: Path, wheel: Path) -> Path:
    """A fresh venv with the wheel installed and this environment's packages behind its own."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # appended after the venv's own site-packages: what the venv installs itself wins
    (site / "reuse_test_env.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _pip(python, "install", "--no-deps", str(wheel))
    return python


def _pip(python: Path, *args: str) -> None:
    _run([sys.executable, "-m", "pip", "--python", str(python), "--quiet", "--disable-pip-version-check", *args],
         cwd=python.parent)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def _run(cmd: list[str], cwd: Path, timeout: int = 300) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_the_installed_wheel_lists_configs_and_runs_a_recipe_outside_the_source_tree(wheel, tmp_path):
    python = _venv(tmp_path / "venv", wheel)
    fpar = str(tmp_path / "venv" / "bin" / "fpar")
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()

    where = _run([str(python), "-c", "import fpar, fpar.engine.config as c; print(fpar.__file__); print(c.CONFIG_DIR)"],
                 cwd).split()
    assert all(Path(p).is_relative_to(tmp_path / "venv") for p in where), where

    names = _run([fpar, "configs", "list"], cwd).split()
    assert "gtea61/rgb-attention_r34_16f_stage2" in names and "recipes/synthetic_demo" in names
    assert not any(name.startswith("_base_") for name in names)
    shown = _run([fpar, "configs", "show", "gtea61/two-stream_r34_16f_joint"], cwd)
    assert "experiment: two-stream_r34_16f_joint" in shown and "flow_model:" in shown

    _run([fpar, "synth", "data", "--subjects", "4", "--classes", "2", "--videos-per-class", "1", "--frames", "6",
          "--size", "40x32"], cwd)
    # a recipe of the user's own, naming packaged configs; the second stage starts from the first
    (cwd / "mine.yaml").write_text(
        "stages:\n"
        "  - {name: rgb, config: synthetic/rgb-attention_r18_8f_stage2}\n"
        "  - {name: ms, config: synthetic/rgb-ms-reg-mse_r18_8f_stage2, init_from: {stage: rgb}}\n")
    log = _run([fpar, "run", "mine.yaml", "--data", "data", "--out", "runs", *TINY_RUN], cwd)
    assert log.count(": trained, ") == 2, log
    best = cwd / "runs" / "rgb-ms-reg-mse_r18_8f_stage2" / "best.ckpt"
    _run([fpar, "export", str(best), "shared"], cwd)
    scores = json.loads(_run([fpar, "eval", "shared", "--data", "data", "--json"], cwd))
    assert scores["n"] == 2 and 0.0 <= scores["accuracy"] <= 1.0
    assert not any(cwd.glob("**/*.tmp")) and sorted(p.name for p in cwd.iterdir()) == \
        [".locks", "data", "mine.yaml", "runs", "shared"]  # .locks: the export's writer lock


def _opencv_floor() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    (floor,) = re.findall(r'"opencv-contrib-python-headless>=([\d.]+)"', text)
    return floor


def test_frames_read_with_the_oldest_opencv_pyproject_allows(wheel, tmp_path):
    floor = _opencv_floor()
    python = _venv(tmp_path / "venv", wheel)
    try:  # shadows this environment's newer OpenCV inside the venv only
        _pip(python, "install", "--no-deps", "--only-binary=:all:", f"opencv-contrib-python-headless=={floor}.*")
    except AssertionError as exc:
        if "Could not find a version" in str(exc) or "No matching distribution" in str(exc) \
                or "connection" in str(exc).lower():
            pytest.skip(f"the package index cannot be reached to fetch OpenCV {floor}")
        raise
    script = """
import sys, cv2, numpy as np
from pathlib import Path
from fpar.data.frames import read_frame
from fpar.prepare.flow import compute_flow
assert cv2.__version__.startswith(sys.argv[1] + "."), cv2.__version__
rgb = np.zeros((8, 10, 3), np.uint8); rgb[..., 0] = 200; rgb[..., 2] = 30
for ext in ("png", "jpg"):
    path = Path(f"frame.{ext}")
    cv2.imwrite(str(path), rgb[:, :, ::-1])  # OpenCV writes BGR
    frame = read_frame(path, color=True)
    assert frame.shape == (8, 10, 3) and abs(int(frame[4, 4, 0]) - 200) < 8 and abs(int(frame[4, 4, 2]) - 30) < 8, frame[4, 4]
    assert read_frame(path, color=False).shape == (8, 10)
moving = np.zeros((32, 32), np.uint8); moving[10:20, 8:18] = 255
for method in ("tvl1", "dis", "farneback"):  # tvl1 needs the contrib module
    flow = compute_flow(moving, np.roll(moving, 2, axis=1), method)
    assert flow.shape == (32, 32, 2) and np.isfinite(flow).all(), method
print(cv2.__version__)
"""
    version = _run([str(python), "-c", script, floor], tmp_path).strip()
    assert version.startswith(floor)

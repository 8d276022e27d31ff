"""``fpar report RUN RUN --out DIR``: one self-contained index.html comparing the runs, checked in
a real browser (Debian's chromium) when one is installed."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from fpar.cli import main
from fpar.engine.train import train

from helpers.tiny import tiny_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def render(html_path, png_path, profile, width=1280, height=2000):
    """index.html -> PNG with headless chromium, offline and without a profile of its own."""
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={profile}", f"--screenshot={png_path}", f"--window-size={width},{height}",
                    html_path.resolve().as_uri()], check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def two_run_report(trained_run, tiny_data, module_tmp):
    """The shared flow run (by its folder) and a tiny RGB-attention run (by its checkpoint), reported together."""
    rgb = train(tiny_config(experiment="rgb-tiny"), data_root=tiny_data, out_dir=module_tmp("runs"),
                progress=False)
    out = module_tmp("report")
    assert main(["report", trained_run["run_dir"], rgb["best_ckpt"], "--data", str(tiny_data), "--clips", "2",
                 "--out", str(out)]) == 0
    return out, [trained_run, rgb]


def test_two_runs_make_one_self_contained_page_with_a_comparison_table(two_run_report, capsys):
    out, runs = two_run_report
    page = (out / "index.html").read_text(encoding="utf-8")
    table = page[page.index("<h2>Comparison</h2>"):page.index("</table>")]
    for heading in ("top-1", "top-5", "mean class", "epochs", "best epoch", "selection"):
        assert f"<th>{heading}</th>" in table
    assert table.count(">test S2</td>") == 2  # both chose their checkpoint on the test subject
    assert "flow-tiny" in table and "rgb-tiny" in table
    sources = re.findall(r"src='([^']*)'", page)
    assert sources and all(src.startswith("data:image/") for src in sources)  # nothing to fetch
    assert "data:image/gif" in page  # the RGB run's CAM attention
    assert page.count("data:image/png") >= 2 * 3  # curves, confusion, correlation per run

    summary = json.loads((out / "report.json").read_text())
    assert [run["name"] for run in summary["runs"]] == ["flow-tiny", "rgb-tiny"]
    for run, trained in zip(summary["runs"], runs):
        assert run["epochs"] == 2 and run["best_epoch"] in (1, 2)
        assert run["accuracy"] == pytest.approx(trained["best_val_accuracy"])
        assert f"{100 * run['accuracy']:.1f}%" in table
    for name in ("flow-tiny", "rgb-tiny"):
        assert (out / name / "predictions.csv").is_file() and (out / name / "confusion.png").is_file()
    assert "| flow-tiny |" in (out / "report.md").read_text()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_the_report_renders_in_a_browser(two_run_report, tmp_path):
    out, _ = two_run_report
    png = tmp_path / "report.png"
    render(out / "index.html", png, tmp_path / "profile")
    assert png.is_file()
    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)
    assert pixels.shape[:2] == (2000, 1280)
    # not a blank page: many colours (pictures) and dark text on the light background
    assert len(np.unique(pixels.reshape(-1, 3)[::7], axis=0)) > 500
    assert (pixels.sum(axis=2) < 200).mean() > 0.001

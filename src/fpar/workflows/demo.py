"""``fpar demo``: the whole job end to end, on the CPU, in minutes.

1. generate the synthetic dataset (``fpar.data.synth``) under ``<out>/data``;
2. run the packaged demo recipe (``recipes/synthetic_demo``) into ``<out>/runs``: RGB attention,
   flow, two-stream, MS regression and two-in-one, ResNet-18 from random init;
3. evaluate every model on the held-out subject S2, which no run trained or chose its checkpoint
   on (the configs' ``selection: holdout``), and print one table with the chance level and the selection,
   also written as ``<out>/results.md`` and ``<out>/results.json``; each run also gets a report
   (``runs/<config>/report/report.md``: per-class accuracy, curves, confusion, CAM GIFs).

Everything goes under ``<out>``. Running it again reuses the dataset and the finished runs.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from fpar.engine.metric_registry import ACCURACY, MEAN_CLASS_ACCURACY, TOP5
from fpar.errors import FparError
from fpar.io import write_text

DEMO_RECIPE = "recipes/synthetic_demo"  # a packaged recipe's name (fpar.engine.config.find_config)
# fpar.data.synth.generate arguments: 4 subjects x 12 classes (4 verbs x 3 objects) x 3 videos
SYNTH = {"subjects": 4, "classes": 12, "videos_per_class": 3, "frames": 24, "size": (160, 120), "seed": 0}
HELD_OUT = ["S2"]
# What each recipe stage shows, for the table.
DESCRIPTIONS = {
    "rgb": "RGB ConvLSTM-attention",
    "flow": "temporal-warp flow",
    "two_stream": "two-stream (joint)",
    "ms_regression": "RGB + MS task (regression, MSE)",
    "two_in_one": "two-in-one (motion layers)",
}


def run_demo(out: str | os.PathLike = "demo-output", *, recipe: str | os.PathLike = DEMO_RECIPE,
             synth: dict[str, Any] | None = None, overrides: tuple[str, ...] = (), log=print) -> dict[str, Any]:
    """Run the demo into ``out``; returns the results (also written as results.json)."""
    from fpar.data.synth import generate
    from fpar.workflows.recipe import run_recipe
    from fpar.workflows.report import write_report

    start = time.monotonic()
    out = Path(out)
    data = out / "data"
    synth = {**SYNTH, **(synth or {})}
    if _same_dataset(data / "synth.json", synth):
        log(f"dataset: reusing {data}")
    else:
        log(f"dataset: generating {data} ...")
        generate(data, **synth, force=True)
        shutil.rmtree(out / "runs", ignore_errors=True)  # runs on an earlier dataset are stale

    runs = run_recipe(recipe, out_dir=out / "runs", data_root=str(data), overrides=overrides,
                      progress=True,  # bars on a terminal, one line per epoch in a redirected log
                      log=log)
    classes = json.loads((data / "synth.json").read_text())["classes"]
    rows = []
    for run in runs:
        if run["best_ckpt"] is None:
            raise FparError(f"{run['experiment']} has no best.ckpt: it ran fewer epochs than trainer.val_every")
        report_dir = Path(run["run_dir"]) / "report"
        metrics = write_report(run["best_ckpt"], data, report_dir, split=HELD_OUT,
                               title=DESCRIPTIONS.get(run["stage"], run["stage"]))
        rows.append({"stage": run["stage"], "model": DESCRIPTIONS.get(run["stage"], run["stage"]),
                     "experiment": run["experiment"],
                     **{name: metrics[name] for name in (ACCURACY, MEAN_CLASS_ACCURACY, TOP5)},
                     "n": metrics["n"], "train_seconds": run["seconds"], "selection": metrics["selection"],
                     "report": Path(metrics["report"]).relative_to(out).as_posix()})
    results = {"held_out": HELD_OUT, "classes": len(classes), "chance": 1 / len(classes), "models": rows,
               "wall_seconds": time.monotonic() - start}
    table = results_table(results)
    log(table)
    write_text(out / "results.md", table + "\n")
    write_text(out / "results.json", json.dumps(results, indent=1) + "\n")
    return results


def _same_dataset(meta_path: Path, synth: dict[str, Any]) -> bool:
    """Whether the dataset already at ``meta_path``'s folder was generated with these arguments."""
    if not meta_path.is_file():
        return False
    meta = json.loads(meta_path.read_text())
    found = {key: meta[key] for key in ("subjects", "videos_per_class", "frames", "seed")}
    found.update(classes=len(meta["classes"]), size=tuple(meta["size"]))
    return found == {**synth, "size": tuple(synth["size"])}


def results_table(results: dict[str, Any]) -> str:
    """Markdown: one row per model, accuracies in %, chance level and wall time underneath."""
    n = results["models"][0]["n"] if results["models"] else 0
    lines = [f"| model | config | {'/'.join(results['held_out'])} accuracy | mean class accuracy | top-5 | "
             "x chance | train time |",
             "|---|---|---|---|---|---|---|"]
    for row in results["models"]:
        lines.append(f"| {row['model']} | {row['experiment']} | {row[ACCURACY]:.1%} | "
                     f"{row[MEAN_CLASS_ACCURACY]:.1%} | {row[TOP5]:.1%} | "
                     f"{row[ACCURACY] / results['chance']:.1f} | {_duration(row['train_seconds'])} |")
    lines.append("")
    lines.append(f"Chance level: 1/{results['classes']} = {results['chance']:.1%}. Held-out subject "
                 f"{', '.join(results['held_out'])}: {n} clips. Wall time: {_duration(results['wall_seconds'])}.")
    selections = sorted({row["selection"]["text"] for row in results["models"] if "selection" in row})
    if selections:
        lines.append(f"Checkpoint selection: {'; '.join(selections)}. One run, one seed each: `fpar protocol` "
                     "gives the mean and spread over seeds (docs/protocols.md).")
    if results["models"] and "report" in results["models"][0]:
        lines.append("Per-model reports (per-class accuracy, confusion matrix, CAM GIFs): "
                     "runs/<config>/report/report.md.")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m {seconds:02d}s"

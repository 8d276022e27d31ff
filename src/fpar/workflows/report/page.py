"""``fpar report``'s page, ``index.html``: self-contained (the pictures embedded), every value
shown escaped.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import yaml

from fpar.engine.evaluate import printable_name
from fpar.engine.metric_registry import METRICS
from fpar.workflows.report.tables import cell, table_columns

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d2330;
       background: #f4f6f9; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 32px 60px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 21px; margin: 0 0 6px; }
h3 { font-size: 15px; margin: 18px 0 8px; color: #46506a; text-transform: uppercase; letter-spacing: .04em; }
.sub { color: #5b6478; margin: 0 0 18px; }
section { background: #fff; border-radius: 10px; box-shadow: 0 1px 3px rgba(20,30,60,.12);
          padding: 20px 24px; margin: 18px 0; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 6px 12px; text-align: right; border-bottom: 1px solid #e4e8ef; }
th:first-child, td:first-child { text-align: left; }
th { background: #eef1f6; font-weight: 600; }
td.best { font-weight: 700; color: #0b6e3a; }
.tiles { display: flex; gap: 12px; flex-wrap: wrap; margin: 10px 0 4px; }
.tile { background: #f0f4fa; border-radius: 8px; padding: 10px 16px; min-width: 120px; }
.tile b { display: block; font-size: 22px; } .tile span { color: #5b6478; font-size: 13px; }
.bar { background: #e4e8ef; border-radius: 4px; width: 220px; height: 12px; display: inline-block;
       vertical-align: middle; margin-left: 8px; overflow: hidden; }
.bar i { display: block; height: 100%; background: #3b7dd8; }
.grid { display: flex; gap: 16px; flex-wrap: wrap; align-items: flex-start; }
.grid figure { margin: 0; } figure img { max-width: 100%; border-radius: 4px; }
figcaption { font-size: 13px; color: #5b6478; margin-top: 4px; overflow-wrap: break-word; }
.clip { margin: 14px 0 22px; } .clip h4 { margin: 0 0 6px; font-size: 15px; }
.clip h4 span { font-weight: 400; color: #5b6478; margin-left: 8px; }
.clip-pics { display: flex; gap: 16px; flex-wrap: wrap; align-items: flex-start; }
.clip-pics figure { margin: 0; } .clip-pics figure.cam img { width: 240px; }
.clip-pics figure.strip { flex: 1 1 100%; } .clip-pics figure.strip img { max-width: 100%; }
img.pic { max-width: 540px; } img.wide { max-width: 100%; }
details pre { background: #f6f8fb; padding: 12px; border-radius: 6px; overflow-x: auto; font-size: 12.5px; }
code { font-size: 13px; }
"""


# what each explanation picture (fpar/viz/explain.py) shows, as the report captions it
EXPLANATION_CAPTIONS = {
    "cam": "CAM attention on each sampled frame (caption: predicted and true class)",
    "ms": "MS head: motion maps, their target on the head's grid, its predictions (colour bar: probability)",
    "modulation": "two-in-one: conv1 output before modulation, scale, shift and after (mean over channels)",
}


def _embed(out_dir: Path, relative: str) -> str:
    path = out_dir / relative
    mime = {"png": "image/png", "gif": "image/gif"}.get(path.suffix.lstrip(".").lower(), "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def html_page(runs: list[dict[str, Any]], out_dir: Path) -> str:
    esc = lambda text: html.escape(printable_name(str(text)))  # noqa: E731
    title = "Comparison of " + ", ".join(esc(run["name"]) for run in runs) if len(runs) > 1 else esc(runs[0]["name"])
    body = [f"<h1>{title}</h1>", f"<p class='sub'>fpar report: {len(runs)} run{'s' * (len(runs) > 1)}, "
            "held-out accuracy, training curves, confusion, feature correlation and attention.</p>"]
    if len(runs) > 1:
        columns = table_columns()
        best = {key: max((run[key] for run in runs if run.get(key) is not None), default=None)
                for key, _, kind in columns if kind == "percent"}
        head = "".join(f"<th>{esc(h)}</th>" for _, h, _ in columns)
        rows = "".join(
            f"<tr><td><a href='#run{i}'>{esc(run['name'])}</a></td>" + "".join(
                f"<td class='{'best' if key in best and run.get(key) == best[key] else ''}'>{esc(cell(run.get(key), kind))}</td>"
                for key, _, kind in columns) + "</tr>"
            for i, run in enumerate(runs))
        body.append(f"<section><h2>Comparison</h2><table><tr><th>run</th>{head}</tr>{rows}</table></section>")
    for i, run in enumerate(runs):
        body.append(_html_run(i, run, out_dir, esc))
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{title}</title>"
            f"<style>{STYLE}</style></head><body><main>{''.join(body)}</main></body></html>\n")


def _html_run(index: int, run: dict[str, Any], out_dir: Path, esc: Any) -> str:
    parts = [f"<section id='run{index}'><h2>{esc(run['name'])}</h2>",
             f"<p class='sub'>Checkpoint <code>{esc(run['checkpoint'])}</code>, evaluated on "
             f"{esc(', '.join(run['split']))} ({run['n']} clips, centre crop)"
             + (f"; {esc(run['epochs'])} epoch{'s' * (run['epochs'] != 1)}, best at epoch {esc(run['best_epoch'])}" if run["epochs"] else "")
             + f". Checkpoint selection: {esc(run['selection']['text'])}.</p>"]
    tiles = [(metric.title, run[name]) for name, metric in METRICS.items() if run.get(name) is not None]
    parts.append("<div class='tiles'>" + "".join(f"<div class='tile'><b>{100 * v:.1f}%</b><span>{esc(k)}</span></div>"
                                                 for k, v in tiles) + "</div>")
    pictures = run["pictures"]
    if "curves" in pictures:
        parts.append(f"<h3>Training</h3><img class='wide' alt='training curves' src='{_embed(out_dir, pictures['curves'])}'>")
    rows = "".join(f"<tr><td>{esc(name)}</td><td>{100 * acc:.1f}%<span class='bar'><i style='width:{100 * acc:.1f}%'>"
                   "</i></span></td></tr>" for name, acc in run["per_class"].items())
    parts.append(f"<h3>Accuracy per class</h3><table><tr><th>class</th><th>accuracy</th></tr>{rows}</table>")
    parts.append("<h3>Confusion and feature correlation</h3><div class='grid'>" + "".join(
        f"<figure><img class='pic' alt='{alt}' src='{_embed(out_dir, pictures[key])}'><figcaption>{alt}</figcaption></figure>"
        for key, alt in (("confusion", "confusion matrix (rows: true class)"),
                         ("features", "correlation of class-mean features")) if key in pictures) + "</div>")
    if run["explained"]:
        # one block per clip: its CAM GIF beside the caption, each strip of maps on a line of its own
        # (full width, so its row labels stay legible), captions that say what a picture shows
        blocks = []
        for clip_id, label, paths in run["explained"]:
            figures = []
            for path in paths:
                kind = Path(path).stem
                what = EXPLANATION_CAPTIONS.get(kind, kind)
                figures.append(f"<figure class='{'cam' if path.endswith('.gif') else 'strip'}'>"
                               f"<img alt='{esc(what)}' src='{_embed(out_dir, path)}'>"
                               f"<figcaption>{esc(what)}</figcaption></figure>")
            blocks.append(f"<div class='clip'><h4>{esc(clip_id)}<span>true class: {esc(label)}</span></h4>"
                          f"<div class='clip-pics'>{''.join(figures)}</div></div>")
        parts.append("<h3>What the model looks at</h3>" + "".join(blocks))
    if run["config"]:
        config = yaml.safe_dump(run["config"], sort_keys=False, allow_unicode=True)
        parts.append(f"<details><summary>Config</summary><pre>{esc(config)}</pre></details>")
    parts.append("</section>")
    return "".join(parts)

"""Reading a protocol folder's summary back, checked, and comparing two folders run by run.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from fpar.errors import FparError
from fpar.workflows.protocol.stats import summarise
from fpar.engine.metric_registry import protocol_metrics
from fpar.workflows.protocol.vocabulary import SUMMARY_FILE


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FparError(f"{where} is {value!r}, not a number")
    if not math.isfinite(value):
        raise FparError(f"{where} is {value}, not a finite number")
    return float(value)


def read_protocol(folder: str | os.PathLike) -> dict[str, Any]:
    """A protocol folder's summary with every run checked: fold, seed, finite numbers, no run twice."""
    path = Path(folder) / SUMMARY_FILE
    if not path.is_file():
        raise FparError(f"{folder}: no {SUMMARY_FILE} (run fpar protocol into it first)")
    try:
        result = json.loads(path.read_text())
        if not isinstance(result, dict) or not isinstance(result.get("runs"), list):
            raise ValueError("not an object with runs")
        config = result.get("config")
        # the metrics the protocol summarised when it ran (those registered then that it has)
        metrics = [metric for metric in protocol_metrics() if metric in result]
        if not metrics:
            raise ValueError("no summarised metric")
        runs, seen = [], {}
        for i, run in enumerate(result["runs"], 1):
            if not isinstance(run, dict) or not isinstance(run.get("fold"), str) \
                    or isinstance(run.get("seed"), bool) or not isinstance(run.get("seed"), int):
                raise ValueError(f"run {i} has no fold name and whole seed")
            stage = run.get("stage", config)
            key = (stage, run["fold"], run["seed"])
            where = f"{path}: run {i} (stage {stage}, fold {run['fold']}, seed {run['seed']})"
            if key in seen:
                raise FparError(f"{where} is listed twice (also run {seen[key]}); a run is paired once")
            seen[key] = i
            numbers = {metric: _number(run.get(metric), f"{where}: {metric}") for metric in metrics}
            heads = run.get("heads") or {}
            if not isinstance(heads, dict):
                raise ValueError(f"run {i}: heads is not an object")
            numbers["heads"] = {head: {metric: _number(value, f"{where}: {head} {metric}")
                                       for metric, value in values.items() if metric in metrics}
                                for head, values in heads.items() if isinstance(values, dict)}
            runs.append({**run, **numbers, "stage": stage, "key": key})
        result["runs"] = runs
        result["metrics"] = metrics
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise FparError(f"{path}: not a protocol summary ({exc})") from None
    return result


def _stages(result: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(run["stage"] for run in result["runs"]))


def _read_side(spec: str | os.PathLike) -> dict[str, Any]:
    """``DIR`` (every stage of its protocol) or ``DIR:STAGE`` (that stage's runs only)."""
    text = str(spec)
    folder, _, stage = text.rpartition(":")
    if not folder or Path(text).is_dir() or not stage:
        return read_protocol(spec)
    result = read_protocol(folder)
    stages = _stages(result)
    if stage not in stages:
        raise FparError(f"{folder} has no stage {stage!r} (its stages: {', '.join(stages)})")
    result["runs"] = [run for run in result["runs"] if run["stage"] == stage]
    return result


def compare(folder_a: str | os.PathLike, folder_b: str | os.PathLike) -> dict[str, Any]:
    """A - B, run by run (the same folds and seeds on both sides), per stage: mean difference, its
    std and 95% interval, for top-1, mean class accuracy and each label head both have. Two
    single-stage sides (two configs, or ``DIR:STAGE``: one stage of a recipe's protocol, so two
    stages of one folder pair up) pair their one stage; recipes pair the stages they share, and the
    top-level numbers are the last of those."""
    a, b = _read_side(folder_a), _read_side(folder_b)
    if a.get("protocol") != b.get("protocol"):
        raise FparError(f"{folder_a} ran protocol {a.get('protocol')} and {folder_b} {b.get('protocol')}: "
                        "only runs of the same protocol pair up")
    stages_a, stages_b = _stages(a), _stages(b)
    metrics = [metric for metric in a["metrics"] if metric in b["metrics"]]
    if len(stages_a) == 1 and len(stages_b) == 1:
        pairs = [(stages_a[0], stages_b[0])]
    else:
        pairs = [(stage, stage) for stage in stages_a if stage in stages_b]
    if not pairs:
        raise FparError(f"{folder_a} (stages {', '.join(stages_a)}) and {folder_b} (stages {', '.join(stages_b)}) "
                        "share no stage to pair")
    result = {"protocol": a["protocol"], "a": str(folder_a), "b": str(folder_b), "stages": {}}
    for stage_a, stage_b in pairs:
        runs_a = {run["key"][1:]: run for run in a["runs"] if run["stage"] == stage_a}
        runs_b = {run["key"][1:]: run for run in b["runs"] if run["stage"] == stage_b}
        if set(runs_a) != set(runs_b):
            only = sorted(set(runs_a) ^ set(runs_b))
            raise FparError(f"{folder_a} and {folder_b} hold different folds or seeds (unpaired: "
                            f"{', '.join(f'fold {f} seed {s}' for f, s in only[:4])}); run both with the same --seeds")
        keys = sorted(runs_a)
        diff: dict[str, Any] = {"pairs": len(keys)}
        for metric in metrics:
            diff[metric] = summarise([runs_a[k][metric] - runs_b[k][metric] for k in keys])
        heads = [h for h in runs_a[keys[0]]["heads"] if all(h in runs_b[k]["heads"] and h in runs_a[k]["heads"]
                                                             for k in keys)]
        diff["heads"] = {h: {metric: summarise([runs_a[k]["heads"][h][metric] - runs_b[k]["heads"][h][metric]
                                                for k in keys])
                             for metric in metrics if metric in runs_a[keys[0]]["heads"][h]} for h in heads}
        name = stage_a if stage_a == stage_b else f"{stage_a} - {stage_b}"
        result["stages"][name] = diff
    last = list(result["stages"])[-1]
    result.update(last_stage=last, **result["stages"][last])
    return result


def compare_text(result: dict[str, Any]) -> str:
    lines = [f"A = {result['a']}", f"B = {result['b']}",
             f"protocol {result['protocol']}, {result['pairs']} paired runs (same fold and seed)"]
    for stage, diff in result["stages"].items():
        if len(result["stages"]) > 1:
            lines.append(f"stage {stage} ({diff['pairs']} pairs):")
        rows = [(metric.title, diff[short]) for short, metric in protocol_metrics().items() if short in diff]
        rows += [(f"{head} {metric.replace('_', ' ')}", values[metric]) for head, values in diff["heads"].items()
                 for metric in protocol_metrics() if metric in values]
        for name, summary in rows:
            if summary["ci95"] is None:
                lines.append(f"{name:<16} A - B = {100 * summary['mean']:+.2f} points (one pair: no interval)")
            else:
                low, high = summary["ci95"]
                verdict = "A better" if low > 0 else "B better" if high < 0 else "no difference shown"
                lines.append(f"{name:<16} A - B = {100 * summary['mean']:+.2f} points, 95% interval "
                             f"[{100 * low:+.2f}, {100 * high:+.2f}] ({verdict})")
    return "\n".join(lines)

"""``fpar protocol``: a config, or a recipe of several stages, run under a named evaluation
protocol, every fold x seed, summarised as mean, standard deviation and 95% interval over the runs
(docs/protocols.md).

A config's runs are ``<out>/<experiment>__<fold>__seed<k>/``; a recipe's fold x seed is the folder
``<out>/<recipe>__<fold>__seed<k>/`` holding one run per stage, each stage's ``init_from`` pointing
at its parent trained on the same fold and seed. Runs train as recipes train (finished runs are
skipped, interrupted ones resume, a run of other settings is refused) and are scored once on
their fold's test set (``scores.json`` beside each). ``<out>/protocol.json`` holds the runs and the
summary; ``protocol.md`` and ``protocol.html`` the table, with the paper's figure where it reports
one. What a protocol depends on (dataset fingerprint, overrides, seeds) is kept in
``protocol-plan.json`` from its first run on, and a resumed protocol must match it. Every path
written is relative to the protocol folder, which can be moved or copied. :func:`compare` pairs two
protocol folders run by run.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from fpar.engine.config import find_config, load_config, parse_override, read_yaml
from fpar.errors import FparError
from fpar.io import inside, refuse_link, write_text
from fpar.workflows.recipe import load_recipe, resolve_init_from, train_or_skip

SCORES = "scores.json"  # a run's test-set scores, written once it is evaluated
SUMMARY_FILE = "protocol.json"
PLAN_FILE = "protocol-plan.json"  # what the protocol's runs depend on, written before the first one trains
GTEA61_SUBJECTS = ("S1", "S2", "S3", "S4")
EGTEA_SPLITS = ("split1", "split2", "split3")
METRICS = ("top1", "mean_class")
# the keys a protocol sets for each of its runs, and why an override may not
CONTROLLED = {
    "experiment": "the protocol names its runs <experiment>__<fold>__seed<k>",
    "trainer.seed": "the protocol runs seeds 0..K-1 (give --seeds K)",
    "data.train_subjects": "the protocol's folds choose the subjects",
    "data.val_subjects": "the protocol's folds choose the subjects",
    "data.fold": "the protocol's folds choose the subjects",
    "data.split": "the protocol's folds choose the clips",
    "data.root": "--data names the dataset",
}


@dataclass(frozen=True)
class Fold:
    name: str
    train: list[str]
    test: list[str]
    # an instance-level fold: the dataset's recorded split of this name (its clip lists), not subjects
    split: str | None = None


def _gtea61_s2(subjects: Sequence[str], splits: dict) -> list[Fold]:
    _require_subjects(subjects, GTEA61_SUBJECTS, "gtea61-s2")
    return [Fold("S2", ["S1", "S3", "S4"], ["S2"])]


def _leave_one_out(subjects: Sequence[str], splits: dict) -> list[Fold]:
    if len(subjects) < 2:
        raise FparError(f"leave-one-subject-out needs two subjects or more; the dataset has {', '.join(subjects)}")
    return [Fold(held, [s for s in subjects if s != held], [held]) for held in subjects]


def _gtea61_loso(subjects: Sequence[str], splits: dict) -> list[Fold]:
    _require_subjects(subjects, GTEA61_SUBJECTS, "gtea61-loso")
    return _leave_one_out(GTEA61_SUBJECTS, splits)


def _egtea(subjects: Sequence[str], splits: dict) -> list[Fold]:
    lacking = [name for name in EGTEA_SPLITS if name not in splits]
    if lacking:
        raise FparError("protocol egtea: EGTEA Gaze+'s three splits divide clips, not participants, and this dataset "
                        f"records no {', '.join(lacking)} clip lists (splits.json); import it with "
                        "fpar prepare --egtea ANNOTATION_DIR, the folder of action_idx.txt and the six "
                        "train/test_splitN.txt (docs/protocols.md, 'EGTEA Gaze+')")
    return [Fold(name, [], [], split=name) for name in EGTEA_SPLITS]


def _epic100(subjects: Sequence[str], splits: dict) -> list[Fold]:
    if {"train", "validation"} <= set(subjects):
        return [Fold("validation", ["train"], ["validation"])]
    raise FparError("protocol epic100: trains on EPIC_100_train.csv and tests on EPIC_100_validation.csv, whose "
                    "participants overlap, so the two must be told apart as subjects: import them into one "
                    "dataset with fpar prepare --epic EPIC_100_train.csv EPIC_100_validation.csv (subjects 'train' "
                    "and 'validation'; docs/protocols.md, 'EPIC-KITCHENS-100'); "
                    f"this dataset has subjects {', '.join(subjects)}")


# name -> (folds of a dataset's subjects and recorded splits, what it reports, what it is)
PROTOCOLS: dict[str, tuple[Callable[[Sequence[str], dict], list[Fold]], str, str]] = {
    "gtea61-s2": (_gtea61_s2, "top1", "train S1, S3, S4; test S2 (the paper's GTEA61*)"),
    "gtea61-loso": (_gtea61_loso, "top1", "four folds, each GTEA61 subject held out once"),
    "loso": (_leave_one_out, "top1", "leave one subject out, every subject of the dataset"),
    "egtea": (_egtea, "mean_class", "EGTEA Gaze+'s three train/test splits of the clips, mean class accuracy"),
    "epic100": (_epic100, "top1", "EPIC-KITCHENS-100: train on train, test on validation"),
}

# The paper's figure for a config is in the config file's header ("... Paper: 64.9% on S2"; every
# gtea61/ row has one, docs/experiments.md lists them), obtained this way:
PAPER_PROTOCOL = "gtea61-s2, one run, best epoch chosen on S2 (selection: test)"
_PAPER_FIGURE = re.compile(r"Paper: (\d+(?:\.\d+)?)% on S2")
# Figures published under a protocol itself, whatever the config: EGTEA Gaze+'s two-stream rows
# (RGB + flow, ResNet-34) as the LSTA paper (Sudhakaran, Escalera and Lanz, CVPR 2019) reports them
PUBLISHED = {
    "egtea": [
        {"method": "Ego-RNN (two-stream)", "mean_class": 0.6076},
        {"method": "LSTA (two-stream)", "mean_class": 0.6186},
    ],
}
PUBLISHED_PROTOCOL = {"egtea": "EGTEA Gaze+ splits 1-3, mean class accuracy averaged over the splits, "
                               "as the LSTA paper reports them"}


def _require_subjects(subjects: Sequence[str], wanted: Sequence[str], protocol: str) -> None:
    if sorted(subjects) != sorted(wanted):
        raise FparError(f"protocol {protocol} needs the subjects {', '.join(wanted)}; the dataset has "
                        f"{', '.join(subjects)}")


# --- statistics --------------------------------------------------------------------------------


def t_quantile(probability: float, dof: int) -> float:
    """The ``probability`` quantile of Student's t distribution (0.5 < probability < 1), from
    scipy.stats: 12.706 for (0.975, 1), 2.776 for (0.975, 4), 1.960 as ``dof`` grows."""
    if not 0.5 < probability < 1 or dof < 1:
        raise ValueError("t_quantile needs 0.5 < probability < 1 and dof >= 1")
    from scipy.stats import t as student_t  # loads only when a summary needs it

    return float(student_t.ppf(probability, dof))


def summarise(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "std" (n - 1), "ci95": [low, high] (t distribution), "n"}``; std and interval are
    null for a single value."""
    n = len(values)
    if n == 0:
        return {"mean": None, "std": None, "ci95": None, "n": 0}
    mean = sum(values) / n
    if n == 1:
        return {"mean": mean, "std": None, "ci95": None, "n": 1}
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(0.975, n - 1) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half], "n": n}


# --- running a protocol ------------------------------------------------------------------------


def is_recipe(path: Path) -> bool:
    """Whether the YAML file is a recipe (a mapping with ``stages``) rather than a config."""
    document = read_yaml(path, "recipe or config")
    return isinstance(document, dict) and "stages" in document


def refuse_controlled(overrides: Sequence[str]) -> None:
    """Overrides of what the protocol sets for each run: one line naming the key and why."""
    for item in overrides:
        key = parse_override(item)[0]
        if key in CONTROLLED:
            raise FparError(f"override {item!r}: {key} is set by fpar protocol for each run ({CONTROLLED[key]})")


def dataset_digest(index, splits: dict) -> str:
    """A fingerprint of the dataset a protocol scores: every instance's id, subject, class and frame
    counts per modality (the manifest's content, whatever the layout), the classes and the recorded
    splits; sha256, hex."""
    digest = hashlib.sha256()
    digest.update(json.dumps(index.classes).encode())
    for inst in sorted(index.instances + index.skipped, key=lambda i: i.instance_id):
        counts = ",".join(str(len(inst.frames(m))) for m in ("rgb", "flow_x", "flow_y", "mmaps"))
        digest.update(f"{inst.instance_id}\t{inst.subject}\t{inst.class_name}\t{counts}\n".encode(
            "utf-8", "backslashreplace"))
    digest.update(json.dumps(splits, sort_keys=True).encode())
    return digest.hexdigest()


def _fold_overrides(fold: Fold, seed: int) -> list[str]:
    if fold.split is not None:
        return [f"trainer.seed={seed}", "data.fold=null", f"data.split={json.dumps(fold.split)}"]
    return [f"trainer.seed={seed}", f"data.train_subjects={json.dumps(fold.train)}",
            f"data.val_subjects={json.dumps(fold.test)}", "data.fold=null", "data.split=null"]


@dataclass
class _Run:
    """One fold x seed: its folder under the protocol's, and the stages trained in it in order."""
    fold: Fold
    seed: int
    folder: str  # relative to the protocol folder: a config's run folder, or a recipe's fold x seed folder
    stages: list[dict[str, Any]] = field(default_factory=list)  # {name, config, init_from (stage refs)}


def _plan(config_path: Path, recipe: bool, folds: list[Fold], seeds: int, overrides: list[str]) -> tuple[str, list[_Run]]:
    """The protocol's name for the config or recipe and every fold x seed with its stages' configs,
    all checked before the first run trains."""
    if recipe:
        name = config_path.stem
    else:
        config = load_config(config_path, overrides)
        name = config.experiment
        _refuse_shared_parent(config, config_path)
    runs = []
    for fold in folds:
        for seed in range(seeds):
            per_run = [*overrides, *_fold_overrides(fold, seed)]
            folder = f"{name}__{fold.name}__seed{seed}"
            if recipe:
                stages = load_recipe(config_path, per_run)
            else:
                config = load_config(config_path, [*per_run, f"experiment={folder}"])
                stages = [{"name": name, "config": config, "init_from": None}]
            runs.append(_Run(fold, seed, folder, stages))
    return name, runs


def _refuse_shared_parent(config, config_path: Path) -> None:
    """A config whose ``init_from`` names another stage's run (a path relative to the out root) would
    start every fold x seed from one parent trained on some other split: under a protocol each needs
    its own, which a recipe trains. An absolute path (a checkpoint trained elsewhere) is taken as is."""
    init_from = config.init_from
    paths = [init_from] if isinstance(init_from, str) else list((init_from or {}).values())
    if not any(not Path(path).expanduser().is_absolute() for path in paths):
        return
    from fpar.engine.config import list_configs

    containing = [name for name in list_configs("recipes/") if _recipe_uses(name, config_path)]
    hint = f"run a recipe that trains it from its parent ({', '.join(containing)})" if containing else \
        "run a recipe of its stages"
    raise FparError(f"{config.experiment} starts from init_from {init_from}, another stage's run: under a protocol "
                    f"every fold and seed trains its own parent, so {hint}, or give init_from=null to train it "
                    "from scratch")


def _recipe_uses(recipe: str, config_path: Path) -> bool:
    path = find_config(recipe, kind="recipe")
    stages = read_yaml(path, "recipe").get("stages") or []
    wanted = config_path.resolve()
    for stage in stages:
        try:
            if find_config(stage["config"], relative_to=path.parent).resolve() == wanted:
                return True
        except (FparError, KeyError, TypeError):
            continue
    return False


def _check_plan(out_dir: Path, plan: dict[str, Any], force: bool, log) -> None:
    """A protocol folder resumed for another dataset, config, protocol, seeds or overrides would
    report runs those never produced: refused in one line naming the difference, unless ``force``."""
    path = out_dir / PLAN_FILE
    if not path.is_file():
        return
    try:
        kept = json.loads(path.read_text())
        if not isinstance(kept, dict):
            raise ValueError("not an object")
    except (OSError, ValueError) as exc:
        raise FparError(f"{path}: unreadable ({exc}); delete it to start the protocol afresh") from None
    names = {"dataset": "the dataset (its manifest digest)", "config": "the config or recipe",
             "protocol": "the protocol", "seeds": "--seeds", "overrides": "the overrides"}
    for key, what in names.items():
        if kept.get(key) != plan[key]:
            if force:
                log(f"{out_dir}: {what} changed ({kept.get(key)!r} -> {plan[key]!r}); --force: retraining every run")
                return
            shown = (f"{kept.get(key, '')[:12]}... -> {plan[key][:12]}..." if key == "dataset"
                     else f"{kept.get(key)!r} -> {plan[key]!r}")
            extra = f" (data root then: {kept.get('data_root')}, now: {plan['data_root']})" if key == "dataset" else ""
            raise FparError(f"{out_dir} holds a protocol run with another {key}: {what} {shown}{extra}; "
                            "give another --out, or --force to retrain its runs")
    if kept.get("data_root") != plan["data_root"]:
        log(f"{out_dir}: the same dataset now at {plan['data_root']} (was {kept.get('data_root')})")


def run_protocol(config_path: str | os.PathLike, *, data_root: str | os.PathLike, protocol: str, seeds: int,
                 out_dir: str | os.PathLike, overrides: Iterable[str] = (), force: bool = False, log=print,
                 **train_kwargs: Any) -> dict[str, Any]:
    """Train and score every fold x seed (skipping finished runs; ``force``: retraining them); write
    and return protocol.json's content. ``config_path`` names a config or a recipe."""
    from fpar import __version__
    from fpar.data import load_index
    from fpar.data.splits import read_splits
    from fpar.engine.selection import describe

    if protocol not in PROTOCOLS:
        raise FparError(f"unknown protocol {protocol!r} (choose {', '.join(PROTOCOLS)})")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise FparError(f"--seeds must be an integer >= 1, got {seeds!r}")
    make_folds, primary, _ = PROTOCOLS[protocol]
    out_dir = Path(out_dir)
    overrides = [str(item) for item in overrides]
    refuse_controlled(overrides)
    path = find_config(config_path, kind="recipe")
    recipe = is_recipe(path)
    first = load_recipe(path, overrides)[0]["config"] if recipe else load_config(path, overrides)
    index = load_index(data_root, first.data.layout)
    splits = read_splits(index.root)
    folds = make_folds(index.subjects, splits)
    name, runs = _plan(path, recipe, folds, seeds, overrides)
    plan = {"protocol": protocol, "config": name, "recipe": recipe, "seeds": seeds, "overrides": overrides,
            "data_root": str(Path(data_root).resolve()), "dataset": dataset_digest(index, splits)}
    _check_plan(out_dir, plan, force, log)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(inside(out_dir, PLAN_FILE), json.dumps(plan, indent=1) + "\n")

    records = []
    for i, run in enumerate(runs):
        root = inside(out_dir, run.folder)
        if force and root.exists():
            refuse_link(root)
            shutil.rmtree(root)
        log(f"[{i + 1}/{len(runs)}] fold {run.fold.name}, seed {run.seed}: {run.folder}")
        records += _run_stages(run, out_dir, data_root, recipe, log, train_kwargs)

    last_stage = runs[0].stages[-1]["name"]
    stages = {}
    for stage in dict.fromkeys(record["stage"] for record in records):
        chosen = [record for record in records if record["stage"] == stage]
        stages[stage] = {**{metric: summarise([r[metric] for r in chosen]) for metric in METRICS},
                         "heads": _head_summaries(chosen)}
    selection = runs[0].stages[-1]["config"].selection.model_dump()
    result = {
        "protocol": protocol, "description": PROTOCOLS[protocol][2], "primary": primary,
        "config": name, "recipe": recipe, "seeds": seeds, "last_stage": last_stage,
        "selection": {**selection, "text": describe(selection)},
        "overrides": overrides, "data_root": plan["data_root"], "dataset": plan["dataset"],
        "fpar_version": __version__,
        "runs": records, "stages": stages,
        **{metric: stages[last_stage][metric] for metric in METRICS}, "heads": stages[last_stage]["heads"],
        "paper": paper_figure(_stage_config_file(path, recipe, -1)),
        "published": [{**row, "protocol": PUBLISHED_PROTOCOL[protocol]} for row in PUBLISHED.get(protocol, [])],
    }
    write_text(inside(out_dir, SUMMARY_FILE), json.dumps(result, indent=1) + "\n")
    write_text(inside(out_dir, "protocol.md"), protocol_markdown(result) + "\n")
    write_text(inside(out_dir, "protocol.html"), protocol_html(result))
    log(protocol_markdown(result))
    return result


def _stage_config_file(path: Path, recipe: bool, position: int) -> Path:
    """The config file of a config, or of a recipe's stage at ``position``."""
    if not recipe:
        return path
    entry = read_yaml(path, "recipe")["stages"][position]
    return find_config(entry["config"], relative_to=path.parent)


def _run_stages(run: _Run, out_dir: Path, data_root, recipe: bool, log, train_kwargs) -> list[dict[str, Any]]:
    """Train and score each stage of one fold x seed in order; one record per stage."""
    from fpar.engine.config import validate_config
    from fpar.engine.selection import selection_subjects

    folder = inside(out_dir, run.folder)
    # a config's run is the folder itself; a recipe's stages are runs inside it, each init_from
    # pointing at its parent trained there (the same fold and seed)
    runs_root = folder if recipe else out_dir
    records = []
    for stage in run.stages:
        config = stage["config"]
        init_from = (resolve_init_from(stage["init_from"], run.stages) if recipe else None) or config.init_from
        if init_from is not None:
            config = validate_config({**config.as_dict(), "init_from": init_from})
        summary = train_or_skip(config, runs_root, data_root=str(data_root), **train_kwargs)
        run_dir = inside(runs_root, config.experiment)
        scores = _scores(run_dir, summary, data_root, run.fold)
        parents = [] if init_from is None else list(
            {init_from} if isinstance(init_from, str) else dict.fromkeys(init_from.values()))
        if recipe and len(run.stages) > 1:
            log(f"    {stage['name']}: top-1 {_percent(scores['top1'])}%, mean class {_percent(scores['mean_class'])}%")
        records.append({
            "stage": stage["name"], "fold": run.fold.name, "seed": run.seed, "split": run.fold.split,
            "test_subjects": run.fold.test,
            "selection_subjects": _selection_subjects(config, run.fold, selection_subjects),
            "n": scores["n"], "top1": scores["top1"], "mean_class": scores["mean_class"],
            "heads": scores.get("heads", {}),
            "run_dir": run_dir.relative_to(out_dir).as_posix(),
            "init_from": [(Path(runs_root.relative_to(out_dir)) / Path(parent).parent).as_posix()
                          if not Path(parent).is_absolute() else str(Path(parent).parent) for parent in parents],
        })
    return records


def _selection_subjects(config, fold: Fold, selection_subjects) -> list[str]:
    """The subjects whose clips chose the checkpoint; for a clip-level fold, which clips did."""
    method = config.selection.method
    if fold.split is None:
        return selection_subjects(config.selection.model_dump(), fold.train, fold.test)
    return {"holdout": [f"{fold.split} training clips"], "last": [], "test": [f"{fold.split} test clips"]}[method]


def _head_summaries(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Each label head's (and EPIC's verb x noun action's) top-1 and mean class over ``records``."""
    heads: dict[str, Any] = {}
    for head in dict.fromkeys(h for record in records for h in record["heads"]):
        values = [record["heads"][head] for record in records if head in record["heads"]]
        heads[head] = {metric: summarise([v[metric] for v in values]) for metric in METRICS if metric in values[0]}
    return heads


def paper_figure(config_path: str | os.PathLike) -> dict[str, Any] | None:
    """The paper's top-1 for this config file (from its header comment) and how it was obtained; None
    for a config the paper has no row for."""
    header = []
    for line in find_config(config_path).read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    found = _PAPER_FIGURE.search(" ".join(header))
    return None if found is None else {"top1": float(found.group(1)) / 100, "protocol": PAPER_PROTOCOL}


def _scores(run_dir: Path, summary: dict[str, Any], data_root: str | os.PathLike, fold: Fold) -> dict[str, Any]:
    """The run's best.ckpt scored on its fold's test set, once (kept in ``scores.json``)."""
    path = run_dir / SCORES
    checkpoint = summary["best_ckpt"]
    if checkpoint is None:
        raise FparError(f"{run_dir} has no best.ckpt: it ran fewer epochs than trainer.val_every")
    test = {"test_subjects": fold.test, "split": fold.split}
    if path.is_file() and summary["state"] == "done":
        kept = json.loads(path.read_text())
        if {key: kept.get(key) for key in test} == test:
            return kept
    from fpar.engine.evaluate import evaluate

    result = evaluate(checkpoint, data_root, split=fold.split or fold.test)
    scores = {**test, "n": result["n"], "top1": result["accuracy"],
              "mean_class": result["mean_class_accuracy"], "top5": result["top5"],
              "heads": {kind: {"top1": head["accuracy"], "mean_class": head["mean_class_accuracy"],
                               "top5": head["top5"]} for kind, head in result.get("heads", {}).items()}}
    from fpar.engine.epic_metrics import RULE_ACTION

    if RULE_ACTION in result:  # the action by EPIC's rule over the verb and noun heads
        scores["heads"][RULE_ACTION] = {"top1": result[RULE_ACTION]["accuracy"], "top5": result[RULE_ACTION]["top5"]}
    write_text(path, json.dumps(scores, indent=1) + "\n")
    return scores


# --- tables ------------------------------------------------------------------------------------


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _summary_cell(summary: dict[str, Any]) -> str:
    if summary["mean"] is None:
        return "-"
    if summary["std"] is None:
        return f"{_percent(summary['mean'])} (one run)"
    low, high = summary["ci95"]
    return f"{_percent(summary['mean'])} ± {_percent(summary['std'])} [{_percent(low)}, {_percent(high)}]"


def _head_columns(result: dict[str, Any]) -> list[str]:
    return list(result.get("heads") or {})


def _table_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]], list[list[str]]]:
    recipe = result.get("recipe", False)
    heads = _head_columns(result)
    head = [*(["stage"] if recipe else []), "fold", "seed", "test", "selection", "clips", "top-1 %",
            "mean class %", *(f"{h} top-1 %" for h in heads)]
    rows = []
    for run in result["runs"]:
        test = f"{run['split']} test clips" if run.get("split") else ", ".join(run["test_subjects"])
        rows.append([*([run["stage"]] if recipe else []), run["fold"], str(run["seed"]), test,
                     ", ".join(run["selection_subjects"]) or "none", str(run.get("n", "-")),
                     _percent(run["top1"]), _percent(run["mean_class"]),
                     *(_percent(run.get("heads", {}).get(h, {}).get("top1")) for h in heads)])
    totals = []
    stages = result.get("stages") or {result["config"]: result}
    for stage, summary in stages.items():
        if not recipe and stage != result["config"]:
            continue
        totals.append([*([stage] if recipe else []), "all", f"{result['seeds']} seed(s)", "", "", "",
                       _summary_cell(summary["top1"]), _summary_cell(summary["mean_class"]),
                       *(_summary_cell(summary["heads"][h]["top1"]) if h in summary.get("heads", {}) else "-"
                         for h in heads)])
    return head, rows, totals


def _notes(result: dict[str, Any]) -> list[str]:
    what = "recipe" if result.get("recipe") else "config"
    notes = [f"Protocol {result['protocol']} ({result['description']}), {what} {result['config']}, "
             f"{result['top1']['n']} runs" + (f" of its last stage, {result['last_stage']}" if result.get("recipe") else "")
             + "; summary: mean ± standard deviation (n-1) [95% interval, t distribution].",
             f"Checkpoint selection: {result['selection']['text']}."
             + (" For a split of the clips, the training subjects' clips are the split's training clips."
                if any(run.get("split") for run in result["runs"]) else "")]
    if "data_root" in result:
        notes.append(f"Data: {result['data_root']} (dataset digest {result['dataset'][:12]}); overrides: "
                     f"{' '.join(result['overrides']) or 'none'}; fpar {result['fpar_version']}.")
    if result.get("heads"):
        from fpar.engine.epic_metrics import RULE_ACTION

        notes.append(f"Head columns: each label head's top-1; {RULE_ACTION}: the action by EPIC-KITCHENS-100's rule "
                     "(top-100 verbs x top-100 nouns) from the verb and noun heads.")
    paper = result.get("paper")
    if paper:
        notes.append(f"The paper reports {_percent(paper['top1'])}% top-1 for this config ({paper['protocol']}).")
    for row in result.get("published") or ():
        notes.append(f"Published: {row['method']} {_percent(row['mean_class'])}% mean class accuracy ({row['protocol']}).")
    return notes


def protocol_markdown(result: dict[str, Any]) -> str:
    head, rows, totals = _table_rows(result)
    clean = lambda text: str(text).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    lines += ["| " + " | ".join(f"**{clean(c)}**" if c else "" for c in total) + " |" for total in totals]
    return "\n".join([*lines, "", *_notes(result)])


def protocol_html(result: dict[str, Any]) -> str:
    esc = html.escape
    head, rows, totals = _table_rows(result)
    cells = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    summary = "".join(f"<tr>{''.join(f'<td><b>{esc(c)}</b></td>' for c in total)}</tr>" for total in totals)
    table = f"<table><tr>{''.join(f'<th>{esc(h)}</th>' for h in head)}</tr>{cells}{summary}</table>"
    notes = "".join(f"<p>{esc(note)}</p>" for note in _notes(result))
    title = esc(f"{result['config']}: {result['protocol']}")
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
            "<style>body{font:15px/1.45 system-ui,sans-serif;margin:32px}table{border-collapse:collapse}"
            "th,td{padding:5px 12px;border-bottom:1px solid #dde}th{background:#eef1f6}</style></head>"
            f"<body><h1>{title}</h1>{table}{notes}</body></html>\n")


# --- comparing two protocol folders ------------------------------------------------------------


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
            numbers = {metric: _number(run.get(metric), f"{where}: {metric}") for metric in METRICS}
            heads = run.get("heads") or {}
            if not isinstance(heads, dict):
                raise ValueError(f"run {i}: heads is not an object")
            numbers["heads"] = {head: {metric: _number(value, f"{where}: {head} {metric}")
                                       for metric, value in values.items() if metric in METRICS}
                                for head, values in heads.items() if isinstance(values, dict)}
            runs.append({**run, **numbers, "stage": stage, "key": key})
        result["runs"] = runs
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
        for metric in METRICS:
            diff[metric] = summarise([runs_a[k][metric] - runs_b[k][metric] for k in keys])
        heads = [h for h in runs_a[keys[0]]["heads"] if all(h in runs_b[k]["heads"] and h in runs_a[k]["heads"]
                                                             for k in keys)]
        diff["heads"] = {h: {metric: summarise([runs_a[k]["heads"][h][metric] - runs_b[k]["heads"][h][metric]
                                                for k in keys])
                             for metric in METRICS if metric in runs_a[keys[0]]["heads"][h]} for h in heads}
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
        rows = [(name, diff[metric]) for metric, name in (("top1", "top-1"), ("mean_class", "mean class"))]
        rows += [(f"{head} {metric.replace('_', ' ')}", values[metric]) for head, values in diff["heads"].items()
                 for metric in METRICS if metric in values]
        for name, summary in rows:
            if summary["ci95"] is None:
                lines.append(f"{name:<16} A - B = {100 * summary['mean']:+.2f} points (one pair: no interval)")
            else:
                low, high = summary["ci95"]
                verdict = "A better" if low > 0 else "B better" if high < 0 else "no difference shown"
                lines.append(f"{name:<16} A - B = {100 * summary['mean']:+.2f} points, 95% interval "
                             f"[{100 * low:+.2f}, {100 * high:+.2f}] ({verdict})")
    return "\n".join(lines)

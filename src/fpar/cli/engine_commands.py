"""``fpar train`` and ``fpar eval``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fpar.cli.common import (MAX_PROCESSES, accelerator_for, add_compute_options, at_least, devices, intermixed,
                             require_device)
from fpar.data.transforms import VIEWS
from fpar.engine.metric_registry import METRICS, metrics_text
from fpar.engine.run_folder import DEFAULT_OUT
from fpar.engine.settings import PRECISIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train", help="train one experiment config",
        description="Train one experiment. The run directory <out>/<experiment>/ gets config.yaml, best.ckpt, "
                    "last.ckpt, metrics.csv/json and TensorBoard logs. Multi-GPU/multi-node: --devices/--num-nodes "
                    "(or launch with torchrun / SLURM and set trainer.strategy=ddp).")
    intermixed(train)
    train.add_argument("config", help="experiment YAML or packaged config name (e.g. gtea61/rgb-attention_r34_16f_stage2; "
                                      "fpar configs list); with --resume also a run folder")
    train.add_argument("overrides", nargs="*", metavar="key.sub=value",
                       help="config overrides, values in YAML (e.g. trainer.epochs=10 optimizer.lr=1e-3)")
    train.add_argument("--data", metavar="ROOT", help="dataset root (overrides data.root)")
    train.add_argument("--out", metavar="DIR", help=f"runs folder (default: {DEFAULT_OUT})")
    train.add_argument("--resume", action="store_true",
                       help="continue the run from its last.ckpt, with the settings saved in its config.yaml "
                            "(overrides may change only what a resumed run may: trainer.epochs, devices, loggers, ...)")
    train.add_argument("--dry-run", action="store_true",
                       help="print the resolved settings and the run folder it would write, and stop")
    train.add_argument("--devices", type=devices, metavar="N", help="devices per node (int or auto)")
    train.add_argument("--num-nodes", type=at_least(1, MAX_PROCESSES), metavar="N", help="number of nodes")
    train.add_argument("--precision", choices=PRECISIONS, help="numeric precision")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_compute_options(train)
    train.set_defaults(func=run_train)

    ev = subparsers.add_parser(
        "eval", help="evaluate a checkpoint on held-out subjects",
        description="Top-1, top-5, mean per-class and per-class accuracy of a checkpoint.")
    ev.add_argument("checkpoint", help="fpar checkpoint (best.ckpt, last.ckpt, an import or an export), "
                                       "or a run folder (its best.ckpt)")
    ev.add_argument("--data", metavar="ROOT", required=True, help="dataset root")
    ev.add_argument("--split", metavar="S2[,S4]", help="subjects to evaluate on, or a split the dataset records (splits.json: its test clips, "
                         "e.g. split2) (default: the run's val subjects, or the test clips of its data.split)")
    ev.add_argument("--views", choices=VIEWS, default="center",
                    help="centre crop, or five/ten crops with averaged scores")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--predictions", metavar="FILE", help="write per-clip predictions and scores (CSV)")
    ev.add_argument("--batch-size", type=at_least(1), default=8, metavar="N")
    ev.add_argument("--workers", type=at_least(0), default=0, metavar="N", help="data-loading processes")
    ev.add_argument("--devices", type=at_least(1, MAX_PROCESSES), default=1, metavar="N", help="processes (DDP) to score with")
    ev.add_argument("--accelerator", default="auto", help="auto, cpu, gpu, ... (--device says it shorter)")
    add_compute_options(ev)
    ev.add_argument("--precision", choices=PRECISIONS,
                    help="numeric precision (default: the checkpoint's training precision; auto: the hardware's fastest)")
    epic = ev.add_argument_group("EPIC-KITCHENS-100 (a model with verb and noun heads of 97 and 300 classes)")
    epic.add_argument("--epic-results", metavar="FILE",
                      help="write the challenge's results file (.pt or .npz; fpar score-epic reads it)")
    epic.add_argument("--epic-submission", metavar="FILE", help="write the challenge's submission JSON")
    for level, what in (("pt", "pretraining"), ("tl", "training labels"), ("td", "training data")):
        epic.add_argument(f"--sls-{level}", type=int, choices=range(6), metavar="0-5",
                          help=f"the submission's supervision level for {what} (sls_{level})")
    ev.set_defaults(func=run_eval)


def run_train(args: argparse.Namespace) -> int:
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from fpar.engine.config import dump_config, load_config
    from fpar.engine.run_folder import resumed_run
    from fpar.engine.train import train

    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"trainer.accelerator={accelerator_for(require_device(args.device))}")
    out = args.out
    if args.resume:
        config, out_root = resumed_run(args.config, overrides, args.out)
        out = str(out_root)
    else:
        refuse_run_folder(args.config)
        config = load_config(args.config, overrides)
    if args.dry_run:
        run_dir = Path(out or DEFAULT_OUT) / config.experiment
        print(f"# run folder {run_dir} ({train_plan(run_dir)}); settings (before --data/--devices/--num-nodes/--precision):")
        print(dump_config(config), end="")
        return 0
    result = train(config, data_root=args.data, out_dir=out, resume=args.resume, devices=args.devices,
                   num_nodes=args.num_nodes, precision=args.precision, progress=not args.no_progress)
    if rank_zero_only.rank == 0:
        best = result["best_val_accuracy"]
        from fpar.engine.selection import describe

        epochs = result["epochs_done"]  # the run folder's state, as fpar runs says it
        print(f"{config.experiment}: {result['state']} after {epochs} epoch{'s' * (epochs != 1)}, best validation "
              f"accuracy {'-' if best is None else f'{100 * best:.1f}%'}")
        print(f"  selection      {describe(config.selection.model_dump(), config.trainer.seed)}")
        print(f"  run directory  {result['run_dir']}")
        print(f"  best           {result['best_ckpt'] or '(no validation yet)'}")
    return 0


def refuse_run_folder(config: str) -> None:
    """A run folder given without --resume: say what to add rather than "config not found"."""
    from fpar.engine.run_folder import is_run_folder
    from fpar.errors import FparError

    if is_run_folder(config):
        raise FparError(f"{config} is a run folder: add --resume to continue it (with its own settings)")


def train_plan(run_dir: Path) -> str:
    """What ``fpar train`` does with ``run_dir`` (``--dry-run`` says it): ``would be created``, or
    the run's state (fpar runs' word) and whether ``--resume`` continues it."""
    from fpar.engine.run_folder import LAST_CKPT, RUNNING, lock_file, run_state
    from fpar.locking import lock_holder

    state = run_state(run_dir)
    if state is None:
        return "would be created"
    if state == RUNNING:
        return f"{state}: another process writes it ({lock_holder(lock_file(run_dir.parent, run_dir.name))})"
    if (run_dir / LAST_CKPT).is_file():
        return f"{state}: --resume continues it from {LAST_CKPT}"
    return f"{state}, without its resume point ({LAST_CKPT}): train it anew under another name"


def run_eval(args: argparse.Namespace) -> int:
    from fpar.engine.epic_metrics import RULE_ACTION
    from fpar.engine.evaluate import evaluate, printable_name
    from fpar.workflows.report import resolve_run

    accelerator = accelerator_for(require_device(args.device), args.accelerator)
    # a run folder: its best.ckpt (else last.ckpt), as fpar report reads one
    checkpoint = resolve_run(args.checkpoint) if Path(args.checkpoint).is_dir() else args.checkpoint
    result = evaluate(checkpoint, args.data, split=args.split, views=args.views, batch_size=args.batch_size,
                      devices=args.devices, accelerator=accelerator, workers=args.workers,
                      predictions_csv=args.predictions, precision=args.precision, progress=True,
                      epic_results=args.epic_results, epic_submission=args.epic_submission,
                      supervision={"sls_pt": args.sls_pt, "sls_tl": args.sls_tl, "sls_td": args.sls_td})
    if result.pop("rank") != 0:
        return 0  # the first process prints
    del result["clips"]  # per-clip rows: --predictions writes them
    result["classes"] = [printable_name(name) for name in result["classes"]]
    result["per_class"] = {printable_name(name): acc for name, acc in result["per_class"].items()}
    for head in result.get("heads", {}).values():
        head["per_class"] = {printable_name(name): acc for name, acc in head["per_class"].items()}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"checkpoint   {result['checkpoint']}")
    print(f"split        {','.join(result['split'])} ({result['n']} clips, {result['views']} view{'s' * (result['views'] != 'center')})")
    print(f"selection    {result['selection']['text']}")
    for name, metric in METRICS.items():
        print(f"{metric.title:<12} {100 * result[name]:5.1f}%")
    for kind, head in result.get("heads", {}).items():
        print(f"{kind:<12} {metrics_text(head, number='5.1f')}")
    if RULE_ACTION in result:
        print(f"verb x noun  {metrics_text(result[RULE_ACTION], number='5.1f')}  "
              "(action by EPIC's rule from the verb and noun heads)")
    width = max(len("class"), *(len(name) for name in result["per_class"]))
    print(f"\n{'class':<{width}}  accuracy")
    for name, acc in result["per_class"].items():
        print(f"{name:<{width}}  {100 * acc:6.1f}%")
    written = [(label, path) for label, path in (("predictions", args.predictions), ("EPIC results", args.epic_results),
                                                 ("submission", args.epic_submission)) if path]
    if written:
        print()
    for label, path in written:
        print(f"{label:<12} {path}")
    return 0

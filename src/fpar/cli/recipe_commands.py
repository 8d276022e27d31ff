"""``fpar run`` (multi-stage recipes), ``fpar sweep`` (hyper-parameter grids), ``fpar demo``."""

from __future__ import annotations

import argparse

from fpar.cli.common import (MAX_PROCESSES, accelerator_for, add_compute_options, at_least, devices, intermixed,
                             require_device)
from fpar.engine.run_folder import DEFAULT_OUT
from fpar.engine.settings import PRECISIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser(
        "run", help="run a multi-stage recipe (e.g. RGB stage 1 -> 2, flow, two-stream), skipping finished stages",
        description="Train every stage of RECIPE in order. Finished stages are skipped and an interrupted one "
                    "resumes from its last.ckpt, so running the same command again continues the recipe.")
    intermixed(run)  # overrides may follow --data/--out
    run.add_argument("recipe", help="recipe YAML or packaged recipe name, e.g. gtea61_two-stream_16f (fpar configs list recipes/)")
    _add_common(run)
    run.add_argument("overrides", nargs="*", metavar="key.sub=value",
                     help="config overrides applied to every stage, e.g. trainer.epochs=10")
    run.set_defaults(func=_run)

    sweep = subparsers.add_parser(
        "sweep", help="train every combination of a hyper-parameter grid and tabulate the best accuracies",
        description="Each combination trains as its own run <out>/<experiment>__key=value__...; finished runs "
                    "are skipped, interrupted ones resume. The results table is printed and written as "
                    "<out>/<experiment>__sweep.csv and .md.")
    intermixed(sweep)
    sweep.add_argument("config", help="experiment config YAML or packaged config name")
    _add_common(sweep)
    sweep.add_argument("axes", nargs="+", metavar="key.sub=v1,v2",
                       help="grid axes, e.g. trainer.batch_size=16,32 scheduler.milestones=[25,75],[50,100]")
    sweep.add_argument("--set", dest="overrides", action="append", default=[], metavar="key.sub=value",
                       help="a fixed override for every run (repeatable)")
    sweep.set_defaults(func=_sweep)

    demo = subparsers.add_parser(
        "demo", help="the whole job end to end on a synthetic dataset, on the CPU, in minutes",
        description="Generate a synthetic GTEA-like dataset, train RGB attention, flow, two-stream, MS regression "
                    "and two-in-one models on it, evaluate each on the held-out subject and print one table.")
    demo.add_argument("--out", default="demo-output", help="the one folder everything goes to (default %(default)s)")
    demo.set_defaults(func=_demo)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", dest="data_root", metavar="ROOT", help="dataset root (overrides data.root)")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help="root of the run directories (default %(default)s)")
    parser.add_argument("--devices", type=devices, metavar="N", help="devices per node, int or auto "
                        "(overrides trainer.devices)")
    parser.add_argument("--num-nodes", type=at_least(1, MAX_PROCESSES), metavar="N", help="nodes (overrides trainer.num_nodes)")
    parser.add_argument("--precision", choices=PRECISIONS, help="numeric precision (overrides trainer.precision)")
    parser.add_argument("--dry-run", action="store_true",
                        help="list the runs it would make (train, resume or skip) with their main settings, and stop")
    add_compute_options(parser)


def _device_overrides(args: argparse.Namespace) -> list[str]:
    """``--device`` as the trainer.accelerator override every run gets (checked once, here)."""
    if args.device is None:
        return list(args.overrides)
    return [*args.overrides, f"trainer.accelerator={accelerator_for(require_device(args.device))}"]


def _scale_kwargs(args: argparse.Namespace) -> dict:
    return {"data_root": args.data_root, "out_dir": args.out, "devices": args.devices,
            "num_nodes": args.num_nodes, "precision": args.precision}


def _run(args: argparse.Namespace) -> int:
    from fpar.engine.run_folder import step_words
    from fpar.workflows.recipe import format_accuracy, load_recipe, run_recipe

    if args.dry_run:
        _print_plan([stage["config"] for stage in load_recipe(args.recipe, _device_overrides(args))], args.out)
        return 0
    results = run_recipe(args.recipe, overrides=_device_overrides(args), **_scale_kwargs(args))
    print()
    print(_table(("stage", "run", "", "epochs", "best val"),
                 [(r["stage"], r["run_dir"], step_words(r["step"], r["state"], done=True), r["epochs_done"],
                   format_accuracy(r["best_val_accuracy"])) for r in results]))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from fpar.workflows.sweep import expand_grid, run_sweep, sweep_configs

    if args.dry_run:
        _print_plan(sweep_configs(args.config, expand_grid(args.axes), _device_overrides(args), args.out), args.out)
        return 0
    run_sweep(args.config, args.axes, overrides=_device_overrides(args), **_scale_kwargs(args))
    return 0


def _print_plan(configs: list, out: str) -> None:
    """``--dry-run``: each run with what would happen to it and the settings that differ most often."""
    from pathlib import Path

    from fpar.engine.run_folder import next_step, run_state, step_words

    rows = []
    for config in configs:
        tr, opt = config.trainer, config.optimizer
        run_dir = Path(out) / config.experiment
        state = run_state(run_dir)
        rows.append((str(run_dir), step_words(next_step(run_dir, state), state),
                     config.model.name, config.stage.name, tr.epochs, tr.batch_size, f"{opt.name} {opt.lr:g}",
                     tr.accelerator))
    print(_table(("run", "would", "model", "stage", "epochs", "batch", "optimizer", "accelerator"), rows))
    print(f"{len(configs)} run{'s' * (len(configs) != 1)}; `fpar configs show CONFIG key=value` prints one's "
          "settings in full")


def _table(header: tuple, rows: list[tuple]) -> str:
    lines = [tuple(map(str, header)), *(tuple(map(str, row)) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)


def _demo(args: argparse.Namespace) -> int:
    from fpar.workflows.demo import run_demo

    run_demo(args.out)
    return 0

"""``fpar protocol``: a config or a recipe under a named evaluation protocol (every fold x seed), and
``fpar protocol compare``: two such folders, paired run by run."""

from __future__ import annotations

import argparse
import json

from fpar.cli.common import at_least, intermixed
from fpar.errors import FparError


def register(subparsers: argparse._SubParsersAction) -> None:
    from fpar.workflows.protocol import PROTOCOLS

    protocol = subparsers.add_parser(
        "protocol", help="train and score a config under an evaluation protocol: every fold x seed, mean ± std",
        description="fpar protocol CONFIG|RECIPE --data ROOT --protocol NAME --seeds K --out DIR [key=value ...]: train "
                    "every fold x seed of the protocol (a recipe: its stages in order, each from its parent of the same "
                    "fold and seed; finished runs are skipped, interrupted ones resume), score each on its fold's test "
                    "set and write DIR/protocol.json, protocol.md and protocol.html. A folder resumed with another "
                    "dataset, seeds or overrides is refused (--force retrains). "
                    "fpar protocol compare A B (a folder, or FOLDER:STAGE for one stage of a recipe): the paired "
                    "difference of two such folders with its 95% "
                    "interval. Protocols: " + "; ".join(f"{name}: {what}" for name, (_, _, what) in PROTOCOLS.items())
                    + " (docs/protocols.md).")
    intermixed(protocol)
    protocol.add_argument("config", metavar="CONFIG|compare",
                          help="experiment YAML, recipe YAML or packaged name (e.g. recipes/synthetic_demo); "
                               "or 'compare' followed by two folders")
    protocol.add_argument("rest", nargs="*", metavar="key.sub=value|DIR",
                          help="config overrides (values in YAML); after 'compare': DIR_A DIR_B")
    protocol.add_argument("--data", metavar="ROOT", help="dataset root")
    protocol.add_argument("--protocol", choices=tuple(PROTOCOLS), help="the protocol to run")
    protocol.add_argument("--seeds", type=at_least(1, 1000), default=3, metavar="K",
                          help="seeds per fold (trainer.seed 0..K-1; default %(default)s)")
    protocol.add_argument("--out", metavar="DIR", help="folder of the runs and the summary")
    protocol.add_argument("--force", action="store_true",
                          help="retrain every run, also when the folder holds runs of another dataset or settings")
    protocol.add_argument("--json", action="store_true", help="compare: print one JSON object")
    protocol.add_argument("--no-progress", action="store_true", help="no progress bars")
    protocol.set_defaults(func=run_protocol_command)


def run_protocol_command(args: argparse.Namespace) -> int:
    from fpar.workflows import protocol

    if args.config == "compare":
        if len(args.rest) != 2 or args.data or args.protocol or args.out or args.force:
            raise FparError("usage: fpar protocol compare DIR_A DIR_B [--json]")
        result = protocol.compare(*args.rest)
        print(json.dumps(result) if args.json else protocol.compare_text(result))
        return 0
    missing = [flag for flag, value in (("--data", args.data), ("--protocol", args.protocol), ("--out", args.out))
               if not value]
    if missing:
        raise FparError(f"fpar protocol CONFIG needs {', '.join(missing)}")
    protocol.run_protocol(args.config, data_root=args.data, protocol=args.protocol, seeds=args.seeds,
                          out_dir=args.out, overrides=args.rest, force=args.force,
                          progress=not args.no_progress)
    return 0

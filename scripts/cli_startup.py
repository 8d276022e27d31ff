#!/usr/bin/env python3
"""How long the ``fpar`` command takes to answer, each time in a fresh process (start-up cost).

Runs ``fpar --help``, ``fpar train --help`` and ``fpar --version`` with the Python that runs this
script, ``--repeats`` times each (default 5), and prints the median, best and worst seconds. The
command line must stay fast: the CLI modules import torch, Lightning and OpenCV only inside the
commands that use them. This is a measurement to read, not a test: a loaded machine is slower.

    python scripts/cli_startup.py [--repeats 5] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = (["--help"], ["train", "--help"], ["--version"])


def time_command(args: list[str], repeats: int, env: dict[str, str]) -> list[float]:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "fpar", *args], capture_output=True, text=True, env=env)
        seconds.append(time.perf_counter() - start)
        if done.returncode != 0:
            sys.exit(f"fpar {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per command (median reported)")
    parser.add_argument("--json", metavar="OUT", help="also write the seconds to this JSON file")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    # run this checkout's fpar when the script sits in one (scripts/ beside src/)
    src = Path(__file__).resolve().parent.parent / "src"
    env = dict(os.environ)
    if (src / "fpar").is_dir():
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    results = {}
    print(f"{'command':24s} {'median':>8s} {'best':>8s} {'worst':>8s}  ({args.repeats} fresh processes each)")
    for command in COMMANDS:
        seconds = time_command(command, args.repeats, env)
        name = "fpar " + " ".join(command)
        results[name] = {"median_s": statistics.median(seconds), "best_s": min(seconds), "worst_s": max(seconds)}
        print(f"{name:24s} {statistics.median(seconds):7.3f}s {min(seconds):7.3f}s {max(seconds):7.3f}s")
    if args.json:
        partial = Path(args.json + ".partial")  # written whole, then renamed: never half a file
        partial.write_text(json.dumps(results, indent=1) + "\n")
        os.replace(partial, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

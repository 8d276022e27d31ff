"""``fpar bench``'s process row (runs/s): ``fpar eval`` as a whole process (start-up, loading,
compute) against a reference-style evaluation script (``python -m fpar.bench reference-eval``,
:func:`fpar.bench.reference.reference_predictions`) on the same clips and checkpoint, checked by
their predictions."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from fpar.bench.data_rows import data_row
from fpar.errors import FparError

PEAK_LINE = "fpar-bench-peak-bytes"
# Runs ``python -m MODULE ARGS`` and prints the process's own peak resident memory on stderr at
# exit. Not the rusage the parent gets: that counts the parent's memory the child started with
# (before its exec), and the parent holds the benchmarks' data.
MEASURED_MODULE = f"""
import atexit, resource, runpy, sys
def peak():
    try:
        with open("/proc/self/status") as status:
            kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("{PEAK_LINE}", kb * 1024, file=sys.stderr, flush=True)
atexit.register(peak)
module, sys.argv = sys.argv[1], sys.argv[1:]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def measured_run(command: list[str], env: dict[str, str]) -> tuple[float, str, int]:
    """Seconds, standard output and peak resident memory (bytes) of ``python -m`` ``command``."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        returncode = subprocess.run([sys.executable, "-c", MEASURED_MODULE, *command], stdout=out, stderr=err,
                                    text=True, env=env).returncode
        seconds = time.perf_counter() - start
        out.seek(0), err.seek(0)
        errors = err.read().splitlines()
        if returncode != 0:
            raise FparError(f"{' '.join(command[:2])} failed: {errors[-1:]}")
        peak = next(int(line.split()[1]) for line in reversed(errors) if line.startswith(PEAK_LINE))
        return seconds, out.read(), peak


def bench_process(arch: str, size: int, classes: int, videos_per_class: int, frames: int, repeats: int,
                  device: str = "cpu") -> dict[str, Any]:
    """``fpar eval`` as a whole process (start-up, loading, compute) against a reference-style
    evaluation script, on the same synthetic clips (320x240 frames) and the same RGB attention +
    MS head checkpoint. The check is that the reference predicts the class fpar's evaluation
    (:func:`fpar.engine.evaluate.evaluate`, the code the timed process runs, called here once more) predicts for
    every clip."""
    from fpar.engine.evaluate import evaluate
    from fpar.checkpoint import save_checkpoint
    from fpar.data import ClipSettings
    from fpar.data.settings import resize_for
    from fpar.data.synth import generate
    from fpar.models import build_model

    accelerator = "gpu" if device == "cuda" else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        root = generate(Path(tmp) / "data", subjects=1, classes=classes, videos_per_class=videos_per_class,
                        frames=frames, size=(320, 240), seed=0)
        clip = ClipSettings(modalities=["frames"], num_frames=frames, resize=resize_for(size), crop=size)
        torch.manual_seed(0)
        model = build_model("rgb_ms", num_classes=classes, backbone=arch, pretrained=None, input_size=size,
                            ms_head="classification")
        checkpoint = Path(tmp) / "model.ckpt"
        save_checkpoint(checkpoint, model_state=model.state_dict(), model=model.build_spec, clip=clip)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[2]),
                                                                          os.environ.get("PYTHONPATH")]))}
        ours = ["fpar", "eval", str(checkpoint), "--data", str(root), "--split", "S1", "--json",
                "--accelerator", accelerator]
        theirs = ["fpar.bench", "reference-eval", str(checkpoint), str(root), "S1", device]

        # no warm-up run: a process starts cold each time anyway (the dataset just written is in
        # the page cache for both); the runs alternate so that load from other processes hits both
        runs: tuple[list[tuple[float, str, int]], list[tuple[float, str, int]]] = ([], [])
        for _ in range(repeats):
            runs[0].append(measured_run(theirs, env))
            runs[1].append(measured_run(ours, env))
        reference_predictions = json.loads(runs[0][0][1].splitlines()[-1])["predictions"]
        result = evaluate(checkpoint, root, split="S1", accelerator=accelerator)
        fpar_predictions = [result["classes"][clip_result.prediction] for clip_result in result["clips"]]
        agree = sum(a == b for a, b in zip(reference_predictions, fpar_predictions))
        t_ref, t_ours = (statistics.median(r[0] for r in way) for way in runs)
        memory = (max(r[2] for r in runs[0]), max(r[2] for r in runs[1]))
    clips = classes * videos_per_class
    return data_row(f"fpar eval process, {arch} {size}px, {clips} clips", "process", "runs/s", t_ref, t_ours,
                    f"{agree}/{clips} same predictions", memory, arch=arch, size=size, clips=clips, frames=frames,
                    device=device, same_predictions=agree)

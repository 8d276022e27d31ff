"""A stand-in for ``fpar.engine.train.train`` for the tests of jobs made of runs (recipes, sweeps,
run folders): it writes the files a run leaves, named by ``fpar.engine.run_folder``, and records each call."""

from __future__ import annotations

from pathlib import Path

from fpar.engine.config import dump_config
from fpar.engine.run_folder import BEST_CKPT, FINISHED, LAST_CKPT, RUN_CONFIG


class FakeTrain:
    """Stands in for fpar.engine.train.train: writes the files a run leaves, records each call."""

    def __init__(self, interrupt: str | None = None):
        self.calls: list[tuple[str, bool, object]] = []
        self.interrupt = interrupt

    def __call__(self, config, *, out_dir, resume, **kwargs):
        run_dir = Path(out_dir) / config.experiment
        self.calls.append((config.experiment, resume, config.init_from))
        run_dir.mkdir(parents=True, exist_ok=True)
        dump_config(config, run_dir / RUN_CONFIG)  # as train() records the run
        (run_dir / LAST_CKPT).write_text("weights")
        if config.experiment == self.interrupt:
            raise KeyboardInterrupt
        (run_dir / BEST_CKPT).write_text("weights")
        return {"run_dir": str(run_dir), "state": FINISHED, "best_ckpt": str(run_dir / BEST_CKPT),
                "last_ckpt": str(run_dir / LAST_CKPT), "best_val_accuracy": 0.5, "epochs_done": 3, "metrics": []}

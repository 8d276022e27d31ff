"""Where training logs its curves and pictures: Lightning's loggers, chosen by ``trainer.logger``.

The vocabulary is declared here, next to the code that builds each logger; this module imports
neither torch nor Lightning at import time (the settings and the CLI read ``LOGGERS``). The loggers
whose package is an optional extra (wandb, mlflow) import it only when chosen.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Sequence

from fpar.errors import FparError

# name -> the package it needs (None: installed with fpar)
LOGGERS = {"tensorboard": None, "csv": None, "wandb": "wandb", "mlflow": "mlflow"}
# besides them, always: the console's lines with their times, in every run folder's train.log
# (fpar.engine.run_folder.run_log)


def build_loggers(names: Sequence[str], run_dir: Path, experiment: str) -> list[Any]:
    """One Lightning logger per name, each writing under ``run_dir`` (wandb and mlflow: their local
    files too, ``wandb/`` and ``mlruns/``). A missing optional package is one FparError line."""
    for name in names:
        package = LOGGERS[name]
        if package is not None and importlib.util.find_spec(package) is None:
            raise FparError(f"trainer.logger '{name}' needs the {package} package: pip install {package} "
                            f"(or pip install 'fpar[{name}]')")
    from lightning.pytorch import loggers

    built = []
    for name in names:
        if name == "tensorboard":
            built.append(loggers.TensorBoardLogger(run_dir, name="tensorboard", version="", default_hp_metric=False))
        elif name == "csv":
            built.append(loggers.CSVLogger(run_dir, name="csv", version=""))
        elif name == "wandb":
            built.append(loggers.WandbLogger(name=experiment, save_dir=str(run_dir), project="fpar"))
        else:
            built.append(loggers.MLFlowLogger(experiment_name=experiment,
                                              tracking_uri=(run_dir / "mlruns").resolve().as_uri()))
    return built

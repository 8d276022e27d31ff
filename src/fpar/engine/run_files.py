"""The files of a run folder (``fpar train --out OUT`` -> ``OUT/<experiment>/``), named once for
every module that writes or reads them: training, resume, ``fpar runs``, recipes, protocols,
reports (docs/training.md)."""

RUN_CONFIG = "config.yaml"  # the resolved experiment settings the run trains with
BEST_CKPT = "best.ckpt"  # the checkpoint the run keeps (fpar.engine.selection)
LAST_CKPT = "last.ckpt"  # the latest epoch's, with the optimiser and loop state: what --resume reads
METRICS_CSV = "metrics.csv"  # one row per validated epoch
METRICS_JSON = "metrics.json"  # the same rows as JSON
RUN_LOG = "train.log"  # the run's plain-text log (fpar.engine.loggers)

"""``fpar report``: one folder a person can look at for one trained model or several side by side.

Each run is evaluated once on held-out subjects. ``index.html`` (self-contained: the pictures are
embedded) shows, with several runs, a comparison table like the paper's (rows: runs; columns: every
registered metric (:mod:`fpar.engine.metric_registry`), clips, epochs, best epoch, selection), then
for each run its metrics, its accuracy per class, the pictures the paper shows for each model (§5:
training curves, the confusion matrix, the correlation of class-mean features, per-clip
explanations: CAM attention GIFs, MS head against the motion maps, two-in-one modulation maps)
and the config it was trained with. ``report.md`` says the same in Markdown, ``report.json`` holds
the numbers, and each run's pictures and ``predictions.csv`` lie in the report folder (one run) or
in one sub-folder per run.

Names that are not UTF-8 (folders whose bytes ``os.listdir`` surrogate-escapes) are written
backslash-escaped everywhere (:func:`fpar.engine.evaluate.printable_name`).

The package's modules, along its seams: ``writing`` (runs resolved and evaluated, pictures drawn,
files written), ``tables`` (the comparison table's columns, ``report.md``) and ``page``
(``index.html``). Callers import from here.
"""

from __future__ import annotations

from fpar.workflows.report.page import EXPLANATION_CAPTIONS, html_page
from fpar.workflows.report.tables import markdown, table_columns
from fpar.workflows.report.writing import (REPORT_MARKER, read_history, refuse_foreign_folder, resolve_run,
                                           write_report)

__all__ = ["EXPLANATION_CAPTIONS", "REPORT_MARKER", "html_page", "markdown", "read_history", "refuse_foreign_folder",
           "resolve_run", "table_columns", "write_report"]

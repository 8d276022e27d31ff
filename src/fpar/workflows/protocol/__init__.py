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

The package's modules, along its seams: ``vocabulary`` (the protocols, their folds, the keys they
set, published figures), ``plan`` (the runs planned and the recorded plan checked), ``running``
(training, scoring, summarising), ``stats`` (mean, std, interval), ``tables`` (Markdown, HTML) and
``compare`` (two folders paired run by run). Callers import from here.
"""

from __future__ import annotations

from fpar.workflows.protocol.compare import compare, compare_text, read_protocol
from fpar.workflows.protocol.plan import _check_plan, dataset_digest, is_recipe
from fpar.workflows.protocol.running import run_protocol
from fpar.workflows.protocol.stats import summarise, t_quantile
from fpar.workflows.protocol.tables import protocol_html, protocol_markdown
from fpar.workflows.protocol.vocabulary import (CONTROLLED, EGTEA_SPLITS, GTEA61_SUBJECTS, PAPER_PROTOCOL,
                                                PLAN_FILE, PROTOCOLS, PUBLISHED, PUBLISHED_PROTOCOL, SCORES,
                                                SUMMARY_FILE, Fold, paper_figure, refuse_controlled)

__all__ = ["CONTROLLED", "EGTEA_SPLITS", "GTEA61_SUBJECTS", "PAPER_PROTOCOL", "PLAN_FILE", "PROTOCOLS",
           "PUBLISHED", "PUBLISHED_PROTOCOL", "SCORES", "SUMMARY_FILE", "Fold", "_check_plan", "compare",
           "compare_text", "dataset_digest", "is_recipe", "paper_figure", "protocol_html", "protocol_markdown",
           "read_protocol", "refuse_controlled", "run_protocol", "summarise", "t_quantile"]

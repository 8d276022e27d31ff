"""EPIC-KITCHENS-100 action recognition, scored as the challenge scores it (docs/protocols.md, "EPIC-100").

* **Verb, noun**: top-1 and top-5 accuracy over every segment.
* **Action** (a verb and a noun): each segment's 100 best verbs and 100 best nouns, their scores
  softmaxed over those 100 each, every verb x noun pair scored by the product of the two, pairs
  ranked by that product. Within a segment that is the order of ``verb score + noun score`` over the
  pairs of the two top-100 lists; a product of raw scores would rank otherwise.
* **Tail**: top-1 over the segments whose verb (verb metric), noun (noun metric), or verb *or* noun
  (action metric) is one of the tail classes; **unseen**: top-1 over the segments of the participants
  absent from training.

Inputs come in the challenge's two published results formats (:func:`read_results`, ``.pt`` loaded
without running code, or ``.npz``) and its annotation CSVs (:func:`read_labels`, :func:`read_class_ids`,
:func:`read_participants`); every problem is one :class:`~fpar.errors.FparError` before any number.
:func:`submission` builds the challenge's submission JSON (:func:`write_submission` writes it) and
:func:`write_results` a results file, for ``fpar eval`` of a verb+noun model. numpy and torch only.

The package's modules, along its seams: ``scoring`` (the numbers, the action rule, one clip's
top-k per head) and ``files`` (results, annotations, submission). Callers import from here.
"""

from __future__ import annotations

from fpar.data.labels import EPIC_NOUNS, EPIC_VERBS
from fpar.engine.epic_metrics.files import (LABEL_COLUMNS, RESULT_KEYS, SUBMISSION_VERSION, SUPERVISION_LEVELS,
                                            read_class_ids, read_labels, read_participants, read_results,
                                            submission, write_results, write_submission)
from fpar.engine.epic_metrics.scoring import (ACTION_TOP_N, METRIC_NAMES, RULE_ACTION, Labels, Results,
                                              action_top_k, align, epic_metrics, format_metrics, head_tops,
                                              top_k_hits)

__all__ = ["ACTION_TOP_N", "EPIC_NOUNS", "EPIC_VERBS", "LABEL_COLUMNS", "METRIC_NAMES", "RESULT_KEYS", "RULE_ACTION",
           "SUBMISSION_VERSION", "SUPERVISION_LEVELS", "Labels", "Results", "action_top_k", "align", "epic_metrics",
           "format_metrics", "head_tops", "read_class_ids", "read_labels", "read_participants", "read_results",
           "submission", "top_k_hits", "write_results", "write_submission"]

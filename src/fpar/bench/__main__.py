"""``python -m fpar.bench reference-eval CHECKPOINT ROOT SPLIT DEVICE``: the reference-style
evaluation the process row times (:mod:`fpar.bench.process_rows`). Prints one JSON line: the
predicted class name of every clip."""

import json
import sys

if len(sys.argv) != 6 or sys.argv[1] != "reference-eval":
    sys.exit("usage: python -m fpar.bench reference-eval CHECKPOINT ROOT SPLIT DEVICE")

from fpar.bench.reference import reference_predictions  # noqa: E402  (after the usage check: no torch for it)

print(json.dumps({"predictions": reference_predictions(*sys.argv[2:])}))

"""``fpar bench``: fpar's way of computing against the reference's, timed on the same machine.

* ``fpar.bench.run``: ``run_benchmarks`` (every row kind, ``ROW_KINDS``) -> ``{"machine", "rows"}``
* ``fpar.bench.measure``: alternate timing, matmul peak, FLOPs, peak memory, the ``Setting``
* ``fpar.bench.reference``: the reference's way of computing (forward, frame reading, evaluation)
* ``fpar.bench.model_rows``: evaluation forward and training steps (``STAGE_MODELS``)
* ``fpar.bench.data_rows``, ``fpar.bench.loading``: clip loading, optical flow
* ``fpar.bench.stream_rows``: ``fpar.Stream`` frame by frame against recomputing the window
* ``fpar.bench.in_place``: index build and ``data check`` of an EPIC-shaped in-place manifest
* ``fpar.bench.process_rows``: ``fpar eval`` as a whole process against a reference-style script
* ``fpar.bench.format``: the table ``fpar bench`` prints
"""

from fpar.lazy import lazy_exports

_EXPORTS = {
    "ROW_KINDS": "fpar.bench.vocabulary",
    "LOADING_ROWS": "fpar.bench.run",
    "run_benchmarks": "fpar.bench.run",
    "format_table": "fpar.bench.format",
    "Setting": "fpar.bench.measure",
    "setting_for": "fpar.bench.measure",
    "peak_memory": "fpar.bench.measure",
    "matmul_peak": "fpar.bench.measure",
    "reference_forward": "fpar.bench.reference",
    "reference_rgb_forward": "fpar.bench.reference",
    "STAGE_MODELS": "fpar.bench.model_rows",
    "make_batch": "fpar.bench.model_rows",
    "bench_eval": "fpar.bench.model_rows",
    "bench_train": "fpar.bench.model_rows",
    "data_row": "fpar.bench.data_rows",
    "bench_loading": "fpar.bench.data_rows",
    "bench_flow": "fpar.bench.data_rows",
    "bench_clip_loading": "fpar.bench.loading",
    "bench_process": "fpar.bench.process_rows",
    "bench_stream": "fpar.bench.stream_rows",
    "in_place_rows": "fpar.bench.in_place",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)

"""The row kinds ``fpar bench`` runs, named without importing torch so that the CLI's ``--rows``
help and check read them (each kind's maker: :data:`fpar.bench.run.LOADING_ROWS` and the model
rows of :mod:`fpar.bench.model_rows`)."""

MODEL_ROWS = ("eval", "train")  # timed with the model's FLOPs: a share of the matmul peak
DATA_ROWS = ("loading", "packed", "flow", "stream", "in-place", "process")
ROW_KINDS = (*MODEL_ROWS, *DATA_ROWS)

"""Training and evaluation on Lightning: the core and single runs.

* ``fpar.engine.settings``: ``ExperimentSettings`` and its sections (typed, validated by pydantic)
* ``fpar.engine.config``: ``load_config(path, overrides)`` (files, ``_base_``, overrides, one-line errors: ``config_errors``), ``dump_config``, ``json_schema``
* ``fpar.engine.train``: ``train(settings, data_root=..., out_dir=..., resume=...)`` -> run directory
* ``fpar.engine.run_folder``: the run folder's files, lock, log, clean-up, states (finished, interrupted, running, failed) and resume policy; ``lightning_env``: the Trainer; ``init_weights``: ``init_from``
* ``fpar.engine.evaluate``: ``evaluate(checkpoint, data_root, split=..., views=...)`` -> accuracies and per-clip rows
* ``fpar.engine.distributed_eval``: the same scoring over several processes (Lightning's DDP); one process needs no Lightning
* ``fpar.engine.scoring``: ``ClipScorer`` (a batch -> one ``ClipResult`` per clip), which both of them run
* ``fpar.engine.predict``: ``predict_video(checkpoint, video)`` -> one clip's prediction
* ``fpar.engine.inference``: ``InferenceSession``, how predict, ``fpar.Stream`` and evaluate load, prepare and run a model
* ``fpar.engine.module`` / ``datamodule``: the LightningModule and LightningDataModule they use
* ``fpar.engine.stages``, ``losses``: which parameters train per stage; CE + the MS head's loss
* ``fpar.engine.metric_registry``: the metrics by name (top-1, top-5, mean-class accuracy, any registered); ``metrics``: them and the confusion (torchmetrics), for validation and evaluate; ``class_accuracy``: per-class and mean-class accuracy
* ``fpar.engine.loggers``: the ``trainer.logger`` vocabulary and the Lightning loggers it builds
* ``fpar.engine.callbacks``: atomic checkpoints, metrics files, progress (bars or lines), validation pictures
* ``fpar.engine.compute``: channels-last layout, batch norms folded for inference, stage 1's frozen backbone copy

Jobs made of several runs (recipes, sweeps, reports, the demo) are in :mod:`fpar.workflows`.
Submodules are imported on use, so ``import fpar.engine`` stays cheap.
"""

"""Training and evaluation on Lightning.

* ``fpar.engine.config``: ``load_config(path, overrides)``, ``validate_config``, ``dump_config``
* ``fpar.engine.train``: ``train(config, data_root=..., out_dir=..., resume=...)`` -> run directory
* ``fpar.engine.evaluate``: ``evaluate(checkpoint, data_root, split=..., views=...)`` -> accuracies
* ``fpar.engine.module`` / ``datamodule``: the LightningModule and LightningDataModule they use
* ``fpar.engine.stages``, ``losses``: which parameters train per stage; CE + motion-segmentation loss

Submodules are imported on use, so ``import fpar.engine`` stays cheap.
"""

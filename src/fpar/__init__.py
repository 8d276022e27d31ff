"""fpar: first-person action recognition (Ego-RNN, MS self-supervision, two-in-one flow modulation).

The Python API, for notebooks and scripts (docs/api.md)::

    import fpar

    settings = fpar.load_config("synthetic/rgb-attention_r18_8f_stage2", ["trainer.epochs=2"])
    run = fpar.train(settings, data_root="data/synth", out_dir="runs")
    scores = fpar.evaluate(run["best_ckpt"], "data/synth")
    model, contract = fpar.load_model(run["best_ckpt"])

Every name below loads its module on first use, so ``import fpar`` stays light (no torch, Lightning
or OpenCV until something needs them).
"""

from fpar.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    # configs and settings
    "load_config": "fpar.engine.config",
    "find_config": "fpar.engine.config",
    "list_configs": "fpar.engine.config",
    "dump_config": "fpar.engine.config",
    "ExperimentSettings": "fpar.engine.settings",
    # data
    "ClipDataset": "fpar.data.dataset",
    "ClipSettings": "fpar.data.settings",
    "DataSettings": "fpar.data.settings",
    "load_index": "fpar.data.layouts",
    "split_by_subject": "fpar.data.splits",
    "generate_synthetic": ("fpar.data.synth", "generate"),
    # models and checkpoints
    "build_model": "fpar.models.registry",
    "list_models": "fpar.models.registry",
    "load_model": "fpar.checkpoint",
    "load_checkpoint": "fpar.checkpoint",
    "save_checkpoint": "fpar.checkpoint",
    "export_model": "fpar.checkpoint",
    "ModelContract": "fpar.checkpoint",
    # runs
    "train": "fpar.engine.train",
    "evaluate": "fpar.engine.evaluate",
    "predict_video": "fpar.engine.predict",
    "Stream": "fpar.engine.stream",
    "run_recipe": "fpar.workflows.recipe",
    "run_sweep": "fpar.workflows.sweep",
    "write_report": "fpar.workflows.report",
    # errors
    "FparError": "fpar.errors",
}
__getattr__, _names = lazy_exports(__name__, _EXPORTS)
__all__ = ["__version__", *_names]


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})

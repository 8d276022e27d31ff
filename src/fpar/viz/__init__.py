"""Pictures of what the models see and how they did: CAM overlays, maps, curves, confusion matrices."""

import importlib

_EXPORTS = {
    "denormalize": "fpar.viz.cam",
    "overlay_maps": "fpar.viz.cam",
    "save_gif": "fpar.viz.cam",
    "plot_confusion": "fpar.viz.plots",
    "plot_curves": "fpar.viz.plots",
    "plot_map_grid": "fpar.viz.plots",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    # Submodules load on first use: the CLI and the settings import this package's light modules
    # (vocabularies, settings) without pulling in torch or OpenCV.
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

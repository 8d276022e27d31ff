"""Pictures of what the models see and how they did: CAM overlays, maps, curves, confusion matrices."""

from fpar.lazy import lazy_exports

_EXPORTS = {
    "denormalize": "fpar.pictures",
    "overlay_maps": "fpar.pictures",
    "save_gif": "fpar.viz.cam",
    "plot_confusion": "fpar.viz.plots",
    "plot_curves": "fpar.viz.plots",
    "plot_map_grid": "fpar.viz.plots",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)

"""Pictures of what the models see and how they did: CAM overlays, maps, curves, confusion matrices."""

from fpar.viz.cam import denormalize, overlay_maps, save_gif
from fpar.viz.plots import plot_confusion, plot_curves, plot_map_grid

__all__ = ["denormalize", "overlay_maps", "save_gif", "plot_confusion", "plot_curves", "plot_map_grid"]

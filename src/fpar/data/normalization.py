"""How every modality's values are normalised (ARCHITECTURE.md, "Dataset item"): the one owner of
these numbers. The dataset normalises with them; pictures and the engine's image logging undo
the RGB normalisation with them.

* RGB: ImageNet's per-channel mean and standard deviation (the backbones' pretraining);
* flow: one mean and standard deviation for both directions, as the reference.
"""

import numpy as np

RGB_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
RGB_STD = np.array([0.229, 0.224, 0.225], np.float32)
FLOW_MEAN = 0.449
FLOW_STD = 0.226

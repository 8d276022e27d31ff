"""The backbone vocabulary, without torch: settings and the CLI read it, ``fpar.models.backbone``
builds from it."""

# residual blocks per stage of each backbone the models can be built on
BLOCKS_PER_STAGE = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}

"""An experiment's ``loss`` section: the settings of the models' loss terms (docs/models.md).

Each model computes its own terms (:meth:`fpar.models.base.ClipModel.loss`): cross-entropy on
its logits, plus the MS head's loss where the model has one and ``ms`` is set. This module holds
only the typed settings, without torch, so configs validate without loading it.
"""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict

from fpar.models.ms_task import MSLossSettings


class LossSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    # null: cross-entropy only; a mapping: also the MS head's loss
    ms: Optional[MSLossSettings] = None

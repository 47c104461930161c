"""What a segmentation head hands to the meta-architecture (and to distillation terms).

Shape letters: B images, C feature channels, K classes, h×w feature grid (input / common_stride).
"""
from dataclasses import dataclass
from typing import Optional

import torch


@dataclass
class SegHeadOutputs:
    """Outputs of a segmentation head's ``layers()``.

    Attributes:
        feature: B×C×h×w float, the tensor that enters the final 1×1 classifier (after Dropout2d in
            training mode). APD and feature-based distillation read it.
        logits: B×K×h×w float, classifier output at feature resolution (not upsampled).
        aux_logits: B×K×h'×w' float from the auxiliary head, or None when the head has none.
    """

    feature: torch.Tensor
    logits: torch.Tensor
    aux_logits: Optional[torch.Tensor] = None

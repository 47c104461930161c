"""The one resize rule for teacher and student maps (issue 15 §8).

Every bilinear resize of a feature or logit map in the losses, the distillation terms, ``APDHead`` and the
distillers uses ``align_corners=True``: the rule of the official APD code, which upsamples the logits for
the KD term and the teacher's observation for ``loss_adapt`` that way (docs/METHOD.md §3). No baseline's
authors' code resizes teacher maps (teacher and student share the output stride there), so no baseline
pins another rule. Labels are resized with nearest (:func:`apd.modeling.losses.downsample_labels`).

Shape letters: B images, C channels, h'×w' input grid.
"""
from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["ALIGN_CORNERS", "resize_to"]

ALIGN_CORNERS = True


def resize_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of a B×C×h'×w' map to ``size`` = (h, w) with :data:`ALIGN_CORNERS`.

    Returns ``x`` itself when it already has that size. Used to bring a teacher map onto the student's grid
    when the two networks have different strides, and for the upsamplings inside the losses.
    """
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=ALIGN_CORNERS)

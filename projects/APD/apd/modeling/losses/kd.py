"""Logit knowledge distillation (Hinton et al., 2015) as used by APD's code (APD_SPEC §3d).

Shape letters: B images, K classes, h×w logit grid, H×W output size.
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from .prototypes import upcast_half

__all__ = ["logit_kd_loss"]


def logit_kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 1.0,
    out_size: Optional[Sequence[int]] = None,
    align_corners: bool = True,
) -> torch.Tensor:
    """KL(teacher‖student) of temperature-softened class distributions, per pixel.

    Args:
        student_logits: B×K×h×w float.
        teacher_logits: B×K×h'×w' float; detached inside.
        temperature: T > 0; both logits are divided by T and the loss is multiplied by T².
        out_size: (H, W) to which both logits are bilinearly resized first (the official code uses the
            label size); None keeps their size, which must then match.
        align_corners: passed to the bilinear resize.

    Returns:
        0-dim tensor ``T² · Σ_{b,k,p} p_t (log p_t − log p_s) / (B·K·H·W)``: the element mean of
        PyTorch's ``KLDivLoss`` (per-pixel KL ÷ K), over all pixels including ignore ones.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if student_logits.dim() != 4 or teacher_logits.dim() != 4:
        raise ValueError(
            f"logit_kd_loss expects B×K×h×w logits, got student {tuple(student_logits.shape)} and "
            f"teacher {tuple(teacher_logits.shape)}"
        )
    teacher_logits = teacher_logits.detach()
    if out_size is not None:
        out_size = (int(out_size[0]), int(out_size[1]))
        if tuple(student_logits.shape[-2:]) != out_size:
            student_logits = F.interpolate(
                student_logits, size=out_size, mode="bilinear", align_corners=align_corners
            )
        if tuple(teacher_logits.shape[-2:]) != out_size:
            teacher_logits = F.interpolate(
                teacher_logits, size=out_size, mode="bilinear", align_corners=align_corners
            )
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits "
            f"{tuple(teacher_logits.shape)} differ; pass out_size to resize both"
        )
    log_p_s = F.log_softmax(upcast_half(student_logits) / temperature, dim=1)
    log_p_t = F.log_softmax(upcast_half(teacher_logits) / temperature, dim=1)
    # Element mean (PyTorch's legacy ``reduction="mean"``, written out to avoid its deprecation warning).
    kl = F.kl_div(log_p_s, log_p_t, reduction="sum", log_target=True) / log_p_s.numel()
    return kl * (temperature**2)

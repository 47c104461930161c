"""Logit knowledge distillation (Hinton et al., 2015) as used by APD's code (docs/METHOD.md §3d).

Shape letters: B images, K classes, h×w logit grid, H×W output size.
"""
from typing import Optional, Sequence

import torch

from .resize import ALIGN_CORNERS
from .upsampled import upsampled_kl_div

__all__ = ["logit_kd_loss"]


def logit_kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 1.0,
    out_size: Optional[Sequence[int]] = None,
    align_corners: bool = ALIGN_CORNERS,
    fused: bool = True,
) -> torch.Tensor:
    """KL(teacher‖student) of temperature-softened class distributions, per pixel.

    Args:
        student_logits: B×K×h×w float.
        teacher_logits: B×K×h'×w' float; detached inside.
        temperature: T > 0; both logits are divided by T and the loss is multiplied by T².
        out_size: (H, W) to which both logits are bilinearly resized first (the official code uses the
            label size); None keeps their size, which must then match.
        align_corners: passed to the bilinear resize (default: the one rule, ``losses.resize.ALIGN_CORNERS``).
        fused: resize + log-softmax + KL as one autograd node (:func:`apd.modeling.losses.upsampled.upsampled_kl_div`:
            the same values, one saved tensor); False: the separate PyTorch ops.

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
    size = tuple(student_logits.shape[-2:]) if out_size is None else (int(out_size[0]), int(out_size[1]))
    if student_logits.shape[:2] != teacher_logits.shape[:2] or (
        out_size is None and student_logits.shape != teacher_logits.shape
    ):
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits "
            f"{tuple(teacher_logits.shape)} differ; pass out_size to resize both"
        )
    return upsampled_kl_div(student_logits, teacher_logits, size, align_corners, temperature, fused=fused)

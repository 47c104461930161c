"""Pair-wise distillation of structured knowledge distillation (SKD): Liu, Chen, Liu, Qin, Luo, Wang,
"Structured Knowledge Distillation for Semantic Segmentation", CVPR 2019.

Only the pair-wise term lives here; SKD's pixel-wise term is :func:`apd.modeling.losses.logit_kd_loss`
and its holistic (adversarial) term is not implemented.

Shape letters: B images, C channels (may differ between student and teacher), h×w grid, n pooled nodes.
"""
from typing import Optional

import torch
import torch.nn.functional as F

from .prototypes import l2_normalize, upcast_half

__all__ = ["pairwise_affinity_loss"]


def _affinity(feat: torch.Tensor, pool_scale: Optional[float]) -> torch.Tensor:
    if pool_scale is not None:
        h, w = feat.shape[-2:]
        kernel = (max(int(h * pool_scale), 1), max(int(w * pool_scale), 1))
        feat = F.max_pool2d(feat, kernel_size=kernel, stride=kernel, ceil_mode=True)
    nodes = l2_normalize(upcast_half(feat).flatten(2), dim=1)  # B×C×n
    return torch.bmm(nodes.transpose(1, 2), nodes)  # B×n×n cosine similarities


def pairwise_affinity_loss(
    student_feat: torch.Tensor, teacher_feat: torch.Tensor, pool_scale: Optional[float] = 0.5
) -> torch.Tensor:
    """Squared difference of the cosine-similarity (affinity) matrices of student and teacher nodes.

    Nodes are the pixels after max pooling with a kernel (and stride) of
    ``⌊pool_scale·h⌋ × ⌊pool_scale·w⌋`` (ceil mode; SKD's "scale" 0.5 gives a 2×2 grid of nodes);
    ``pool_scale=None`` keeps every pixel.
    ``L = mean_{b,i,j} (a^t_bij − a^s_bij)²`` with ``a_ij = <nrm(f_i), nrm(f_j)>`` over channels.
    (The SKD code stops the gradient through the student's norm; here it flows.)

    Args:
        student_feat: B×C_s×h×w float.
        teacher_feat: B×C_t×h×w float (same B, h, w; channels may differ); detached inside.
        pool_scale: relative pooling kernel size in (0, 1], or None.

    Returns:
        0-dim tensor in [0, 4]. Invariant to positive rescaling and, without pooling, to any per-pixel
        positive rescaling or orthogonal channel transform of either feature.
    """
    if student_feat.dim() != 4 or teacher_feat.dim() != 4:
        raise ValueError(
            f"pairwise_affinity_loss expects B×C×h×w features, got {tuple(student_feat.shape)} and "
            f"{tuple(teacher_feat.shape)}"
        )
    if student_feat.shape[0] != teacher_feat.shape[0] or student_feat.shape[2:] != teacher_feat.shape[2:]:
        raise ValueError(
            f"student {tuple(student_feat.shape)} and teacher {tuple(teacher_feat.shape)} features must "
            "share batch size and spatial size"
        )
    if pool_scale is not None and not 0 < pool_scale <= 1:
        raise ValueError(f"pool_scale must be in (0, 1] or None, got {pool_scale}")
    a_s = _affinity(student_feat, pool_scale)
    a_t = _affinity(teacher_feat.detach(), pool_scale)
    return (a_t - a_s).pow(2).mean()

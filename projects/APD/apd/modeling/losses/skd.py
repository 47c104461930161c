"""Pair-wise distillation of structured knowledge distillation (SKD): Liu, Chen, Liu, Qin, Luo, Wang,
"Structured Knowledge Distillation for Semantic Segmentation", CVPR 2019.

Only the pair-wise term lives here; SKD's pixel-wise term is :func:`apd.modeling.losses.logit_kd_loss`
and its holistic (adversarial) term is not implemented.

Shape letters: B images, C channels (may differ between student and teacher), h×w grid, n pooled nodes.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .prototypes import check_feature_pair, l2_normalize, upcast_half

__all__ = ["node_kernel", "pairwise_affinity_loss"]


def node_kernel(
    size: Sequence[int], pool_scale: Optional[float] = None, pool_kernel: Optional[Sequence[int]] = None
) -> Optional[Tuple[int, int]]:
    """The max-pool kernel (= stride) that turns an h×w map into SKD's nodes, or None for every pixel.

    ``pool_scale`` s (the SKD authors' ``--pool-scale``, 0.5): ``(max(⌊s·h⌋, 1), max(⌊s·w⌋, 1))``, with ceil
    mode, so the node grid is ``⌈h / ⌊s·h⌋⌉ × ⌈w / ⌊s·w⌋⌉``: 2×2 for even h, w (90×90 → kernel 45), but
    3×3 for odd ones (65×129 → kernels 32×64). ``pool_kernel`` (kh, kw): a fixed kernel (CIRKD: 2×2, i.e.
    ⌈h/2⌉×⌈w/2⌉ nodes). At most one of the two may be given.
    """
    if pool_scale is not None and pool_kernel is not None:
        raise ValueError(f"give pool_scale or pool_kernel, not both (got {pool_scale} and {pool_kernel})")
    if pool_kernel is not None:
        kernel = (int(pool_kernel[0]), int(pool_kernel[1]))
        if min(kernel) < 1:
            raise ValueError(f"pool_kernel must be two positive sizes, got {pool_kernel}")
        return kernel
    if pool_scale is not None:
        if not 0 < pool_scale <= 1:
            raise ValueError(f"pool_scale must be in (0, 1] or None, got {pool_scale}")
        return (max(int(size[0] * pool_scale), 1), max(int(size[1] * pool_scale), 1))
    return None


def _affinity(feat: torch.Tensor, kernel: Optional[Tuple[int, int]]) -> torch.Tensor:
    if kernel is not None:
        feat = F.max_pool2d(feat, kernel_size=kernel, stride=kernel, ceil_mode=True)
    nodes = l2_normalize(upcast_half(feat).flatten(2), dim=1)  # B×C×n
    return torch.bmm(nodes.transpose(1, 2), nodes)  # B×n×n cosine similarities


def pairwise_affinity_loss(
    student_feat: torch.Tensor,
    teacher_feat: torch.Tensor,
    pool_scale: Optional[float] = 0.5,
    pool_kernel: Optional[Sequence[int]] = None,
) -> torch.Tensor:
    """Squared difference of the cosine-similarity (affinity) matrices of student and teacher nodes.

    Nodes are the pixels after max pooling (kernel = stride, ceil mode) with the kernel of
    :func:`node_kernel`: relative ``pool_scale`` (the SKD authors' code, 0.5: a 2×2 node grid for even h, w,
    3×3 for odd ones) or a fixed ``pool_kernel`` (CIRKD's copy uses (2, 2), i.e. ⌈h/2⌉×⌈w/2⌉ nodes; pass
    ``pool_scale=None`` with it). Both None keep every pixel.
    ``L = mean_{b,i,j} (a^t_bij − a^s_bij)²`` with ``a_ij = <nrm(f_i), nrm(f_j)>`` over channels.
    (The SKD code stops the gradient through the student's norm; here it flows.)

    Args:
        student_feat: B×C_s×h×w float.
        teacher_feat: B×C_t×h×w float (same B, h, w; channels may differ); detached inside.
        pool_scale: relative pooling kernel size in (0, 1], or None.
        pool_kernel: fixed (kh, kw) pooling kernel, or None; excludes ``pool_scale``.

    Returns:
        0-dim tensor in [0, 4]. Invariant to positive rescaling and, without pooling, to any per-pixel
        positive rescaling or orthogonal channel transform of either feature.
    """
    check_feature_pair("pairwise_affinity_loss", student_feat, teacher_feat)
    kernel = node_kernel(student_feat.shape[-2:], pool_scale, pool_kernel)
    a_s = _affinity(student_feat, kernel)
    a_t = _affinity(teacher_feat.detach(), kernel)
    return (a_t - a_s).pow(2).mean()

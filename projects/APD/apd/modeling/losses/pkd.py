"""PKD: Cao, Zhang, Gao, Cheng, Cheng, Cheng, "PKD: General Distillation Framework for Object Detectors via
Pearson Correlation Coefficient", NeurIPS 2022 (arXiv 2207.02039).

Feature imitation after standardising every channel of both maps to zero mean and unit variance: the
mean squared error of the standardised maps, halved, is ``1 − ρ`` with ρ the Pearson correlation of the
student's and the teacher's channel. The student is free in the scale and offset of each channel; only
the pattern over positions is imitated, and no channel or FPN level dominates by its magnitude.

Conventions of the public implementation (mmrazor ``mmrazor/models/losses/pkd_loss.py``, ``PKDLoss``,
used by the authors' configs) and where this one differs:

- both: ``loss = mean((ŝ − t̂)²) / 2`` over all elements, no label, no mask, no loss weight inside (the
  configs give it; mmrazor's default weight is 1, its Faster R-CNN R101 → R50 config uses 6 per level);
- statistics: mmrazor standardises each channel over the whole batch (N·h·w values, ``scope="batch"``
  here); the default here is ``scope="image"``: each (image, channel) over its own h·w positions, so the
  loss is the mean over images and channels of ``1 − ρ`` and does not depend on what else is in the batch;
- the standard deviation: mmrazor divides by the unbiased std plus 1e-6; here by ``sqrt(var + eps)`` with
  the biased (population) variance, which makes the halved MSE exactly ``1 − ρ`` for non-constant
  channels (mmrazor's is ``(n − 1)/n`` of it, n the number of values per channel) and keeps the gradient
  of a constant channel finite (``1/sqrt(eps)``; the unbiased std has no derivative at 0);
- the teacher is detached here (mmrazor runs its teacher under no_grad instead);
- resizing: mmrazor bilinearly resizes the student onto the teacher's grid (``align_corners=False``);
  this function needs equal shapes, and the terms (:mod:`apd.modeling.distill.pkd_terms`) bring the
  teacher onto the student's grid with the project's one resize rule (``resize_to``, ``align_corners=True``);
- half precision is computed in float32.

Shape letters: B images, C channels, h×w grid.
"""
import torch
import torch.nn.functional as F

from .prototypes import upcast_half

__all__ = ["PKD_SCOPES", "standardize_channels", "pkd_loss"]

PKD_SCOPES = ("image", "batch")
# Added to the variance; negligible next to the variance of any feature channel that carries a signal.
PKD_EPS = 1e-6


def standardize_channels(x: torch.Tensor, scope: str = "image", eps: float = PKD_EPS) -> torch.Tensor:
    """Each channel minus its mean, divided by ``sqrt(var + eps)`` (biased variance).

    Args:
        x: B×C×h×w float.
        scope: ``"image"``: statistics of each (image, channel) over its h·w positions (as
            ``F.instance_norm``, which however refuses a 1×1 map; a small image's p6 can be one);
            ``"batch"``: of each channel over all B·h·w values (as ``F.batch_norm`` in training).
        eps: > 0, added to the variance.

    Returns:
        B×C×h×w; a constant channel becomes 0.
    """
    if scope not in PKD_SCOPES:
        raise ValueError(f"scope must be one of {PKD_SCOPES}, got {scope!r}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if x.dim() != 4:
        raise ValueError(f"standardize_channels expects a B×C×h×w map, got shape {tuple(x.shape)}")
    dims = (2, 3) if scope == "image" else (0, 2, 3)
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, unbiased=False, keepdim=True)
    return (x - mean) * torch.rsqrt(var + eps)


def pkd_loss(
    student_feat: torch.Tensor, teacher_feat: torch.Tensor, scope: str = "image", eps: float = PKD_EPS
) -> torch.Tensor:
    """PKD feature loss ``mean((ŝ − t̂)²) / 2`` of the channel-standardised maps (module docstring).

    With ``scope="image"`` this is ``mean over (b, c) of (1 − ρ(s_bc, t_bc))`` up to eps, ρ the Pearson
    correlation over the h·w positions; a constant channel on one side counts ½ (its standardised map is
    0), on both sides 0. Invariant to ``s_bc → α_c·s_bc + β_c`` for α_c > 0 (up to eps); ``scope="batch"``
    is invariant to the same per-channel α_c, β_c shared by the whole batch.

    Args:
        student_feat: B×C×h×w float (after any channel adapter).
        teacher_feat: B×C×h×w float, same shape; detached inside.
        scope: ``"image"`` or ``"batch"`` (mmrazor's statistics); see :func:`standardize_channels`.
        eps: added to the variances.

    Returns:
        0-dim tensor in [0, 2] (up to eps), 0 for identical maps.

    Raises:
        ValueError: the shapes differ or are not 4-D, or ``scope`` / ``eps`` is invalid.
    """
    if student_feat.dim() != 4 or student_feat.shape != teacher_feat.shape:
        raise ValueError(
            "pkd_loss expects B×C×h×w student and teacher maps of equal shape, got student "
            f"{tuple(student_feat.shape)} and teacher {tuple(teacher_feat.shape)}"
        )
    s_hat = standardize_channels(upcast_half(student_feat), scope, eps)
    t_hat = standardize_channels(upcast_half(teacher_feat.detach()), scope, eps)
    return F.mse_loss(s_hat, t_hat) / 2

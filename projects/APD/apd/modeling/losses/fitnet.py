"""Feature mimicking (FitNets: Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015).

The regressor that maps student channels to teacher channels is a module
(:class:`apd.modeling.distill.FitNetHead`, a 1×1 conv without bias by default, as CIRKD's
``CriterionFitNet``); this is the pure loss on its output, the element mean of CIRKD's as well.
Shape letters: B images, C teacher channels, h×w grid.
"""
import torch
import torch.nn.functional as F

from .prototypes import upcast_half

__all__ = ["feature_mimic_loss"]


def feature_mimic_loss(student_feat_adapted: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """Element-mean squared error ``mean (r(F_s) − F_t)²``.

    Args:
        student_feat_adapted: B×C×h×w float, the student feature after the regressor r.
        teacher_feat: B×C×h×w float, same shape; detached inside.

    Returns:
        0-dim tensor.
    """
    if student_feat_adapted.shape != teacher_feat.shape:
        raise ValueError(
            f"feature_mimic_loss needs equal shapes, got adapted student {tuple(student_feat_adapted.shape)}"
            f" and teacher {tuple(teacher_feat.shape)}"
        )
    return F.mse_loss(upcast_half(student_feat_adapted), upcast_half(teacher_feat.detach()))

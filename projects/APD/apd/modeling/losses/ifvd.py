"""Intra-class feature variation distillation (IFVD): Wang, Zhou, Xu, Yan, Feng, Jiang,
"Intra-class Feature Variation Distillation for Semantic Segmentation", ECCV 2020.

Shape letters: B images, C channels (may differ between student and teacher), K classes,
h×w feature grid, H×W label grid.
"""
import torch

from .prototypes import (
    check_feature_pair,
    class_prototypes,
    downsample_labels,
    l2_normalize,
    upcast_half,
    valid_label_mask,
)

__all__ = ["REDUCTIONS", "ifvd_loss"]

# What the summed squared errors are divided by: every pixel (the authors' code) or labelled pixels only.
REDUCTIONS = ("all", "labelled")


def _similarity_to_own_prototype(feat: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    points = upcast_half(feat).flatten(2).transpose(1, 2)  # B×hw×C
    protos, _ = class_prototypes(points, labels, num_classes)  # B×K×C, one set per image
    own = torch.gather(protos, 1, labels.clamp(min=0).unsqueeze(-1).expand(-1, -1, points.shape[-1]))
    return (l2_normalize(points, dim=-1) * own).sum(dim=-1)  # B×hw cosine similarities


def ifvd_loss(
    student_feat: torch.Tensor,
    teacher_feat: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    ignore_value: int = 255,
    reduction: str = "all",
) -> torch.Tensor:
    """MSE between the teacher's and the student's intra-class feature variation maps.

    The variation map of a network is, per pixel, ``cos(f_p, μ_{y_p})`` where ``μ_k`` is the mean feature
    of class k in the same image (labels nearest-downsampled to h×w). Ignore pixels enter no class mean
    and carry no error.

    The authors' code (``YukangWang/IFVD``, ``utils/criterion.py`` ``CriterionIFV``; CIRKD's
    ``losses/ifvd.py`` is the same) starts from a copy of the feature map and overwrites the pixels of
    each class 0..K−1 with that class's mean, so an ignore pixel keeps *its own feature* as its "centre":
    cos = 1 on both sides, error 0, but it still counts in ``nn.MSELoss``'s mean over all B·h·w pixels.
    ``reduction="all"`` (default) reproduces that; ``"labelled"`` divides by the labelled pixels only,
    which multiplies the loss by 1 / (labelled fraction), e.g. ×1.43 at 30 % ignore pixels.
    (The authors' cos(f, f) is 0 instead of 1 for an all-zero feature vector; not reproduced.)

    Args:
        student_feat: B×C_s×h×w float.
        teacher_feat: B×C_t×h×w float (same B, h, w); detached inside.
        labels: B×H×W int64 in [0, K) ∪ {ignore_value}.
        num_classes: K.
        ignore_value: label id without a class.
        reduction: ``"all"`` (sum of errors ÷ B·h·w, the authors' code) or ``"labelled"`` (÷ number of
            labelled pixels).

    Returns:
        0-dim tensor; zero that still backpropagates when no pixel is labelled. Invariant to a positive
        rescaling of an image's feature and to orthogonal channel transforms of either feature (not to
        per-pixel rescaling, which moves the class means).
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    check_feature_pair("ifvd_loss", student_feat, teacher_feat)
    small = downsample_labels(labels, student_feat.shape[-2:]).flatten(1)  # B×hw
    valid = valid_label_mask(small, num_classes, ignore_value)
    small = torch.where(valid, small, -1)
    sim_s = _similarity_to_own_prototype(student_feat, small, num_classes)
    sim_t = _similarity_to_own_prototype(teacher_feat.detach(), small, num_classes)
    err = (sim_t - sim_s).pow(2) * valid.to(sim_s.dtype)
    if reduction == "labelled":
        return err.sum() / valid.sum().clamp(min=1)
    return err.sum() / max(valid.numel(), 1)

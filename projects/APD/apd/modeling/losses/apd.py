"""Adaptive Perspective Distillation losses (Tian et al., TPAMI 2023; docs/METHOD.md §2-§3).

Shape letters: B images, R points (ROIs), G groups sharing one perspective, M points per group,
E embedding channels (after the adapters g_s / g_t), K classes, N classes present in a group,
h×w feature grid, H×W label grid.

The maths is written once, on padded groups of points (``_apd_on_groups``): a dense feature map is a
group per image (``scope="image"``) or one group for the batch (``scope="batch"``); flattened points
(ROIs) are grouped by image id. The three returned terms are unweighted:

- ``loss_apd``: KL(teacher‖student) of the softmax over present classes of the similarity maps, element
  mean, i.e. per-point KL ÷ N averaged over the points of a group (docs/METHOD.md §3a), averaged over groups
  that have at least one present class.
- ``loss_pa``: ``0.5 · (1 − <c_s^k, sg(c_t^k)>)`` averaged over all present (group, class) pairs (§3b).
- ``loss_adapt``: cross-entropy of the teacher observation ``U`` (absent classes at logit 0) against the
  labels, ignore excluded, mean over valid labels (§3c). Trains only the teacher adapter.

The teacher embedding is detached inside for ``loss_apd`` / ``loss_pa``; ``loss_adapt`` carries gradient
only to the teacher embedding. Student prototypes are *not* detached, so ``loss_apd`` reaches the
student embedding both directly and through the prototypes.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from .resize import ALIGN_CORNERS
from .upsampled import upsampled_cross_entropy
from .prototypes import (
    class_means,
    downsample_labels,
    l2_normalize,
    perspective_logits,
    upcast_half,
    valid_label_mask,
)

__all__ = ["apd_loss_terms", "apd_point_loss_terms"]

_SCOPES = ("image", "batch")
_NO_CLASS = -1  # internal label of points that have no class (ignore, background, padding)


def _apd_on_groups(
    student_emb: torch.Tensor,
    teacher_emb: torch.Tensor,
    labels: torch.Tensor,
    row_mask: Optional[torch.Tensor],
    num_classes: int,
    tau: float,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The APD maths on G groups of M points; each group is observed through its own prototypes.

    Args:
        student_emb, teacher_emb: G×M×E adapted embeddings (A_s, A_t), not yet normalised.
        labels: G×M int64, values outside [0, K) = no class (no prototype, no CE, still a KL row).
        row_mask: G×M bool marking real points (False = padding, excluded from everything), or None.
        num_classes: K.
        tau: similarity scale.

    Returns:
        loss_apd (0-dim), loss_pa (0-dim) and U: G×M×K teacher observations with gradient to
        ``teacher_emb`` only, absent classes exactly 0.
    """
    # Autocast would run the similarity products in half precision; keep them in float32 or better.
    with torch.autocast(device_type=student_emb.device.type, enabled=False):
        return _apd_on_groups_full_precision(
            upcast_half(student_emb), upcast_half(teacher_emb), labels, row_mask, num_classes, tau
        )


def _apd_on_groups_full_precision(student_emb, teacher_emb, labels, row_mask, num_classes, tau):
    a_s = l2_normalize(student_emb, dim=-1)
    a_t = l2_normalize(teacher_emb, dim=-1)
    e = a_s.shape[-1]
    # Student and teacher share the masks: one one-hot product builds both sets of prototypes.
    means, counts = class_means(torch.cat([a_s, a_t.to(a_s.dtype)], dim=-1), labels, num_classes)
    c_s = l2_normalize(means[..., :e], dim=-1)  # G×K×E student prototypes (not detached)
    c_t = l2_normalize(means[..., e:], dim=-1)  # G×K×E teacher prototypes
    present = counts > 0  # G×K
    num_present = present.sum(dim=-1)  # G  (N_g)

    s_s = perspective_logits(a_s, c_s, tau)  # G×M×K, gradient through a_s and c_s
    s_t = perspective_logits(a_t, c_t, tau)  # G×M×K, gradient to the teacher embedding (loss_adapt)

    # Softmax over the present classes only: absent logits get the most negative finite value, so their
    # probability underflows to exactly 0 and nothing becomes inf/NaN (not even for an empty group).
    absent = ~present.unsqueeze(1)  # G×1×K
    fill = torch.finfo(s_s.dtype).min
    log_q_s = F.log_softmax(s_s.masked_fill(absent, fill), dim=-1)
    log_q_t = F.log_softmax(s_t.detach().masked_fill(absent, fill), dim=-1)
    kl = (log_q_t.exp() * (log_q_t - log_q_s)).masked_fill(absent, 0.0).sum(dim=-1)  # G×M
    if row_mask is None:
        kl_sum = kl.sum(dim=-1)
        rows = torch.full_like(kl_sum, kl.shape[-1])
    else:
        kl_sum = (kl * row_mask.to(kl.dtype)).sum(dim=-1)
        rows = row_mask.sum(dim=-1).to(kl.dtype)
    # Element mean over (points × present classes) per group, then mean over non-empty groups.
    has_class = num_present > 0
    per_group = kl_sum / (rows * num_present.to(kl.dtype)).clamp(min=1.0)
    loss_apd = (per_group * has_class.to(kl.dtype)).sum() / has_class.sum().clamp(min=1)

    cos = (c_s * c_t.detach()).sum(dim=-1)  # G×K
    pa = (0.5 * (1.0 - cos)).masked_fill(~present, 0.0)
    loss_pa = pa.sum() / present.sum().clamp(min=1)

    u = s_t.masked_fill(absent, 0.0)  # U^k = 0 for k not in P (docs/METHOD.md §3c)
    return loss_apd, loss_pa, u


def _cross_entropy_valid(logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """CE mean over ``valid`` positions (class dim 1); exactly 0, still in the graph, when none is valid."""
    target = torch.where(valid, labels, torch.full_like(labels, -100))
    ce = F.cross_entropy(logits, target, ignore_index=-100, reduction="none")
    return ce.sum() / valid.sum().clamp(min=1)


def check_apd_scalars(num_classes: int, tau: float) -> None:
    """Raise ``ValueError`` unless K ≥ 1 and τ > 0 (the APD terms and the distillation heads that own them)."""
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")


def apd_loss_terms(
    student_feat: torch.Tensor,
    teacher_feat: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    tau: float = 10.0,
    scope: str = "image",
    ignore_value: int = 255,
    fused: bool = True,
) -> Dict[str, torch.Tensor]:
    """APD terms for dense prediction (docs/METHOD.md §2-§3).

    Args:
        student_feat: B×E×h×w float, the *adapted* student feature A_s = g_s(F_s).
        teacher_feat: B×E×h×w float, the adapted teacher feature A_t = g_t(sg(F_t)); detached inside for
            loss_apd / loss_pa, carries gradient only through loss_adapt.
        labels: B×H×W int64 in [0, K) ∪ {ignore_value}, at input resolution. Nearest-downsampled to h×w
            (PyTorch ``nearest``) for the prototypes; used at H×W for loss_adapt. Any value outside
            [0, K) is treated like ``ignore_value``.
        num_classes: K.
        tau: similarity scale τ (``kmeans_temp`` = 10 in the official code).
        scope: ``"image"``: one perspective per image (prototypes from that image only, its own N_b; the
            paper's wording) — loss_apd is averaged over images with at least one valid class, loss_pa
            over all (image, class) pairs. ``"batch"``: one perspective for the whole (per-device) batch,
            reproducing the official code's numbers.
        ignore_value: label id without a class (255).
        fused: loss_adapt's upsampling + CE as one autograd node
            (:func:`apd.modeling.losses.upsampled.upsampled_cross_entropy`); False: the separate ops.

    Returns:
        dict of 0-dim tensors:
        ``loss_apd``: Σ_{pixels} KL(q_t‖q_s) / (#pixels · N), all h×w pixels including ignore ones
        (element mean of PyTorch's ``KLDivLoss``, docs/METHOD.md §3a); gradient to ``student_feat`` through
        a_s and the student prototypes.
        ``loss_pa``: prototype alignment, in [0, 1]; gradient to ``student_feat`` only.
        ``loss_adapt``: CE at H×W of the bilinearly (align_corners=True) upsampled teacher observation U
        (absent classes at logit 0), mean over non-ignored pixels; gradient to ``teacher_feat`` only.
        With no valid label at h×w all three are zeros that still backpropagate (zero gradients).
    """
    check_apd_scalars(num_classes, tau)
    if scope not in _SCOPES:
        raise ValueError(f"scope must be one of {_SCOPES}, got {scope!r}")
    if student_feat.dim() != 4 or student_feat.shape != teacher_feat.shape:
        raise ValueError(
            "apd_loss_terms expects adapted features of equal shape B×E×h×w, got student "
            f"{tuple(student_feat.shape)} and teacher {tuple(teacher_feat.shape)}"
        )
    b, e, h, w = student_feat.shape
    if labels.dim() != 3 or labels.shape[0] != b:
        raise ValueError(f"labels must be B×H×W with B={b}, got shape {tuple(labels.shape)}")
    labels = labels.long()

    small = downsample_labels(labels, (h, w))
    small = torch.where(valid_label_mask(small, num_classes, ignore_value), small, _NO_CLASS)
    groups = b if scope == "image" else 1
    s = student_feat.flatten(2).transpose(1, 2).reshape(groups, -1, e)
    t = teacher_feat.flatten(2).transpose(1, 2).reshape(groups, -1, e)
    loss_apd, loss_pa, u = _apd_on_groups(s, t, small.reshape(groups, -1), None, num_classes, tau)

    u = u.reshape(b, h, w, num_classes).permute(0, 3, 1, 2)
    valid = valid_label_mask(labels, num_classes, ignore_value)
    loss_adapt = upsampled_cross_entropy(u, labels, valid, align_corners=ALIGN_CORNERS, fused=fused)
    return {"loss_apd": loss_apd, "loss_pa": loss_pa, "loss_adapt": loss_adapt}


def apd_point_loss_terms(
    student_emb: torch.Tensor,
    teacher_emb: torch.Tensor,
    labels: torch.Tensor,
    image_ids: torch.Tensor,
    num_classes: int,
    tau: float = 10.0,
    ignore_value: int = -1,
) -> Dict[str, torch.Tensor]:
    """APD terms for flattened points, one perspective per image (docs/METHOD.md §6, ROIs as pixels).

    Args:
        student_emb: R×E float, adapted student embeddings.
        teacher_emb: R×E float, adapted teacher embeddings (detached inside for loss_apd / loss_pa).
        labels: R int64. Values in [0, K) are classes; anything else — ``ignore_value``, Detectron2's
            background id K, any negative id — gets no prototype and no CE but is still a KL row.
        image_ids: R int64 in [0, #images), any order: the image each point belongs to.
        num_classes: K (foreground classes).
        tau: similarity scale τ.
        ignore_value: an extra "no class" id (only matters when it lies in [0, K)).

    Returns:
        dict with ``loss_apd`` (per image: Σ KL / (#points of the image · N_b), averaged over images with
        at least one class), ``loss_pa`` (mean over all (image, class) pairs) and ``loss_adapt`` (CE of
        U over the points that have a class, absent classes at logit 0). Zeros that still backpropagate
        when no point has a class (or R = 0). Host sync: one, to size the per-image padding.
    """
    check_apd_scalars(num_classes, tau)
    if student_emb.dim() != 2 or student_emb.shape != teacher_emb.shape:
        raise ValueError(
            "apd_point_loss_terms expects adapted embeddings of equal shape R×E, got student "
            f"{tuple(student_emb.shape)} and teacher {tuple(teacher_emb.shape)}"
        )
    r, e = student_emb.shape
    if labels.shape != (r,) or image_ids.shape != (r,):
        raise ValueError(
            f"labels and image_ids must have shape ({r},), got {tuple(labels.shape)} and "
            f"{tuple(image_ids.shape)}"
        )
    labels = labels.long()
    image_ids = image_ids.long()
    if r == 0:
        return {
            "loss_apd": upcast_half(student_emb).sum() * 0.0,
            "loss_pa": upcast_half(student_emb).sum() * 0.0,
            "loss_adapt": upcast_half(teacher_emb).sum() * 0.0,
        }

    lo, hi = torch.aminmax(image_ids)
    lo, hi = int(lo), int(hi)
    if lo < 0:
        raise ValueError(f"image_ids must be >= 0, got min {lo}")
    num_images = hi + 1
    per_image = torch.bincount(image_ids, minlength=num_images)
    # Pad each image's points into a row of a G×M grid (stable order inside an image).
    order = torch.argsort(image_ids, stable=True)
    img_sorted = image_ids[order]
    starts = torch.cumsum(per_image, 0) - per_image
    pos = torch.arange(r, device=image_ids.device) - starts[img_sorted]
    m = int(per_image.max())

    def pad(x: torch.Tensor, fill) -> torch.Tensor:
        out = x.new_full((num_images, m) + tuple(x.shape[1:]), fill)
        return out.index_put((img_sorted, pos), x[order])

    valid = valid_label_mask(labels, num_classes, ignore_value)
    point_labels = torch.where(valid, labels, _NO_CLASS)
    row_mask = pad(torch.ones_like(labels, dtype=torch.bool), False)
    loss_apd, loss_pa, u = _apd_on_groups(
        pad(student_emb, 0.0), pad(teacher_emb, 0.0), pad(point_labels, _NO_CLASS), row_mask,
        num_classes, tau,
    )
    u_points = u[img_sorted, pos]  # R×K in sorted order
    loss_adapt = _cross_entropy_valid(u_points, labels[order], valid[order])
    return {"loss_apd": loss_apd, "loss_pa": loss_pa, "loss_adapt": loss_adapt}

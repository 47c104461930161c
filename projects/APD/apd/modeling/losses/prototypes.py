"""Class prototypes (the "adaptive perspective" of APD) and the similarities observed through them.

Shape letters: B images, G groups of points that share one perspective (one image, or a whole batch),
M points per group, E embedding channels, K classes, h×w feature grid, H×W label grid.

Everything here is vectorised: prototypes are one one-hot matrix product per call, never a loop over
classes, points or images (docs/METHOD.md §2).
"""
from typing import Tuple

import torch
import torch.nn.functional as F

__all__ = [
    "NORM_EPS",
    "upcast_half",
    "l2_normalize",
    "downsample_labels",
    "valid_label_mask",
    "class_means",
    "class_prototypes",
    "perspective_logits",
]

# nrm(v) = v / max(||v||_2, NORM_EPS)  (docs/METHOD.md §1; same eps as ``F.normalize``).
NORM_EPS = 1e-12


def upcast_half(x: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 → float32 (softmaxes and KLs need it); float32/float64 are returned unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def l2_normalize(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``nrm`` of docs/METHOD.md §1: ``x / max(||x||_2, 1e-12)`` along ``dim``. Zero vectors stay zero."""
    return F.normalize(x, p=2.0, dim=dim, eps=NORM_EPS)


def check_feature_pair(loss_name: str, student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> None:
    """Raise ``ValueError`` unless both features are B×C×h×w with the same B, h and w (C may differ).

    ``loss_name`` starts the message (the public loss that was called: ``ifvd_loss``,
    ``pairwise_affinity_loss``).
    """
    if student_feat.dim() != 4 or teacher_feat.dim() != 4:
        raise ValueError(
            f"{loss_name} expects B×C×h×w features, got {tuple(student_feat.shape)} and "
            f"{tuple(teacher_feat.shape)}"
        )
    if student_feat.shape[0] != teacher_feat.shape[0] or student_feat.shape[2:] != teacher_feat.shape[2:]:
        raise ValueError(
            f"student {tuple(student_feat.shape)} and teacher {tuple(teacher_feat.shape)} features must "
            "share batch size and spatial size"
        )


def downsample_labels(labels: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of a label map, exactly PyTorch's ``mode="nearest"``.

    The source index of output row ``i`` is ``floor(i * H / h)`` (the official APD code resizes the
    labels the same way before building prototypes, docs/METHOD.md §1).

    Args:
        labels: B×H×W integer tensor (any values; 255 = ignore stays 255).
        size: (h, w) output size.

    Returns:
        B×h×w int64 tensor; ``labels`` itself (as int64) when the size already matches.
    """
    if labels.dim() != 3:
        raise ValueError(f"labels must be B×H×W, got shape {tuple(labels.shape)}")
    size = (int(size[0]), int(size[1]))
    if tuple(labels.shape[-2:]) == size:
        return labels.long()
    # Float is exact for every label id below 2**24.
    small = F.interpolate(labels[:, None].float(), size=size, mode="nearest")
    return small[:, 0].long()


def valid_label_mask(labels: torch.Tensor, num_classes: int, ignore_value: int) -> torch.Tensor:
    """True where a label is a real class: in ``[0, num_classes)`` and not ``ignore_value``.

    Anything else (ignore 255, Detectron2's background id ``num_classes``, negative ids) is "no class":
    such points get no prototype and no cross-entropy.
    """
    return (labels >= 0) & (labels < num_classes) & (labels != ignore_value)


def class_means(
    embeddings: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per (group, class) mean of the embeddings, as one one-hot matrix product (no loop).

    Args:
        embeddings: G×M×E float.
        labels: G×M int64; values outside ``[0, num_classes)`` contribute to no class.
        num_classes: K.

    Returns:
        means: G×K×E float (exactly zero for absent classes); gradient reaches every contributing row.
        counts: G×K float, number of points of class k in group g (``counts > 0`` = class present).
    """
    if embeddings.dim() != 3 or labels.shape != embeddings.shape[:2]:
        raise ValueError(
            f"expected G×M×E embeddings and G×M labels, got {tuple(embeddings.shape)} and "
            f"{tuple(labels.shape)}"
        )
    valid = (labels >= 0) & (labels < num_classes)
    one_hot = F.one_hot(torch.where(valid, labels, 0), num_classes).to(embeddings.dtype)
    one_hot = one_hot * valid.unsqueeze(-1).to(embeddings.dtype)  # G×M×K
    sums = torch.bmm(one_hot.transpose(1, 2), embeddings)  # G×K×E
    counts = one_hot.sum(dim=1)  # G×K
    return sums / counts.clamp(min=1.0).unsqueeze(-1), counts


def class_prototypes(
    embeddings: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """One prototype per (group, class): ``nrm(mean of the group's embeddings labelled k)``.

    docs/METHOD.md §2.4 ("GAP"): the mean of the given vectors (APD passes already-normalised pixel vectors),
    re-normalised. Gradients are not stopped.

    Args:
        embeddings: G×M×E float.
        labels: G×M int64; values outside ``[0, num_classes)`` contribute to no prototype.
        num_classes: K.

    Returns:
        prototypes: G×K×E float, unit norm for present classes and exactly zero for absent ones.
        counts: G×K float (see :func:`class_means`).
    """
    means, counts = class_means(embeddings, labels, num_classes)
    return l2_normalize(means, dim=-1), counts


def perspective_logits(embeddings: torch.Tensor, prototypes: torch.Tensor, tau: float) -> torch.Tensor:
    """Observation of each point through its group's perspective: ``tau * <embedding, prototype_k>``.

    docs/METHOD.md §3: with unit-norm embeddings and prototypes the values lie in ``[-tau, tau]``.

    Args:
        embeddings: G×M×E float (normalised by the caller).
        prototypes: G×K×E float.
        tau: temperature-like scale (``apd_head.tau``, 10 in the paper's code).

    Returns:
        G×M×K float. Absent classes (zero prototypes) give 0; callers mask them.
    """
    return tau * torch.bmm(embeddings, prototypes.transpose(1, 2))

"""DIST: Huang, You, Wang, Qian, Xu, "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022.

Relations of the softened class probabilities, measured with the Pearson correlation ρ instead of KL:
inter-class (each sample's probability vector over classes) and intra-class (each class's probabilities
over all samples of the batch). For segmentation every pixel is a sample.

Follows the authors' segmentation code (``hunto/DIST_KD``, ``segmentation/losses/dist_kd.py`` and
``train_kd.py``; mmrazor's ``DISTLoss`` is the same maths):
- the logits are B×K×h×w at the network's output stride (1/8), never upsampled; every pixel of the
  batch is one row, ignore and padded pixels included (no label enters the loss);
- ``ρ(a, b) = ⟨a − ā, b − b̄⟩ / (‖a − ā‖·‖b − b̄‖ + 1e-8)`` (the eps is added to the product of norms);
- τ = 1, β = γ = 1 and loss weight 1 in their Cityscapes runs (``DIST()`` with defaults; the temperature
  argument of their script is not used by DIST), on the main logits only (their scripts do not pass
  ``--aux``). The classification code and mmrazor scale both terms by τ²; with τ = 1 that is the same.
Differences: half precision is computed in float32, and an empty batch gives a zero that backpropagates
(their code returns NaN).

Shape letters: B images, K classes, h×w logit grid, N = B·h·w rows (samples).
"""
import torch
import torch.nn.functional as F

from .prototypes import upcast_half

__all__ = ["pearson_correlation", "dist_loss"]

# Added to the product of the two norms, as in the authors' code.
PEARSON_EPS = 1e-8


def pearson_correlation(a: torch.Tensor, b: torch.Tensor, eps: float = PEARSON_EPS) -> torch.Tensor:
    """Row-wise Pearson correlation ``ρ(a_i, b_i) = ⟨a_i − ā_i, b_i − b̄_i⟩ / (‖a_i − ā_i‖·‖b_i − b̄_i‖ + eps)``.

    Args:
        a: N×M float.
        b: N×M float (same shape).
        eps: added to the product of the norms; a constant row therefore scores ρ = 0.

    Returns:
        N tensor in [−1, 1]. Invariant (up to eps) to ``a_i → α·a_i + c`` with α > 0, per row.
    """
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"pearson_correlation expects two N×M tensors, got {tuple(a.shape)} and {tuple(b.shape)}")
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def dist_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    beta: float = 1.0,
    gamma: float = 1.0,
    tau: float = 1.0,
) -> torch.Tensor:
    """DIST loss ``τ² · (β·L_inter + γ·L_intra)`` on softened class probabilities.

    With ``Y = softmax(Z / τ)`` over classes, flattened to N×K (one row per pixel of the batch):
    ``L_inter = 1 − mean_i ρ(Y_s[i, :], Y_t[i, :])`` (over the N rows) and
    ``L_intra = 1 − mean_k ρ(Y_s[:, k], Y_t[:, k])`` (over the K classes, each across all N pixels).

    Args:
        student_logits: B×K×h×w (or N×K) float.
        teacher_logits: same shape; detached inside.
        beta: weight β of the inter-class term.
        gamma: weight γ of the intra-class term.
        tau: temperature τ > 0 (1 for segmentation in the authors' code).

    Returns:
        0-dim tensor in [0, 2τ²(β + γ)]; 0 for equal inputs whose rows and columns are not constant
        (a constant row or column scores ρ = 0, as in the authors' code). Invariant to adding a per-pixel
        constant to either logit map and to the order of the pixels. Zero that still backpropagates
        when there are no pixels.
    """
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    if student_logits.shape != teacher_logits.shape or student_logits.dim() not in (2, 4):
        raise ValueError(
            "dist_loss expects B×K×h×w (or N×K) logits of equal shape, got student "
            f"{tuple(student_logits.shape)} and teacher {tuple(teacher_logits.shape)}"
        )
    k = student_logits.shape[1]
    if student_logits.dim() == 4:  # every pixel is a sample; row order does not change the loss
        student_logits = student_logits.permute(0, 2, 3, 1).reshape(-1, k)
        teacher_logits = teacher_logits.permute(0, 2, 3, 1).reshape(-1, k)
    if student_logits.shape[0] == 0:
        return student_logits.sum() * 0.0
    y_s = F.softmax(upcast_half(student_logits) / tau, dim=1)
    y_t = F.softmax(upcast_half(teacher_logits.detach()) / tau, dim=1)
    inter = 1.0 - pearson_correlation(y_s, y_t).mean()
    intra = 1.0 - pearson_correlation(y_s.t(), y_t.t()).mean()
    return (tau**2) * (beta * inter + gamma * intra)

"""Channel-wise distillation (CWD): Shu, Liu, Gao, Yan, Shen, "Channel-wise Knowledge Distillation for
Dense Prediction", ICCV 2021.

Shape letters: B images, C channels (class logits for segmentation), h×w grid.
"""
import torch
import torch.nn.functional as F

from .prototypes import upcast_half

__all__ = ["channel_wise_divergence_loss"]


def channel_wise_divergence_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0
) -> torch.Tensor:
    """Each channel is turned into a distribution over spatial positions; KL(teacher‖student) per channel.

    ``L = T² / (B·C) · Σ_{b,c} Σ_{p} φ(t_bc)_p · (log φ(t_bc)_p − log φ(s_bc)_p)`` with
    ``φ(x) = softmax_p(x / T)`` over the h·w positions (sum over space, mean over B·C).

    Args:
        student_logits: B×C×h×w float.
        teacher_logits: B×C×h×w float (same shape); detached inside.
        temperature: T > 0 (4 in the paper's segmentation experiments).

    Returns:
        0-dim tensor. Invariant to adding a per-(image, channel) constant to either input.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if student_logits.dim() != 4 or student_logits.shape != teacher_logits.shape:
        raise ValueError(
            "channel_wise_divergence_loss expects B×C×h×w inputs of equal shape, got student "
            f"{tuple(student_logits.shape)} and teacher {tuple(teacher_logits.shape)}"
        )
    b, c = student_logits.shape[:2]
    log_p_s = F.log_softmax(upcast_half(student_logits).flatten(2) / temperature, dim=-1)
    log_p_t = F.log_softmax(upcast_half(teacher_logits.detach()).flatten(2) / temperature, dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum()
    return kl * (temperature**2) / (b * c)

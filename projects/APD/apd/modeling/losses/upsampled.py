"""The two full-resolution terms, each as one autograd node: bilinear upsampling + softmax + KL or CE.

Pixel KD (``logit_kd_loss``, docs/METHOD.md §3d) and the teacher adapter's ``loss_adapt`` (§3c) both
upsample h×w class maps to the label size H×W (B×K×713×713 at the anchor's crop) and reduce them with a
softmax. Written with separate PyTorch ops, every step writes a B×K×H×W tensor and autograd keeps several
of them for the backward (the upsampled logits' log-softmax, the target log-probabilities, ...), then
runs one element-wise backward kernel per op before the upsampling's own backward.

Here the forward computes the same values with the same ops, and keeps a single B×K×H×W tensor, the
gradient with respect to the upsampled logits, known in closed form:

* KL(p_t‖p_s) of ``softmax(z_s / T)`` against ``softmax(z_t / T)``, × T² / N: ``T (p_s − p_t) / N``;
* cross-entropy mean over valid pixels: ``(softmax(u) − onehot(y)) · valid / n_valid``.

The backward multiplies it by the incoming scalar gradient and resizes it back with PyTorch's own
``upsample_bilinear2d_backward``. Loss values are those of the separate ops bit for bit (same ops, same
order); gradients agree to float rounding (``Σ_k p_t = 1`` is used exactly). Half-precision inputs are
computed in fp32 (as ``upcast_half`` does). ``fused=False`` runs the separate ops (the reference; half the
memory saved for the backward is the fused form's gain, docs/BENCHMARKS.md), and so does
``torch.compile``, for the compiler to fuse.
"""
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .resize import ALIGN_CORNERS

__all__ = ["upsampled_kl_div", "upsampled_cross_entropy"]


def _separate(x: torch.Tensor, fused: bool) -> bool:
    return not (fused and x.requires_grad and torch.is_grad_enabled()) or torch.compiler.is_compiling()


def _fp32(x: torch.Tensor) -> torch.Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _upsample(x: torch.Tensor, size: Tuple[int, int], align_corners: bool) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)


def _input_grad(ctx, grad_loss):
    """Backward shared by both nodes: the saved gradient w.r.t. the upsampled map × the incoming scalar
    gradient × the saved scale, resized back to the input's h×w and cast to the input's dtype."""
    (grad,) = ctx.saved_tensors
    in_size, dtype, align_corners, scale = ctx.meta
    g = grad * (grad_loss.to(grad.dtype) * scale)
    if tuple(g.shape[-2:]) != in_size:
        g = torch.ops.aten.upsample_bilinear2d_backward(
            g.contiguous(), list(g.shape[-2:]), [g.shape[0], g.shape[1], *in_size], align_corners)
    return g.to(dtype)


def _kl_terms(s, t, size, align_corners, temperature):
    """log p_s, log p_t and the loss, with the separate ops of the reference (``logit_kd_loss``)."""
    s_up = _upsample(_fp32(s), size, align_corners)
    t_up = _upsample(_fp32(t), size, align_corners)
    if temperature != 1.0:
        s_up, t_up = s_up / temperature, t_up / temperature
    log_p_s = F.log_softmax(s_up, dim=1)
    del s_up
    log_p_t = F.log_softmax(t_up, dim=1)
    del t_up
    kl = F.kl_div(log_p_s, log_p_t, reduction="sum", log_target=True) / log_p_s.numel()
    return log_p_s, log_p_t, kl * (temperature**2)


class _UpsampledKL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s, t, size, align_corners, temperature):
        with torch.autocast(s.device.type, enabled=False):
            log_p_s, log_p_t, loss = _kl_terms(s, t, size, align_corners, temperature)
            grad = log_p_s.exp_().sub_(log_p_t.exp_())  # p_s − p_t, in place: one B×K×H×W tensor kept
        del log_p_t
        ctx.save_for_backward(grad)
        ctx.meta = (tuple(s.shape[-2:]), s.dtype, align_corners, temperature / grad.numel())
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss):
        return _input_grad(ctx, grad_loss), None, None, None, None


def upsampled_kl_div(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    size: Sequence[int],
    align_corners: bool = ALIGN_CORNERS,
    temperature: float = 1.0,
    fused: bool = True,
) -> torch.Tensor:
    """``T² · KL(softmax(up(z_t)/T) ‖ softmax(up(z_s)/T))`` element mean (sum / (B·K·H·W)).

    Args:
        student_logits: B×K×h×w; the only input that receives a gradient.
        teacher_logits: B×K×h'×w' (no gradient).
        size: (H, W) both are bilinearly resized to (no resize for a map already of that size).
        align_corners: of the resize.
        temperature: T > 0.
        fused: one autograd node (one saved B×K×H×W tensor); False: the separate PyTorch ops.

    Returns:
        0-dim float tensor (fp32 for half-precision inputs), ``logit_kd_loss``'s value.
    """
    size = (int(size[0]), int(size[1]))
    teacher_logits = teacher_logits.detach()
    if _separate(student_logits, fused):
        return _kl_terms(student_logits, teacher_logits, size, bool(align_corners), float(temperature))[2]
    return _UpsampledKL.apply(student_logits, teacher_logits, size, bool(align_corners), float(temperature))


def _ce_terms(u, labels, valid, align_corners):
    u_up = _upsample(_fp32(u), tuple(labels.shape[-2:]), align_corners)
    log_p = F.log_softmax(u_up, dim=1)
    del u_up
    target = torch.where(valid, labels, torch.full_like(labels, -100))
    nll = F.nll_loss(log_p, target, ignore_index=-100, reduction="none")
    return log_p, nll.sum() / valid.sum().clamp(min=1)


class _UpsampledCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, labels, valid, align_corners):
        with torch.autocast(u.device.type, enabled=False):
            log_p, loss = _ce_terms(u, labels, valid, align_corners)
            grad = log_p.exp_()  # softmax, in place
            keep = valid.unsqueeze(1).to(grad.dtype)
            grad.scatter_add_(1, torch.where(valid, labels, torch.zeros_like(labels)).unsqueeze(1), -keep)
            grad.mul_(keep)  # softmax − onehot on valid pixels, 0 elsewhere
        ctx.save_for_backward(grad)
        ctx.meta = (tuple(u.shape[-2:]), u.dtype, align_corners, 1.0 / max(int(valid.sum()), 1))
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss):
        return _input_grad(ctx, grad_loss), None, None, None


def upsampled_cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    valid: torch.Tensor,
    align_corners: bool = ALIGN_CORNERS,
    fused: bool = True,
) -> torch.Tensor:
    """Cross-entropy of B×K×h×w ``logits`` bilinearly resized to the B×H×W ``labels``, mean over ``valid``.

    Exactly 0 (still in the graph) when no pixel is valid. ``labels`` outside [0, K) must be masked by
    ``valid``. ``fused`` as in :func:`upsampled_kl_div`. Returns a 0-dim float tensor (fp32 for half-precision
    logits).
    """
    labels = labels.long()
    if _separate(logits, fused):
        return _ce_terms(logits, labels, valid, bool(align_corners))[1]
    return _UpsampledCE.apply(logits.contiguous(), labels, valid, bool(align_corners))

"""Adapters g_s / g_t that map a network's feature into the common APD embedding space (docs/METHOD.md §2.1).

Both are "1×1 conv → ReLU → 1×1 conv" with biases, PyTorch's default initialisation and no
normalisation layer; the parameter names (``0.weight``, ``0.bias``, ``2.weight``, ``2.bias``) are those
of the official ``StuTransConv`` / ``TeaTransConv`` ``nn.Sequential``.
"""
from typing import List

from torch import nn

from ..losses.apd import check_apd_scalars
from .protocol import DistillationTerm

__all__ = ["ADAPTERS", "ConvAdapter", "MLPAdapter", "AdaptedAPDTerm", "adapter_pair", "check_channels"]


def check_channels(**channels: int) -> None:
    """Raise ``ValueError`` naming the first keyword whose value is not a positive number of channels."""
    for name, value in channels.items():
        if int(value) < 1:
            raise ValueError(f"{name} must be a positive number of channels, got {value}")


class ConvAdapter(nn.Sequential):
    """Per-pixel two-layer MLP on dense features: B×C_in×h×w → B×C_out×h×w."""

    def __init__(self, in_channels: int, hidden_dim: int, out_channels: int):
        """
        Args:
            in_channels: channels of the network's feature (C_s or C_t).
            hidden_dim: D (``apd_head.hidden_dim``, 512 in the paper's code).
            out_channels: E, the embedding size shared by student and teacher adapters.
        """
        check_channels(in_channels=in_channels, hidden_dim=hidden_dim, out_channels=out_channels)
        super().__init__(
            nn.Conv2d(in_channels, hidden_dim, kernel_size=1, bias=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_dim, out_channels, kernel_size=1, bias=True),
        )


class MLPAdapter(nn.Sequential):
    """The same adapter for flattened vectors (e.g. ROI features): R×C_in → R×C_out."""

    def __init__(self, in_channels: int, hidden_dim: int, out_channels: int):
        """
        Args:
            in_channels: channels of the network's per-point vector (e.g. 1024 for d2's FC box head).
            hidden_dim: D.
            out_channels: E, shared by student and teacher adapters.
        """
        check_channels(in_channels=in_channels, hidden_dim=hidden_dim, out_channels=out_channels)
        super().__init__(
            nn.Linear(in_channels, hidden_dim, bias=True),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_channels, bias=True),
        )


def adapter_pair(adapter_cls, student_channels: int, teacher_channels: int, hidden_dim: int, embed_dim: int):
    """(g_s, g_t): two ``adapter_cls`` (:class:`ConvAdapter` or :class:`MLPAdapter`) from C_s and from C_t
    through D = ``hidden_dim`` to the common E = ``embed_dim``; g_s is built (initialised) first."""
    student_adapter = adapter_cls(student_channels, hidden_dim, embed_dim)
    teacher_adapter = adapter_cls(teacher_channels, hidden_dim, embed_dim)
    return student_adapter, teacher_adapter


ADAPTERS = {"conv": ConvAdapter, "mlp": MLPAdapter}


class AdaptedAPDTerm(DistillationTerm):
    """Base of the APD terms (:class:`~.apd_head.APDHead`, :class:`~.fpn_terms.FPNAPDHead`,
    :class:`~.roi_terms.ROIAPDHead`): checks the channels, K and τ
    (:func:`~apd.modeling.losses.apd.check_apd_scalars`) and owns the adapter pair g_s, g_t
    (:func:`adapter_pair`). Attributes ``student_channels`` (C_s), ``teacher_channels`` (C_t),
    ``num_classes`` (K), ``tau``, ``adapter``, ``student_adapter``, ``teacher_adapter``.

    Subclasses list every keyword they take (configs and ``apd.config``'s override checks read their
    signatures) and set ``adapter`` themselves."""

    def __init__(
        self,
        *,
        student_channels: int,
        teacher_channels: int,
        num_classes: int,
        hidden_dim: int = 512,
        embed_dim: int = 512,
        tau: float = 10.0,
        adapter: str = "conv",
    ):
        """
        Args:
            student_channels: C_s, channels of the student feature the term reads (``SegHeadOutputs.feature``,
                an FPN level, or the box head's ROI vectors).
            teacher_channels: C_t, the same for the teacher.
            num_classes: K (foreground classes for detection).
            hidden_dim: D, hidden width of both adapters (``kmeans_adapt_dim`` = 512 in the paper's code).
            embed_dim: E, common output width of both adapters (512).
            tau: similarity scale τ (``kmeans_temp`` = 10).
            adapter: ``"conv"`` (:class:`ConvAdapter`, dense B×C×h×w features) or ``"mlp"``
                (:class:`MLPAdapter`, R×C vectors).

        Raises:
            ValueError: a channel count < 1, K < 1, τ ≤ 0 or an unknown ``adapter``.
        """
        super().__init__()
        if adapter not in ADAPTERS:
            raise ValueError(f"adapter must be one of {tuple(ADAPTERS)}, got {adapter!r}")
        check_channels(student_channels=student_channels, teacher_channels=teacher_channels)
        check_apd_scalars(num_classes, tau)
        self.student_channels, self.teacher_channels = int(student_channels), int(teacher_channels)
        self.num_classes = int(num_classes)
        self.tau = float(tau)
        self.adapter = adapter
        self.student_adapter, self.teacher_adapter = adapter_pair(
            ADAPTERS[adapter], self.student_channels, self.teacher_channels, hidden_dim, embed_dim
        )

    def second_optimizer_parameters(self) -> List[nn.Parameter]:
        """g_t's parameters, for the separate adapter optimiser (Adam, lr 1e-5 in the paper's code): the APD
        terms' ``second_optimizer_keys`` (the adaptation loss) train only them."""
        return list(self.teacher_adapter.parameters())

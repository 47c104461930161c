"""The segmentation baseline terms (KD, CWD, DIST, SKD, IFVD, FitNet).

Each is a :class:`~.protocol.DistillationTerm` reading :data:`~.protocol.HEAD_OUTPUTS`: its
``forward(student, teacher, targets)`` takes the student's and the teacher's
:class:`~apd.modeling.heads.outputs.SegHeadOutputs` and the B×H×W int64 targets (padded with the ignore
value 255) and returns a dict of **unweighted** ``loss_*`` terms (the keys of ``loss_keys``). The distiller
multiplies each by ``loss_weights[key]`` and sums. Terms never let gradient reach the teacher's outputs. A teacher map on another grid is brought onto the
student's with :func:`resize_to` (the one resize rule, ``align_corners=True``; ``apd.modeling.losses.resize``).
Constructor arguments are keyword-only plain values, so every term can be built with ``LazyCall``.

Shape letters: B images, C channels, K classes, h×w feature grid, H×W target grid.
"""
from typing import List, Optional, Sequence

from torch import nn

from ..losses import (
    channel_wise_divergence_loss,
    dist_loss,
    feature_mimic_loss,
    ifvd_loss,
    logit_kd_loss,
    pairwise_affinity_loss,
)
from ..losses.ifvd import REDUCTIONS as IFVD_REDUCTIONS
from ..losses.resize import ALIGN_CORNERS, resize_to
from ..losses.skd import node_kernel
from .protocol import HEAD_OUTPUTS, DistillationTerm, ExpectedFeature

__all__ = [
    "ALIGN_CORNERS",
    "DistillationTerm",
    "resize_to",
    "LogitKDHead",
    "CWDHead",
    "DISTHead",
    "SKDHead",
    "IFVDHead",
    "FitNetHead",
]


class LogitKDHead(DistillationTerm):
    """Pixel-wise logit KD (docs/METHOD.md §3d): both logits upsampled to the targets' H×W → ``loss_kd``."""

    loss_keys = ("loss_kd",)
    inputs = frozenset({HEAD_OUTPUTS})

    def __init__(self, *, temperature: float = 1.0, align_corners: bool = ALIGN_CORNERS):
        """
        Args:
            temperature: softmax temperature T (1 in APD's code); the loss is scaled by T².
            align_corners: of the bilinear upsampling (default: the one rule, :data:`ALIGN_CORNERS`).
        """
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        self.align_corners = bool(align_corners)

    def forward(self, student, teacher, targets):
        loss = logit_kd_loss(
            student.logits,
            teacher.logits.detach(),
            temperature=self.temperature,
            out_size=targets.shape[-2:],
            align_corners=self.align_corners,
        )
        return {"loss_kd": loss}

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, align_corners={self.align_corners}"


class CWDHead(DistillationTerm):
    """Channel-wise distillation (Shu et al., ICCV 2021) on the classifier logits → ``loss_cwd``."""

    loss_keys = ("loss_cwd",)
    inputs = frozenset({HEAD_OUTPUTS})

    def __init__(self, *, temperature: float = 4.0):
        """
        Args:
            temperature: T of the spatial softmax; the loss is scaled by T².
        """
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def forward(self, student, teacher, targets):
        t_logits = resize_to(teacher.logits.detach(), student.logits.shape[-2:])
        return {"loss_cwd": channel_wise_divergence_loss(student.logits, t_logits, self.temperature)}

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"


class DISTHead(DistillationTerm):
    """DIST (Huang et al., NeurIPS 2022) on the classifier logits → ``loss_dist``.

    Inter- and intra-class Pearson relations of the softened class probabilities, every pixel of the
    batch one sample, at the student's logit resolution (see :func:`apd.modeling.losses.dist_loss`).
    The authors' Cityscapes runs use τ = 1, β = γ = 1 and loss weight 1 on the main logits only.
    """

    loss_keys = ("loss_dist",)
    inputs = frozenset({HEAD_OUTPUTS})

    def __init__(self, *, beta: float = 1.0, gamma: float = 1.0, tau: float = 1.0):
        """
        Args:
            beta: weight β of the inter-class relation term.
            gamma: weight γ of the intra-class relation term.
            tau: softmax temperature τ; the loss is scaled by τ².
        """
        super().__init__()
        if not tau > 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        for name, value in (("beta", beta), ("gamma", gamma)):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        self.beta = float(beta)
        self.gamma = float(gamma)
        self.tau = float(tau)

    def forward(self, student, teacher, targets):
        t_logits = resize_to(teacher.logits.detach(), student.logits.shape[-2:])
        loss = dist_loss(student.logits, t_logits, beta=self.beta, gamma=self.gamma, tau=self.tau)
        return {"loss_dist": loss}

    def extra_repr(self) -> str:
        return f"beta={self.beta}, gamma={self.gamma}, tau={self.tau}"


class SKDHead(DistillationTerm):
    """Pair-wise affinity distillation of SKD (Liu et al., CVPR 2019) on the classifier features →
    ``loss_skd``. Combine with :class:`LogitKDHead` for SKD's pixel-wise term."""

    loss_keys = ("loss_skd",)
    inputs = frozenset({HEAD_OUTPUTS})

    def __init__(self, *, pool_scale: Optional[float] = 0.5, pool_kernel: Optional[Sequence[int]] = None):
        """
        Args:
            pool_scale: relative max-pool kernel size that defines the nodes (0.5 in the SKD authors'
                code: a 2×2 node grid for even h, w, 3×3 for odd ones), or None.
            pool_kernel: fixed (kh, kw) max-pool kernel instead (CIRKD: (2, 2), ⌈h/2⌉×⌈w/2⌉ nodes); set
                ``pool_scale=None`` with it. Both None: every pixel is a node.
        """
        super().__init__()
        node_kernel((1, 1), pool_scale, pool_kernel)  # validates the pair
        self.pool_scale = pool_scale
        self.pool_kernel = None if pool_kernel is None else (int(pool_kernel[0]), int(pool_kernel[1]))

    def forward(self, student, teacher, targets):
        t_feat = resize_to(teacher.feature.detach(), student.feature.shape[-2:])
        loss = pairwise_affinity_loss(student.feature, t_feat, self.pool_scale, self.pool_kernel)
        return {"loss_skd": loss}

    def extra_repr(self) -> str:
        return f"pool_scale={self.pool_scale}, pool_kernel={self.pool_kernel}"


class IFVDHead(DistillationTerm):
    """Intra-class feature variation distillation (Wang et al., ECCV 2020) on the classifier features →
    ``loss_ifvd``."""

    loss_keys = ("loss_ifvd",)
    inputs = frozenset({HEAD_OUTPUTS})

    def __init__(self, *, num_classes: int, ignore_value: int = 255, reduction: str = "all"):
        """
        Args:
            num_classes: K.
            ignore_value: label id without a class.
            reduction: ``"all"`` (÷ B·h·w pixels, the authors' code) or ``"labelled"`` (÷ labelled
                pixels); see :func:`apd.modeling.losses.ifvd_loss`.
        """
        super().__init__()
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if reduction not in IFVD_REDUCTIONS:
            raise ValueError(f"reduction must be one of {IFVD_REDUCTIONS}, got {reduction!r}")
        self.num_classes = int(num_classes)
        self.ignore_value = int(ignore_value)
        self.reduction = reduction

    def expected_features(self) -> List[ExpectedFeature]:
        return [ExpectedFeature("student", "classes", "num_classes", self.num_classes)]

    def forward(self, student, teacher, targets):
        t_feat = resize_to(teacher.feature.detach(), student.feature.shape[-2:])
        loss = ifvd_loss(
            student.feature, t_feat, targets, self.num_classes, self.ignore_value, reduction=self.reduction
        )
        return {"loss_ifvd": loss}

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, ignore_value={self.ignore_value}, reduction={self.reduction!r}"


class FitNetHead(DistillationTerm):
    """FitNet-style feature mimicking: a 1×1 conv regressor maps the student's classifier feature to the
    teacher's channels, then MSE → ``loss_fitnet``. The regressor is trained with the student.

    The regressor has no bias by default, as CIRKD's ``CriterionFitNet`` (the codebase of the segmentation
    KD numbers this baseline is compared with); ``bias=True`` adds one.
    """

    loss_keys = ("loss_fitnet",)
    inputs = frozenset({HEAD_OUTPUTS})

    def __init__(self, *, student_channels: int, teacher_channels: int, bias: bool = False):
        """
        Args:
            student_channels: C_s of ``SegHeadOutputs.feature`` of the student.
            teacher_channels: C_t of the teacher's feature.
            bias: whether the 1×1 regressor has a bias (CIRKD's has none).
        """
        super().__init__()
        for name, value in (("student_channels", student_channels), ("teacher_channels", teacher_channels)):
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive number of channels, got {value}")
        self.student_channels, self.teacher_channels = int(student_channels), int(teacher_channels)
        self.regressor = nn.Conv2d(self.student_channels, self.teacher_channels, kernel_size=1, bias=bool(bias))

    def expected_features(self) -> List[ExpectedFeature]:
        return [ExpectedFeature("student", "feature", "student_channels", self.student_channels),
                ExpectedFeature("teacher", "feature", "teacher_channels", self.teacher_channels)]

    def forward(self, student, teacher, targets):
        s_feat = self.regressor(student.feature)
        t_feat = resize_to(teacher.feature.detach(), s_feat.shape[-2:])
        return {"loss_fitnet": feature_mimic_loss(s_feat, t_feat)}

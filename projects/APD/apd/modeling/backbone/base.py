"""What the dilated backbones share: argument checks, ``size_divisibility`` and the input check."""
from typing import Sequence, Tuple

import torch
from detectron2.modeling import Backbone

__all__ = ["OUTPUT_STRIDES", "DilatedBackbone", "check_backbone_arguments"]

OUTPUT_STRIDES = (8, 16, 32)


def check_backbone_arguments(
    owner: str, *, output_stride: int, out_features: Sequence[str], known_features: Sequence[str], freeze_at: int
) -> Tuple[str, ...]:
    """``out_features`` as a tuple, after checking the arguments every dilated backbone takes; each
    error names ``owner`` and the rejected value."""
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"{owner}: output_stride={output_stride!r} is not one of {list(OUTPUT_STRIDES)}")
    out_features = tuple(out_features)
    if len(out_features) == 0:
        raise ValueError(f"{owner}: out_features is empty")
    unknown = [f for f in out_features if f not in known_features]
    if unknown:
        raise ValueError(f"{owner}: unknown out_features {unknown}; choose from {tuple(known_features)}")
    if not 0 <= freeze_at <= 5:
        raise ValueError(f"{owner}: freeze_at={freeze_at!r} must be in [0, 5]")
    return out_features


class DilatedBackbone(Backbone):
    """A Detectron2 ``Backbone`` with an ``output_stride`` attribute (8, 16 or 32)."""

    output_stride: int

    @property
    def size_divisibility(self) -> int:
        # FPN (output stride 32) needs inputs divisible by 32; dilated models take any size.
        return 32 if self.output_stride == 32 else 0

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f"{type(self).__name__} takes B×C×H×W inputs, got shape {tuple(x.shape)}")

"""Building blocks shared by the heads (a leaf module: it imports no other head module)."""
from torch.nn import functional as F

from detectron2.layers import Conv2d, get_norm

__all__ = ["conv_norm_relu"]


def conv_norm_relu(in_channels: int, out_channels: int, kernel_size: int, norm, dilation: int = 1):
    """A d2 ``Conv2d`` with "same" padding, ``get_norm(norm)`` and ReLU; no bias when normalised."""
    norm_layer = get_norm(norm, out_channels)
    return Conv2d(
        in_channels,
        out_channels,
        kernel_size=kernel_size,
        padding=dilation * (kernel_size - 1) // 2,
        dilation=dilation,
        bias=norm_layer is None,
        norm=norm_layer,
        activation=F.relu,
    )

"""DeepLabV3-ResNet-101 (dilated, output stride 8, aux head): ``pspnet.py`` with an ASPP head.

The model of the APD repo's ``model/deeplabv3.py``: ASPP rates (12, 24, 36) at output stride 8, five
512-channel branches, 3×3 bottleneck → 512. Every other head argument (input shapes, classes, norm,
aux head, align_corners) is PSPNet's; change the depth as described in ``pspnet.py``.
"""
from apd.modeling.heads.aspp_head import ASPPHead

from .pspnet import model

model.sem_seg_head._target_ = ASPPHead
del model.sem_seg_head.bins
model.sem_seg_head.dilations = (12, 24, 36)
model.sem_seg_head.aspp_channels = 512

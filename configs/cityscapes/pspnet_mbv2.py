"""PSPNet-MobileNetV2 on Cityscapes (output stride 8; PPM on the 320-ch stage, aux on the 96-ch stage)."""
from detectron2.config import LazyCall as L

from apd.modeling.backbone.mobilenet_v2 import DilatedMobileNetV2, dilated_mobilenet_v2_output_shape

from .pspnet_r101 import dataloader, lr_multiplier, model, optimizer, train

model.backbone = L(DilatedMobileNetV2)(output_stride=8, width_mult=1.0, norm="SyncBN", out_features=["res4", "res5"])
model.sem_seg_head.norm = "${..backbone.norm}"
model.sem_seg_head.input_shape = L(dilated_mobilenet_v2_output_shape)(  # res4 96, res5 320 channels at ×1
    output_stride="${...backbone.output_stride}",
    width_mult="${...backbone.width_mult}",
    out_features="${...backbone.out_features}",
)
train.init_checkpoint = "checkpoints/mobilenet_v2_imagenet.pth"

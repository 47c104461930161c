"""PSPNet-MobileNetV2 on Cityscapes (output stride 8; PPM on the 320-ch stage, aux on the 96-ch stage)."""
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec

from apd.modeling.backbone.mobilenet_v2 import DilatedMobileNetV2

from .pspnet_r101 import dataloader, lr_multiplier, model, optimizer, train

model.backbone = L(DilatedMobileNetV2)(output_stride=8, width_mult=1.0, norm="BN", out_features=["res4", "res5"])
model.sem_seg_head.norm = "${..backbone.norm}"
model.sem_seg_head.input_shape = {
    "res4": ShapeSpec(channels=96, stride=8),
    "res5": ShapeSpec(channels=320, stride=8),
}
train.init_checkpoint = "checkpoints/mobilenet_v2_imagenet.pth"

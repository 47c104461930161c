"""APD: PSPNet-R101 → PSPNet-MobileNetV2 on PASCAL-Context (59 classes)."""
from detectron2.config import LazyConfig

from .apd_pspnet_r18 import adapter_optimizer, dataloader, lr_multiplier, model, optimizer, train

model.student = LazyConfig.load_rel("pspnet_mbv2.py", "model")
train.init_checkpoint = "checkpoints/mobilenet_v2_imagenet.pth"

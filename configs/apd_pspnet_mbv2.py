"""APD: PSPNet-R101 teacher → PSPNet-MobileNetV2 student on Cityscapes."""
from detectron2.config import LazyConfig

from .apd_pspnet_r18 import adapter_optimizer, dataloader, lr_multiplier, model, optimizer, train

model.student = LazyConfig.load_rel("cityscapes/pspnet_mbv2.py", "model")
train.init_checkpoint = "checkpoints/mobilenet_v2_imagenet.pth"

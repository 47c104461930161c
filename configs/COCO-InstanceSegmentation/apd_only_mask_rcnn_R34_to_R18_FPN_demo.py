"""Small CPU demo of dense APD alone (no KD) on Mask R-CNN R34-FPN → R18-FPN: the APD demo without KD."""
from .apd_mask_rcnn_R34_to_R18_FPN_demo import adapter_optimizer, dataloader, lr_multiplier, model, optimizer, train

del model.distill_heads["kd"]
model.loss_weights = {k: v for k, v in model.loss_weights.items() if k != "loss_kd"}
train.output_dir = "./output/demo/coco/apd_only_mask_rcnn_R34_to_R18_FPN"

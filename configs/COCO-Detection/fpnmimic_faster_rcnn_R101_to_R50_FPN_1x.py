"""FPN feature imitation baseline: the APD config with its terms replaced by an MSE per FPN level through a
1×1 conv adapter (student → teacher channels, trained with the student; ``gt_only=True`` restricts it to
ground-truth object pixels)."""
from detectron2.config import LazyCall as L

from apd.modeling.distill.fpn_terms import FPN_LEVELS, FPNImitationHead

from .apd_faster_rcnn_R101_to_R50_FPN_1x import dataloader, lr_multiplier, model, optimizer, train

model.distill_heads = {
    "fpn_mimic": L(FPNImitationHead)(
        student_channels="${...student.backbone.out_channels}",
        teacher_channels="${...teacher.backbone.out_channels}",
        levels=list(FPN_LEVELS),
        gt_only=False,
    ),
}
model.loss_weights = {"loss_fpn_mimic": 1.0}
adapter_optimizer = None  # no teacher adapter
train.output_dir = "./output/COCO-Detection/fpnmimic_faster_rcnn_R101_to_R50_FPN_1x"

"""PKD (Cao et al., NeurIPS 2022): Faster R-CNN R101-FPN 3x teacher → R50-FPN 1x student, Pearson-correlation
imitation of the FPN features (``apd.modeling.distill.pkd_terms.FPNPKDHead``, docs/METHOD.md).

mmrazor's recipe (``configs/distill/mmdet/pkd/pkd_fpn_faster-rcnn_r101_faster-rcnn_r50_2x_coco.py``: R101 2x
teacher 39.8 → R50 student 38.4 → 40.3 box AP on a 2x schedule): levels p2–p5 (the first four of the
five FPN outputs; p6 is not distilled), weight 6 per level, summed. ``FPNPKDHead`` averages over its levels,
so weight 6 × 4 levels = 24 on the mean is the same gradient. Equal FPN widths (256): no adapter.
Here: the model-zoo R101 3x teacher (42.0) and Detectron2's 1x schedule of the student.
"""
from detectron2.config import LazyCall as L

from apd.modeling.distill.pkd_terms import FPNPKDHead

from .apd_faster_rcnn_R101_to_R50_FPN_1x import dataloader, lr_multiplier, model, optimizer, train

model.distill_heads = {
    "pkd": L(FPNPKDHead)(
        student_channels="${...student.backbone.out_channels}",
        teacher_channels="${...teacher.backbone.out_channels}",
        levels=["p2", "p3", "p4", "p5"],
        scope="image",
    ),
}
model.loss_weights = {"loss_pkd": 24.0}  # mmrazor: 6 on each of the 4 levels, summed
adapter_optimizer = None  # no teacher adapter
train.output_dir = "./output/COCO-Detection/pkd_faster_rcnn_R101_to_R50_FPN_1x"

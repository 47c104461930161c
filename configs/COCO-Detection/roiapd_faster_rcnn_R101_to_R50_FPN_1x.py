"""Ablation: ROI-level APD + KD (the first detection proposal, docs/METHOD.md §6) instead of dense APD.

Both models pool the student's sampled proposals; per image, prototypes of the foreground ROIs'
box-head vectors (background ROIs: KL rows without a prototype), MLP adapters 1024→512→512. On the paired
COCO demo it scored below the student alone (docs/BENCHMARKS.md); the dense variant replaced it.
"""
from detectron2.config import LazyCall as L

from apd.modeling.distill.roi_terms import ROIAPDHead

from .apd_faster_rcnn_R101_to_R50_FPN_1x import adapter_optimizer, dataloader, lr_multiplier, model, optimizer, train

del model.distill_heads["apd"]
model.distill_heads["roi_apd"] = L(ROIAPDHead)(
    student_channels="${...student.roi_heads.box_predictor.input_shape.channels}",
    teacher_channels="${...teacher.roi_heads.box_predictor.input_shape.channels}",
    num_classes="${...student.roi_heads.num_classes}",
    include_background_proto=False,  # hidden_dim, embed_dim, tau: the defaults 512, 512, 10 as in segmentation
)
model.loss_weights = {"loss_kd": model.loss_weights["loss_kd"], "loss_roi_apd": 1.0, "loss_roi_pa": 1.0, "loss_roi_adapt": 1.0}
train.output_dir = "./output/COCO-Detection/roiapd_faster_rcnn_R101_to_R50_FPN_1x"

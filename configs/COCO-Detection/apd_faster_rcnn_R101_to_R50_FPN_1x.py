"""APD on COCO detection: Faster R-CNN R101-FPN 3x teacher → R50-FPN 1x student (dense APD on FPN + KD).

docs/METHOD.md §6b ([P]: the paper's detection setup is unconfirmed). Per image and FPN level (p2–p6, all
the levels the RPN and the ROI heads read), a class map from the ground truth (filled boxes here; instance
masks in the Mask R-CNN configs; smaller objects over larger; uncovered in-image pixels = a background class
with its own prototype; padding ignored); then the segmentation APD (§2–§3, ``apd_loss_terms``) on each
level with one adapter pair shared across levels (1×1 conv 256→512→512), averaged over levels; the teacher
adapter is trained by ``loss_adapt`` with its own Adam. Plus logit KD on the box classifier's (K+1)-way
scores of the student's sampled ROIs, as the segmentation recipe pairs APD with KD.

Weights: the segmentation recipe's reductions, with the weights chosen so that at initialisation no
distillation term's gradient outweighs the detector's own (benchmarks/loss_balance.py, docs/BENCHMARKS.md).
``model.warmup_iters`` (0 here, the official schedule) ramps the distillation weights linearly.
Baselines: the student alone (``faster_rcnn_R_50_FPN_1x.py``, model zoo 37.9 AP), KD alone
(``kd_faster_rcnn_R101_to_R50_FPN_1x.py``) and FPN imitation (``fpnmimic_faster_rcnn_R101_to_R50_FPN_1x.py``).
"""
from detectron2.config import LazyCall as L
from detectron2.config import LazyConfig

from apd.modeling.distill.fpn_terms import FPN_LEVELS, FPNAPDHead
from apd.modeling.distill.roi_terms import ROILogitKDHead
from apd.modeling.meta_arch.rcnn_distiller import RCNNDistiller
from apd.solver.param_groups import student_param_groups

from ..common.optim import AdapterAdam as adapter_optimizer
from .faster_rcnn_R_50_FPN_1x import dataloader, lr_multiplier, optimizer, train
from .faster_rcnn_R_50_FPN_1x import model as _student

model = L(RCNNDistiller)(
    student=_student,
    teacher=LazyConfig.load_rel("faster_rcnn_R_101_FPN_3x.py", "model"),
    # Model zoo COCO-Detection/faster_rcnn_R_101_FPN_3x (42.0 box AP); Detectron2 downloads and caches
    # it. Offline: download it once and give the local .pkl path instead.
    teacher_weights="detectron2://COCO-Detection/faster_rcnn_R_101_FPN_3x/137851257/model_final_f6e8b1.pkl",
    distill_heads={
        "kd": L(ROILogitKDHead)(temperature=1.0),
        "apd": L(FPNAPDHead)(
            student_channels="${...student.backbone.out_channels}",
            teacher_channels="${...teacher.backbone.out_channels}",
            num_classes="${...student.roi_heads.num_classes}",
            levels=list(FPN_LEVELS),
            # hidden_dim, embed_dim, tau: the segmentation recipe's 512, 512, 10 (FPNAPDHead's defaults)
        ),
    },
    loss_weights={"loss_kd": 10.0, "loss_apd": 10.0, "loss_pa": 10.0, "loss_adapt": 1.0},
    warmup_iters=0,
    class_map_from="auto",  # masks when the loader gives gt_masks (Mask R-CNN), else boxes
)

# Detectron2's SGD groups (no weight decay on norms, one LR for all), minus the teacher adapter,
# which only `adapter_optimizer` (Adam, lr 1e-5, docs/METHOD.md §3c) steps.
optimizer.params = L(student_param_groups)(
    model=None,
    base_lr="${..lr}",
    weight_decay="${..weight_decay}",
    weight_decay_norm=0.0,
    head_lr_multiplier=1.0,
)
train.output_dir = "./output/COCO-Detection/apd_faster_rcnn_R101_to_R50_FPN_1x"

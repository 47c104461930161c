"""APD on COCO detection: Faster R-CNN R101-FPN 3x teacher → R50-FPN 1x student.

APD_SPEC §6 ([P]: the paper's detection setup is unconfirmed): both models are pooled on the student's
sampled proposals; per image, class prototypes of the box-head ROI vectors (background ROIs: no
prototype, but KL rows); plus logit KD on the (K+1)-way box scores, as the segmentation recipe (§3).
The student's recipe (data, 1x schedule, SGD) is the run's recipe. Baselines: the student alone
(``faster_rcnn_R_50_FPN_1x.py``, model zoo 37.9 AP) and KD alone (``kd_faster_rcnn_R101_to_R50_FPN_1x.py``).
"""
from detectron2.config import LazyCall as L
from detectron2.config import LazyConfig

from apd.modeling.distill.apd_head import APDHead
from apd.modeling.meta_arch.rcnn_distiller import rcnn_distiller_from_models
from apd.solver.param_groups import student_param_groups

from ..common.optim import AdapterAdam as adapter_optimizer
from .faster_rcnn_R_50_FPN_1x import dataloader, lr_multiplier, optimizer, train
from .faster_rcnn_R_50_FPN_1x import model as _student

model = L(rcnn_distiller_from_models)(
    student=_student,
    teacher=LazyConfig.load_rel("faster_rcnn_R_101_FPN_3x.py", "model"),
    # Model zoo COCO-Detection/faster_rcnn_R_101_FPN_3x (42.0 box AP); Detectron2 downloads and caches
    # it. Offline: download it once and give the local .pkl path instead.
    teacher_weights="detectron2://COCO-Detection/faster_rcnn_R_101_FPN_3x/137851257/model_final_f6e8b1.pkl",
    apd_head=L(APDHead)(
        student_channels="${..student.roi_heads.box_predictor.input_shape.channels}",
        teacher_channels="${..teacher.roi_heads.box_predictor.input_shape.channels}",
        num_classes="${..student.roi_heads.num_classes}",
        hidden_dim=512,
        embed_dim=512,
        tau=10.0,
        ignore_value=-1,  # background ROIs (gt_classes == K) are mapped to it
        adapter="mlp",
    ),
    # Detection loss weights are unconfirmed (APD_SPEC §6): start at 1.0 each.
    loss_weights=dict(loss_apd=1.0, loss_pa=1.0, loss_adapt=1.0, loss_kd=1.0),
    kd_temperature=1.0,
    use_kd=True,
)

# Detectron2's SGD groups (no weight decay on norms, one LR for all), minus the teacher adapter,
# which only `adapter_optimizer` (Adam, lr 1e-5, APD_SPEC §3c) steps.
optimizer.params = L(student_param_groups)(
    model=None,
    base_lr="${..lr}",
    weight_decay="${..weight_decay}",
    weight_decay_norm=0.0,
    head_lr_multiplier=1.0,
)
train.output_dir = "./output/COCO-Detection/apd_faster_rcnn_R101_to_R50_FPN_1x"

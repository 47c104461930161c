"""Small CPU demo of APD (dense, on the FPN levels) + logit KD on Mask R-CNN: the R34-FPN demo teacher →
the R18-FPN demo student.

The method of ``apd_mask_rcnn_R101_to_R50_FPN_1x.py`` (class maps from the instance masks) with the small
demo models (``mask_rcnn_R_18_FPN_demo.py`` documents them); adapters 64/128 → 128 → 128 for the narrow
FPNs. Train ``mask_rcnn_R_34_FPN_demo.py`` first, or run ``tools/run_demo.py --task coco``, which does both.
Family: ``apd_only_`` (dense APD alone), ``kd_``, ``fpnmimic_`` (FPN imitation), ``roiapd_`` (ROI APD + KD).
"""
from .apd_mask_rcnn_R101_to_R50_FPN_1x import adapter_optimizer, model, optimizer
from .mask_rcnn_R_18_FPN_demo import dataloader, lr_multiplier, train
from .mask_rcnn_R_18_FPN_demo import model as _student, optimizer as _student_optimizer
from .mask_rcnn_R_34_FPN_demo import model as _teacher, train as _teacher_train

model.student, model.teacher = _student, _teacher
model.teacher_weights = _teacher_train.output_dir + "/model_final.pth"
model.distill_heads.apd.hidden_dim = model.distill_heads.apd.embed_dim = 128  # 512 for the 256-d real FPNs
optimizer.lr = _student_optimizer.lr
train.output_dir = "./output/demo/coco/apd_mask_rcnn_R34_to_R18_FPN"

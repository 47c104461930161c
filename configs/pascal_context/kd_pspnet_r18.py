"""Logit KD only (no APD): PSPNet-R101 → PSPNet-R18, weight 10, T = 1 (APD_SPEC §3d), on PASCAL-Context (59 classes, background ignored)."""
from ..kd_pspnet_r18 import lr_multiplier, model, optimizer, train
from ..common.data.pascal_context import dataloader

model.student.sem_seg_head.num_classes = 59
model.teacher.sem_seg_head.num_classes = 59
model.student.sliding_window = dict(crop_size=(473, 473), flip=True)
model.teacher_weights = "checkpoints/pspnet_r101_pascal_context.pth"
# 100 epochs × 4998 images / batch 12 ≈ 41,650 iterations (APD_SPEC §4).
train.max_iter = 41650
optimizer.lr = 0.00075

"""APD: PSPNet-R101 teacher → PSPNet-R18 student, the official recipe on ADE20K (150 classes)."""
from ..apd_pspnet_r18 import adapter_optimizer, lr_multiplier, model, optimizer, train
from ..common.data.ade20k import dataloader

model.student.sem_seg_head.num_classes = 150
model.teacher.sem_seg_head.num_classes = 150
model.student.sliding_window = dict(crop_size=(473, 473), flip=True)
model.teacher_weights = "checkpoints/pspnet_r101_ade20k.pth"
# 100 epochs × 20210 images / batch 8 ≈ 252,625 iterations (APD_SPEC §4).
train.max_iter = 252625
optimizer.lr = 0.005

"""Small CPU demo of APD (+ logit KD) on Mask R-CNN: the R34-FPN demo teacher → the R18-FPN demo student.

The method of ``apd_mask_rcnn_R101_to_R50_FPN_1x.py`` (ROI-level APD + PA + adapter CE on the box head's
ROI vectors, KD on the box scores; mask head on its own loss) with the small demo models
(``mask_rcnn_R_18_FPN_demo.py`` documents them). Train ``mask_rcnn_R_34_FPN_demo.py`` first, or run
``tools/run_demo.py --task coco``, which does both.
"""
from .apd_mask_rcnn_R101_to_R50_FPN_1x import adapter_optimizer, model, optimizer
from .mask_rcnn_R_18_FPN_demo import dataloader, lr_multiplier, train
from .mask_rcnn_R_18_FPN_demo import model as _student, optimizer as _student_optimizer
from .mask_rcnn_R_34_FPN_demo import model as _teacher, train as _teacher_train

model.student, model.teacher = _student, _teacher
model.teacher_weights = _teacher_train.output_dir + "/model_final.pth"
model.apd_head.hidden_dim = model.apd_head.embed_dim = 256  # 512 for the 1024-d box heads of the real pair
optimizer.lr = _student_optimizer.lr
train.output_dir = "./output/demo/coco/apd_mask_rcnn_R34_to_R18_FPN"

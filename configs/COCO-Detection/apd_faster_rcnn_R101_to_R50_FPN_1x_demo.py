"""CPU demo of APD R101 → R50 (Faster R-CNN) on the generated COCO-format data.

Train the demo teacher first (``faster_rcnn_R_101_FPN_3x_demo.py``): its model node and its final
checkpoint are the teacher here.
"""
from .apd_faster_rcnn_R101_to_R50_FPN_1x import adapter_optimizer, model, optimizer
from .faster_rcnn_R_101_FPN_3x_demo import model as _teacher, train as _teacher_train
from .faster_rcnn_R_50_FPN_1x_demo import dataloader, lr_multiplier, train
from .faster_rcnn_R_50_FPN_1x_demo import model as _student, optimizer as _student_optimizer

model.student, model.teacher = _student, _teacher
model.teacher_weights = _teacher_train.output_dir + "/model_final.pth"
optimizer.lr = _student_optimizer.lr
train.output_dir = "./output/demo/apd_faster_rcnn_R101_to_R50_FPN_1x"

"""APD on COCO detection: Faster R-CNN R101-FPN 3x teacher → R18-FPN 1x student.

Same method as ``apd_faster_rcnn_R101_to_R50_FPN_1x.py``; the R18 student reads RGB with torchvision
statistics (see ``faster_rcnn_R_18_FPN_1x.py``) and the BGR model-zoo teacher gets its channels
reversed by the distiller.
"""
from .apd_faster_rcnn_R101_to_R50_FPN_1x import adapter_optimizer, model, optimizer
from .faster_rcnn_R_18_FPN_1x import dataloader, lr_multiplier, train
from .faster_rcnn_R_18_FPN_1x import model as _student

model.student = _student
train.output_dir = "./output/COCO-Detection/apd_faster_rcnn_R101_to_R18_FPN_1x"

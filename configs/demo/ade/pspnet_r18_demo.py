"""ADE20K-format benchmark, student alone: the demo student (PSPNet-R18, quarter width) on the generated
ADE20K-format data, 150 classes, from the Cityscapes-format stand-in (``_data.py``)."""
from ..pspnet_r18_demo import lr_multiplier, model, optimizer, train
from ._data import dataloader, to_ade

to_ade(model, train, "student")

"""ADE20K-format benchmark: ``configs/demo/apd_pspnet_r18_demo.py`` on the generated ADE20K-format data, 150
classes, with this benchmark's stand-in and teacher (``_data.py``)."""
from ..apd_pspnet_r18_demo import adapter_optimizer, lr_multiplier, model, optimizer, train
from ._data import dataloader, to_ade

to_ade(model, train, "apd")

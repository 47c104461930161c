"""ADE20K-format benchmark teacher: the demo teacher (PSPNet-R18, half width) on the generated ADE20K-format
data, 150 classes, from the half-width Cityscapes-format stand-in; trained once by
``tools/pretrain_standin.py --benchmark ade --stage teacher`` (its schedule and curve: docs/BENCHMARKS.md)."""
from ..pspnet_r18_wide_demo import lr_multiplier, model, optimizer, train
from ._data import STANDIN_HALF, dataloader, to_ade

to_ade(model, train, "teacher")
train.init_checkpoint = STANDIN_HALF
train.max_iter = 300  # fixed before the first result (docs/BENCHMARKS.md); the students' crops and batch
train.eval_period = 100
train.checkpointer.period = 300

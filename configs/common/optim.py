# Optimisers. `params.model` is filled by train_net.py once the model exists.
import torch
from detectron2.config import LazyCall as L

from apd.solver.param_groups import student_param_groups, teacher_adapter_params

# Student SGD (docs/METHOD.md §4): backbone at lr, heads + student adapter at 10× lr, wd 1e-4 on all weights.
SGD = L(torch.optim.SGD)(
    params=L(student_param_groups)(
        model=None, base_lr="${..lr}", weight_decay="${..weight_decay}", head_lr_multiplier=10.0
    ),
    lr=0.005,
    momentum=0.9,
    weight_decay=1e-4,
)

# Teacher adapter's own Adam (docs/METHOD.md §3c; the official LR stays constant, §7.4).
AdapterAdam = L(torch.optim.Adam)(
    params=L(teacher_adapter_params)(model=None), lr=1e-5, betas=(0.9, 0.99), weight_decay=0.0
)

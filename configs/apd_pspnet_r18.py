"""APD: PSPNet-R101 teacher → PSPNet-R18 student on Cityscapes, the official recipe (docs/METHOD.md §3-§4).

    python train_net.py --config-file configs/apd_pspnet_r18.py --num-gpus 8 \
        model.teacher_weights=checkpoints/pspnet_r101_cityscapes.pth

Student recipe = configs/cityscapes/pspnet_r18.py (713 crops, batch 8, lr 0.005, ≈74k iterations).
Loss = CE + 0.4·aux + 10·KD + 10·APD + 10·PA; the teacher adapter is trained by loss_adapt with its
own Adam (lr 1e-5). ``model.distill_heads.apd.scope="image"`` is one perspective per image (the paper's
intent); ``"batch"`` reproduces the official per-GPU-batch prototypes exactly.
"""
from detectron2.config import LazyCall as L
from detectron2.config import LazyConfig

from apd.modeling.distill import APDHead, LogitKDHead
from apd.modeling.meta_arch.semantic_seg_distiller import SemanticSegDistiller

from .cityscapes.pspnet_r18 import dataloader, lr_multiplier, optimizer, train
from .cityscapes.pspnet_r18 import model as _student
from .common.optim import AdapterAdam as adapter_optimizer

_teacher = LazyConfig.load_rel("cityscapes/pspnet_r101.py", "model")
_teacher.sliding_window = None  # only the student is evaluated with the test protocol

model = L(SemanticSegDistiller)(
    student=_student,
    teacher=_teacher,
    teacher_weights="checkpoints/pspnet_r101_cityscapes.pth",
    distill_heads={
        "kd": L(LogitKDHead)(temperature=1.0),
        "apd": L(APDHead)(
            student_channels="${...student.sem_seg_head.channels}",
            teacher_channels="${...teacher.sem_seg_head.channels}",
            num_classes="${...student.sem_seg_head.num_classes}",
            hidden_dim=512,
            embed_dim=512,
            tau=10.0,
            scope="image",
            ignore_value="${...student.sem_seg_head.ignore_value}",
        ),
    },
    loss_weights={"loss_kd": 10.0, "loss_apd": 10.0, "loss_pa": 10.0, "loss_adapt": 1.0},
    save_teacher=False,
)

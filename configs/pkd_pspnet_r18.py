"""PKD baseline (Cao et al., NeurIPS 2022): Pearson-correlation imitation of the classifier feature
(``SegHeadOutputs.feature``; ``apd.modeling.distill.pkd_terms.PKDHead``), PSPNet-R101 → PSPNet-R18 on
Cityscapes. Both heads are 512 wide: no adapter. PKD was published for detection only; the weight is
the one of mmrazor's two-stage detection recipe per feature map (6)."""
from detectron2.config import LazyCall as L

from apd.modeling.distill.pkd_terms import PKDHead

from .kd_pspnet_r18 import adapter_optimizer, dataloader, lr_multiplier, model, optimizer, train

model.distill_heads = {
    "pkd": L(PKDHead)(
        student_channels="${...student.sem_seg_head.channels}",
        teacher_channels="${...teacher.sem_seg_head.channels}",
        scope="image",
    ),
}
model.loss_weights = {"loss_pkd": 6.0}

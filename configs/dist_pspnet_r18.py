"""DIST baseline (Huang et al., NeurIPS 2022): PSPNet-R101 → PSPNet-R18 on Cityscapes.

Inter- and intra-class Pearson relations of the logits' class probabilities, every pixel a sample, on
the main logits only, τ = 1, β = γ = 1, weight 1: the authors' Cityscapes settings (DIST_KD,
``segmentation/train_kd.py``). Their runs used CIRKD's recipe (512×1024 crops, batch 16, 40k
iterations, lr 0.02); this config keeps the project's Cityscapes recipe so methods compare directly.
"""
from detectron2.config import LazyCall as L

from apd.modeling.distill import DISTHead

from .kd_pspnet_r18 import adapter_optimizer, dataloader, lr_multiplier, model, optimizer, train

model.distill_heads = {"dist": L(DISTHead)(beta=1.0, gamma=1.0, tau=1.0)}
model.loss_weights = {"loss_dist": 1.0}

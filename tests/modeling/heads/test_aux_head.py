import math

import torch
import torch.nn.functional as F

from apd.modeling.heads.aux_head import FCNAuxHead
from apd.modeling.heads.base import inference_size, masked_cross_entropy


def test_fcn_aux_head_layout():
    head = FCNAuxHead(in_channels=8, num_classes=3, channels=6, norm="BN").train()
    assert head.conv.weight.shape == (6, 8, 3, 3) and head.conv.bias is None  # norm → no bias
    assert isinstance(head.conv.norm, torch.nn.BatchNorm2d)
    assert isinstance(head.dropout, torch.nn.Dropout2d) and head.dropout.p == 0.1
    assert head(torch.randn(2, 8, 5, 7)).shape == (2, 3, 5, 7)


def test_inference_size():
    assert inference_size((90, 90), 8, align_corners=True) == (713, 713)  # (90−1)·8+1
    assert inference_size((60, 80), 8, align_corners=False) == (480, 640)


def test_masked_cross_entropy_by_hand():
    # Two pixels, K=2, logits (0, 0): CE = ln 2 each; a third pixel is ignored.
    logits = torch.zeros(1, 2, 1, 3)
    logits[0, :, 0, 2] = torch.tensor([100.0, -100.0])  # would cost 200 if it were not ignored
    targets = torch.tensor([[[0, 1, 255]]])
    loss = masked_cross_entropy(logits, targets, 255)
    torch.testing.assert_close(loss, torch.tensor(math.log(2)))
    torch.testing.assert_close(loss, F.cross_entropy(logits, targets, ignore_index=255))

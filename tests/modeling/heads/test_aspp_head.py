import pytest
import torch
import torch.nn.functional as F

from detectron2.layers import ShapeSpec

from apd.modeling.heads import ASPPHead, SegHeadOutputs

K = 4


def _shapes(stride=8):
    return {
        "res4": ShapeSpec(channels=8, stride=stride),
        "res5": ShapeSpec(channels=16, stride=stride),
    }


def _features(b=2, h=5, w=6):
    torch.manual_seed(0)
    return {"res4": torch.randn(b, 8, h, w), "res5": torch.randn(b, 16, h, w)}


def _head(stride=8, **kw):
    torch.manual_seed(1)
    kw.setdefault("aux_in_feature", "res4")
    return ASPPHead(
        _shapes(stride), num_classes=K, aspp_channels=6, channels=10, aux_channels=6, **kw
    )


def test_layers_shapes_and_attributes():
    head = _head().train()
    out = head.layers(_features())
    assert isinstance(out, SegHeadOutputs)
    assert out.feature.shape == (2, 10, 5, 6)
    assert out.logits.shape == (2, K, 5, 6)
    assert out.aux_logits.shape == (2, K, 5, 6)
    assert head.feature_channels == 10 and head.common_stride == 8 and head.ignore_value == 255
    # 5 branches (pool, 1×1, three atrous) × 6 channels enter the bottleneck.
    assert head.aspp(_features()["res5"]).shape == (2, 30, 5, 6)
    torch.testing.assert_close(out.logits, head.classifier(out.feature))


def test_default_dilations_follow_output_stride():
    assert _head(stride=8).dilations == (12, 24, 36)
    assert _head(stride=16).dilations == (6, 12, 18)
    branches = _head(stride=8).aspp.branches  # 1×1, then the atrous 3×3 convs
    assert [conv.dilation for conv in branches] == [(1, 1), (12, 12), (24, 24), (36, 36)]
    with pytest.raises(ValueError, match="stride 4"):
        _head(stride=4)
    assert _head(stride=4, dilations=(1, 2, 3)).dilations == (1, 2, 3)


def test_losses_weighted_and_forward_contract():
    head = _head(loss_weight=2.0, aux_weight=0.4).train()
    feats = _features()
    torch.manual_seed(3)
    targets = torch.randint(0, K, (2, 40, 48))
    targets[0, :, :5] = 255
    torch.manual_seed(4)
    out = head.layers(feats)
    losses = head.losses(out, targets)
    up = F.interpolate(out.logits, size=(40, 48), mode="bilinear", align_corners=False)
    up_aux = F.interpolate(out.aux_logits, size=(40, 48), mode="bilinear", align_corners=False)
    ce, ce_aux = (F.cross_entropy(x, targets, ignore_index=255) for x in (up, up_aux))
    torch.testing.assert_close(losses["loss_sem_seg"], 2.0 * ce)
    torch.testing.assert_close(losses["loss_aux"], 0.4 * ce_aux)
    torch.manual_seed(4)  # same dropout masks
    results, fwd_losses = head(feats, targets)
    assert results is None
    torch.testing.assert_close(fwd_losses, losses)

    head.eval()
    logits, empty = head(feats)
    assert empty == {} and logits.shape == (2, K, 40, 48)


def test_single_image_batch_in_eval():
    # The pooled 1×1 branch has BatchNorm: eval uses running stats, so batch 1 works.
    head = _head().eval()
    assert head(_features(b=1))[0].shape == (1, K, 40, 48)

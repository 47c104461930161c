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


def test_projection_option_is_off_by_default_and_composes_in_order():
    # default: no projection module and no project.* keys (existing checkpoints keep their layout)
    plain = _head()
    assert plain.project is None and not any(k.startswith("project.") for k in plain.state_dict())
    assert plain.bottleneck[0].in_channels == 30  # 5 branches × 6

    head = _head(project_channels=7, project_dropout=0.5).eval()
    conv, dropout = head.project
    # 1×1 conv 30 → 7 without bias (it is normalised), then element-wise dropout (CIRKD's nn.Dropout)
    assert conv.weight.shape == (7, 30, 1, 1) and conv.bias is None
    assert type(dropout) is torch.nn.Dropout and dropout.p == 0.5
    assert head.bottleneck[0].weight.shape == (10, 7, 3, 3)
    with torch.no_grad():
        for bn in (conv.norm, head.bottleneck[0].norm):  # non-trivial eval statistics
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 1.5)
    feats = _features()
    with torch.no_grad():
        out = head.layers(feats)
        # by hand: concatenation → 1×1 conv → BN (running stats) → ReLU → 3×3 bottleneck → classifier
        cat = head.aspp(feats["res5"])
        bn = conv.norm
        projected = F.relu(F.batch_norm(F.conv2d(cat, conv.weight), bn.running_mean, bn.running_var,
                                        bn.weight, bn.bias, eps=bn.eps))
        expected = head.classifier(head.bottleneck(projected))
    torch.testing.assert_close(out.logits, expected)

    # in training the projection's dropout is active: p = 1 zeroes the bottleneck input, so the
    # bottleneck's output is ReLU(BN(0)) = ReLU(BN bias) everywhere (batch statistics of a constant)
    drop_all = _head(project_channels=7, project_dropout=1.0).train()
    bias = torch.linspace(0.1, 1.0, 10)
    with torch.no_grad():
        drop_all.bottleneck[0].norm.bias.copy_(bias)
    feature = drop_all.layers(_features()).feature  # then Dropout2d(0.1): kept channels are scaled by 1/0.9
    keep = (feature != 0).flatten(2).any(-1)
    assert keep.sum() > 0
    expected = (bias / 0.9).view(1, 10, 1, 1).expand_as(feature)
    torch.testing.assert_close(feature[keep], expected[keep])


def test_optional_projection_after_the_concatenation():
    head = ASPPHead(_shapes(), num_classes=K, channels=12, aspp_channels=6)
    assert head.project is None and head.bottleneck[0].weight.shape == (12, 30, 3, 3)
    head = ASPPHead(_shapes(), num_classes=K, channels=12, aspp_channels=6, project_channels=9)
    assert head.project[0].weight.shape == (9, 30, 1, 1)  # 5 branches × 6 → 9
    assert head.bottleneck[0].weight.shape == (12, 9, 3, 3) and head.project[1].p == 0.5

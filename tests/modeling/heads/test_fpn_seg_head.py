import torch
import torch.nn.functional as F

from detectron2.layers import ShapeSpec
from detectron2.modeling.meta_arch.semantic_seg import SemSegFPNHead

from apd.modeling.heads import FPNSegHead, SegHeadOutputs

K = 3
STRIDES = {"p2": 4, "p3": 8, "p4": 16, "p5": 32}


def _head():
    torch.manual_seed(0)
    shapes = {k: ShapeSpec(channels=8, stride=s) for k, s in STRIDES.items()}
    return FPNSegHead(
        shapes, num_classes=K, conv_dims=16, common_stride=4, norm="", loss_weight=0.5
    )


def _features(b=2, size=64):
    torch.manual_seed(1)
    return {k: torch.randn(b, 8, size // s, size // s) for k, s in STRIDES.items()}


def test_layers_expose_summed_feature_and_same_logits_as_d2():
    head = _head().eval()
    feats = _features()
    out = head.layers(feats)
    assert isinstance(out, SegHeadOutputs) and out.aux_logits is None
    assert out.feature.shape == (2, 16, 16, 16) and head.feature_channels == 16
    expected_feature = sum(h(feats[k]) for k, h in zip(head.in_features, head.scale_heads))
    torch.testing.assert_close(out.feature, expected_feature)
    # Detectron2's own layers() on the same module gives the logits only.
    torch.testing.assert_close(out.logits, SemSegFPNHead.layers(head, feats))
    assert (head.num_classes, head.ignore_value, head.common_stride) == (K, 255, 4)


def test_losses_and_inference_match_d2():
    head = _head().train()
    feats = _features()
    torch.manual_seed(2)
    targets = torch.randint(0, K, (2, 64, 64))
    targets[:, :4] = 255
    out = head.layers(feats)
    losses = head.losses(out, targets)
    assert set(losses) == {"loss_sem_seg"}
    torch.testing.assert_close(losses, SemSegFPNHead.losses(head, out.logits, targets))
    assert head(feats, targets)[0] is None

    head.eval()
    logits, empty = head(feats)
    expected = F.interpolate(out.logits, scale_factor=4, mode="bilinear", align_corners=False)
    assert empty == {}
    torch.testing.assert_close(logits, expected)

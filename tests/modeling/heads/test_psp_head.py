import pytest
import torch
import torch.nn.functional as F

from detectron2.layers import ShapeSpec

from apd.modeling.heads import PSPHead, SegHeadOutputs

K = 5


def _shapes():
    return {"res4": ShapeSpec(channels=8, stride=8), "res5": ShapeSpec(channels=16, stride=8)}


def _features(b=2, h=5, w=6):
    torch.manual_seed(0)
    return {"res4": torch.randn(b, 8, h, w), "res5": torch.randn(b, 16, h, w)}


def _head(**kw):
    torch.manual_seed(1)
    kw.setdefault("aux_in_feature", "res4")
    return PSPHead(_shapes(), num_classes=K, channels=12, aux_channels=6, **kw)


def _targets(b=2, h=40, w=48):
    torch.manual_seed(2)
    t = torch.randint(0, K, (b, h, w))
    t[:, :3] = 255  # some ignored rows
    return t


def test_layers_shapes_and_attributes():
    head = _head().train()
    out = head.layers(_features())
    assert isinstance(out, SegHeadOutputs)
    assert out.feature.shape == (2, 12, 5, 6)
    assert out.logits.shape == (2, K, 5, 6)
    assert out.aux_logits.shape == (2, K, 5, 6)
    assert head.feature_channels == out.feature.shape[1] == 12
    assert (head.num_classes, head.ignore_value, head.common_stride) == (K, 255, 8)
    # Pyramid pooling: 16 input channels + 4 bins × 16/4 = 32 channels enter the merge conv.
    assert head.ppm(_features()["res5"]).shape == (2, 32, 5, 6)
    # Aux head is skipped in eval (nobody reads it there), as is the aux head of the APD repo.
    head.eval()
    assert head.layers(_features()).aux_logits is None


def test_logits_are_classifier_of_feature():
    head = _head().eval()
    out = head.layers(_features())
    torch.testing.assert_close(out.logits, head.classifier(out.feature))


def test_losses_are_weighted_cross_entropies_of_upsampled_logits():
    head = _head(loss_weight=0.5, aux_weight=0.4).train()
    out = head.layers(_features())
    targets = _targets()
    losses = head.losses(out, targets)
    assert set(losses) == {"loss_sem_seg", "loss_aux"}
    up = F.interpolate(out.logits, size=(40, 48), mode="bilinear", align_corners=False)
    up_aux = F.interpolate(out.aux_logits, size=(40, 48), mode="bilinear", align_corners=False)
    ce, ce_aux = (F.cross_entropy(x, targets, ignore_index=255) for x in (up, up_aux))
    torch.testing.assert_close(losses["loss_sem_seg"], 0.5 * ce)
    torch.testing.assert_close(losses["loss_aux"], 0.4 * ce_aux)


def test_losses_use_align_corners_argument():
    head = _head(align_corners=True).train()
    out = head.layers(_features())
    targets = _targets(h=33, w=41)  # (5−1)·8+1, (6−1)·8+1
    up = F.interpolate(out.logits, size=(33, 41), mode="bilinear", align_corners=True)
    torch.testing.assert_close(
        head.losses(out, targets)["loss_sem_seg"], F.cross_entropy(up, targets, ignore_index=255)
    )


def test_forward_training_returns_none_and_losses_reaching_all_parameters():
    head = _head().train()
    results, losses = head(_features(), _targets())
    assert results is None and set(losses) == {"loss_sem_seg", "loss_aux"}
    sum(losses.values()).backward()
    missing = [n for n, p in head.named_parameters() if p.grad is None]
    assert missing == []


def test_forward_inference_upsamples_to_covered_input_size():
    feats = _features()
    head = _head().eval()
    logits, losses = head(feats)
    assert losses == {}
    # align_corners=False: h·8 × w·8 = 40×48, as Detectron2's heads.
    low = head.layers(feats).logits
    expected = F.interpolate(low, size=(40, 48), mode="bilinear", align_corners=False)
    torch.testing.assert_close(logits, expected)
    head = _head(align_corners=True).eval()
    # align_corners=True: (h−1)·8+1 = 33, (w−1)·8+1 = 41 (e.g. 90 → 713 for the official crop).
    assert head(feats)[0].shape == (2, K, 33, 41)


def test_all_ignored_targets_give_zero_loss_not_nan():
    head = _head().train()
    losses = head.losses(head.layers(_features()), torch.full((2, 40, 48), 255))
    for v in losses.values():
        torch.testing.assert_close(v, torch.tensor(0.0))


def test_missing_feature_is_named():
    with pytest.raises(KeyError, match="res3"):
        PSPHead(_shapes(), num_classes=K, in_feature="res3")


def test_no_aux_head_gives_no_aux_loss():
    head = _head(aux_in_feature=None).train()
    out = head.layers(_features())
    assert out.aux_logits is None and head.aux_head is None
    assert set(head.losses(out, _targets())) == {"loss_sem_seg"}


def test_defaults_of_the_official_head():
    head = PSPHead(_shapes(), num_classes=K, channels=12, aux_in_feature="res4", align_corners=True)
    assert (head.feature_channels, head.num_classes, head.aux_in_feature) == (12, K, "res4")
    assert head.align_corners and head.aux_weight == 0.4
    assert [stage[0].output_size for stage in head.ppm.stages] == [1, 2, 3, 6]

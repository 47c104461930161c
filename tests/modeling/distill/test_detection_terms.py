"""Detection distillation terms on synthetic FPN features / ROI vectors (no detector needed)."""
import pytest
import torch

from apd.modeling.distill.detection_inputs import DetectionOutputs, DetectionTargets
from apd.modeling.distill.protocol import CLASS_MAPS, FPN_FEATURES
from apd.modeling.distill.fpn_terms import FPNAPDHead, FPNImitationHead, masked_feature_mimic_loss
from apd.modeling.losses import apd_loss_terms

K = 3
LEVELS = ("p2", "p3")


def features(seed, channels=4, b=2):
    g = torch.Generator().manual_seed(seed)
    return {"p2": torch.randn(b, channels, 8, 8, generator=g), "p3": torch.randn(b, channels, 4, 4, generator=g)}


def class_maps():
    maps = torch.full((2, 32, 32), K)
    maps[0, 0:16, 0:16] = 1
    maps[1, 8:24, 8:24] = 2
    maps[:, 28:] = -1  # padding
    return maps


def test_fpn_apd_is_the_level_mean_of_apd_loss_terms_with_background_class():
    torch.manual_seed(0)
    head = FPNAPDHead(student_channels=4, teacher_channels=6, num_classes=K, levels=LEVELS, hidden_dim=8, embed_dim=5)
    s, t = features(1), features(2, channels=6)
    targets = DetectionTargets(num_classes=K, class_maps=class_maps())
    out = head(DetectionOutputs(s), DetectionOutputs(t), targets)
    from apd.modeling.losses.prototypes import downsample_labels

    expected = {}
    for level in LEVELS:
        labels = downsample_labels(targets.class_maps, s[level].shape[-2:])
        terms = apd_loss_terms(head.student_adapter(s[level]), head.teacher_adapter(t[level]), labels, K + 1,
                               tau=10.0, scope="image", ignore_value=-1)
        for key, value in terms.items():
            expected[key] = expected.get(key, 0) + value / len(LEVELS)
    assert set(out) == set(head.loss_keys)
    for key in out:
        torch.testing.assert_close(out[key], expected[key])
        assert out[key] > 0


def test_fpn_apd_is_zero_for_identical_features_and_adapters():
    head = FPNAPDHead(student_channels=4, teacher_channels=4, num_classes=K, levels=LEVELS, hidden_dim=8, embed_dim=5)
    head.teacher_adapter.load_state_dict(head.student_adapter.state_dict())
    s = features(1)
    out = head(DetectionOutputs(s), DetectionOutputs(s), DetectionTargets(num_classes=K, class_maps=class_maps()))
    torch.testing.assert_close(out["loss_apd"], torch.zeros(()), atol=1e-6, rtol=0)
    torch.testing.assert_close(out["loss_pa"], torch.zeros(()), atol=1e-6, rtol=0)


def test_fpn_imitation_full_and_ground_truth_only():
    head = FPNImitationHead(student_channels=4, teacher_channels=6, levels=LEVELS)
    s, t = features(1), features(2, channels=6)
    full = head(DetectionOutputs(s), DetectionOutputs(t), DetectionTargets(num_classes=K))["loss_fpn_mimic"]
    expected = sum(torch.mean((head.adapter(s[l]) - t[l]) ** 2) for l in LEVELS) / 2
    torch.testing.assert_close(full, expected)
    assert head.inputs == {FPN_FEATURES}
    head.gt_only = True
    assert head.inputs == {FPN_FEATURES, CLASS_MAPS}
    maps = class_maps()
    gt = head(DetectionOutputs(s), DetectionOutputs(t), DetectionTargets(num_classes=K, class_maps=maps))
    # Teacher equal to the adapted student on object pixels: gt-only loss 0, full loss not.
    t_equal = {l: head.adapter(s[l]).detach().clone() for l in LEVELS}
    for l in LEVELS:
        t_equal[l][..., 0, 0] += 5.0  # (0, 0) is an object pixel of image 0 only ...
    on_object = head(DetectionOutputs(s), DetectionOutputs({l: v.clone() for l, v in t_equal.items()}),
                DetectionTargets(num_classes=K, class_maps=maps))["loss_fpn_mimic"]
    assert on_object > 0 and gt["loss_fpn_mimic"] > 0
    for l in LEVELS:
        t_equal[l][..., 0, 0] -= 5.0
        t_equal[l][1, :, -1, -1] += 5.0  # ... (−1, −1) is padding / background: not counted
    none = head(DetectionOutputs(s), DetectionOutputs(t_equal), DetectionTargets(num_classes=K, class_maps=maps))
    torch.testing.assert_close(none["loss_fpn_mimic"], torch.zeros(()), atol=1e-10, rtol=0)


def test_masked_feature_mimic_loss_empty_mask_is_a_zero_in_the_graph():
    a = torch.randn(1, 2, 3, 3, requires_grad=True)
    loss = masked_feature_mimic_loss(a, torch.randn(1, 2, 3, 3), torch.zeros(1, 3, 3, dtype=torch.bool))
    loss.backward()
    assert loss == 0 and a.grad is not None and not a.grad.any()
    with pytest.raises(ValueError, match="do not match"):
        masked_feature_mimic_loss(a, torch.randn(1, 2, 3, 3), torch.zeros(3, 3, dtype=torch.bool))


def test_levels_must_be_distinct_and_non_empty():
    with pytest.raises(ValueError, match="levels"):
        FPNAPDHead(student_channels=4, teacher_channels=4, num_classes=K, levels=())
    with pytest.raises(ValueError, match="levels"):
        FPNImitationHead(student_channels=4, teacher_channels=4, levels=("p2", "p2"))

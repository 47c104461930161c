"""PKD terms on synthetic maps: the segmentation term on the classifier feature, the FPN term on every level."""
import pytest
import torch

from apd.modeling.distill.detection_inputs import DetectionOutputs, DetectionTargets
from apd.modeling.distill.pkd_terms import FPNPKDHead, PKDHead
from apd.modeling.distill.protocol import FPN_FEATURES, HEAD_OUTPUTS, TermCompatibilityError
from apd.modeling.heads.outputs import SegHeadOutputs
from apd.modeling.losses.pkd import pkd_loss

LEVELS = ("p2", "p3")


def _randn(seed, *shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def seg_outputs(seed, channels=4, size=(6, 8)):
    return SegHeadOutputs(feature=_randn(seed, 2, channels, *size), logits=_randn(seed + 100, 2, 3, *size))


def fpn(seed, channels=4):
    return {"p2": _randn(seed, 2, channels, 8, 8), "p3": _randn(seed + 1, 2, channels, 4, 4)}


def test_segmentation_term_is_pkd_loss_of_the_classifier_features_without_an_adapter_for_equal_widths():
    head = PKDHead(student_channels=4, teacher_channels=4)
    assert head.adapter is None and not list(head.parameters())  # PKD's own setting: nothing to train
    s, t = seg_outputs(0), seg_outputs(1)
    out = head(s, t, torch.zeros(2, 48, 64, dtype=torch.long))
    assert set(out) == set(head.loss_keys) == {"loss_pkd"}
    torch.testing.assert_close(out["loss_pkd"], pkd_loss(s.feature, t.feature))
    assert out["loss_pkd"] > 0.5  # independent random maps: ρ ≈ 0
    # The same feature on both sides, up to a per-channel scale and shift of the student's: 0.
    scaled = SegHeadOutputs(feature=3.0 * t.feature + 1.0, logits=t.logits)
    assert head(scaled, t, None)["loss_pkd"].item() == pytest.approx(0.0, abs=1e-5)


def test_segmentation_term_adapts_other_widths_resizes_the_teacher_and_keeps_it_without_gradient():
    head = PKDHead(student_channels=4, teacher_channels=6, scope="batch")
    assert head.adapter.weight.shape == (6, 4, 1, 1) and head.adapter.bias is None
    s = seg_outputs(2)
    s.feature.requires_grad_(True)
    t = seg_outputs(3, channels=6, size=(3, 4))
    t.feature.requires_grad_(True)
    loss = head(s, t, None)["loss_pkd"]
    from apd.modeling.distill.terms import resize_to

    expected = pkd_loss(head.adapter(s.feature), resize_to(t.feature, (6, 8)), scope="batch")
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert s.feature.grad.abs().sum() > 0 and head.adapter.weight.grad.abs().sum() > 0
    assert t.feature.grad is None


def test_fpn_term_is_the_level_mean_and_reaches_every_student_level_but_not_the_teacher():
    head = FPNPKDHead(student_channels=4, teacher_channels=4, levels=LEVELS)
    assert head.adapter is None and head.inputs == {FPN_FEATURES}  # no class maps, no ROIs
    s, t = fpn(0), fpn(10)
    for x in (*s.values(), *t.values()):
        x.requires_grad_(True)
    out = head(DetectionOutputs(s), DetectionOutputs(t), DetectionTargets(num_classes=3))
    expected = (pkd_loss(s["p2"], t["p2"]) + pkd_loss(s["p3"], t["p3"])) / 2
    torch.testing.assert_close(out["loss_pkd"], expected)
    out["loss_pkd"].backward()
    assert all(s[level].grad.abs().sum() > 0 for level in LEVELS)
    assert all(t[level].grad is None for level in LEVELS)
    # A level the term does not read is untouched; a teacher equal to the student up to a per-channel
    # affine map gives 0 on every level.
    affine = {k: 2.0 * v.detach() - 0.5 for k, v in s.items()}
    zero = head(DetectionOutputs(s), DetectionOutputs(affine), DetectionTargets(num_classes=3))["loss_pkd"]
    assert zero.item() == pytest.approx(0.0, abs=1e-5)


def test_fpn_term_shares_one_adapter_across_levels_and_resizes_a_padded_teacher_grid():
    head = FPNPKDHead(student_channels=4, teacher_channels=8, levels=LEVELS)
    assert head.adapter.weight.shape == (8, 4, 1, 1)
    s = fpn(0)
    t = {"p2": _randn(5, 2, 8, 10, 10), "p3": _randn(6, 2, 8, 5, 5)}  # other padding: other grid
    out = head(DetectionOutputs(s), DetectionOutputs(t), DetectionTargets(num_classes=3))["loss_pkd"]
    from apd.modeling.distill.terms import resize_to

    expected = sum(pkd_loss(head.adapter(s[k]), resize_to(t[k], s[k].shape[-2:])) for k in LEVELS) / 2
    torch.testing.assert_close(out, expected)


def test_terms_declare_their_inputs_and_widths_and_bad_arguments_are_errors_naming_them():
    seg = PKDHead(student_channels=4, teacher_channels=6)
    assert seg.loss_keys == ("loss_pkd",) and seg.inputs == {HEAD_OUTPUTS} and not seg.second_optimizer_keys
    assert [(e.model, e.feature, e.key, e.channels) for e in seg.expected_features()] == [
        ("student", "feature", "student_channels", 4), ("teacher", "feature", "teacher_channels", 6)]
    fpn = FPNPKDHead(student_channels=4, teacher_channels=6, levels=LEVELS)
    assert {(e.model, e.feature, e.channels) for e in fpn.expected_features()} == {
        ("student", "p2", 4), ("teacher", "p2", 6), ("student", "p3", 4), ("teacher", "p3", 6)}
    assert not fpn.second_optimizer_parameters()  # the adapter trains with the student
    with pytest.raises(ValueError, match="teacher_channels must be a positive number of channels, got 0"):
        PKDHead(student_channels=4, teacher_channels=0)
    with pytest.raises(ValueError, match="scope must be one of"):
        FPNPKDHead(student_channels=4, teacher_channels=4, scope="level")
    with pytest.raises(ValueError, match="levels must be a non-empty list"):
        FPNPKDHead(student_channels=4, teacher_channels=4, levels=[])


# ------------------------------------------------------------------------------ inside the distillers
def test_segmentation_distiller_trains_the_student_and_adapter_with_weighted_pkd(tmp_path):
    from apd.modeling.meta_arch.semantic_seg_distiller import SemanticSegDistiller
    from helpers import toy_batch, toy_segmentor

    teacher_file = tmp_path / "teacher.pth"
    torch.save({"model": toy_segmentor(channels=12, seed=1).state_dict()}, teacher_file)
    def build(teacher_channels):
        torch.manual_seed(0)
        return SemanticSegDistiller(
            student=toy_segmentor(channels=8, seed=0), teacher=toy_segmentor(channels=12),
            teacher_weights=str(teacher_file),
            distill_heads={"pkd": PKDHead(student_channels=8, teacher_channels=teacher_channels)},
            loss_weights={"loss_pkd": 6.0})

    with pytest.raises(TermCompatibilityError, match=r"distill_heads\['pkd'\] \(PKDHead\): teacher_channels=10 "
                       r"expects the teacher's 'feature' as B×10×h×w, but the built teacher's is B×12×h×w"):
        build(10)
    model = build(12).train()
    losses = model(toy_batch())
    assert set(losses) == {"loss_sem_seg", "loss_pkd"}
    assert 0.0 < losses["loss_pkd"].item() <= 6.0 * 2
    losses["loss_pkd"].backward()
    assert model.distill_heads["pkd"].adapter.weight.grad.abs().sum() > 0
    assert model.student.backbone.conv1.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher.parameters())


def _tiny_rcnn(fpn_channels, seed):
    from detectron2 import model_zoo
    from detectron2.config import get_cfg
    from detectron2.modeling import GeneralizedRCNN

    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file("Base-RCNN-FPN.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.RESNETS.DEPTH, cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 18, 64
    cfg.MODEL.FPN.OUT_CHANNELS = fpn_channels
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 16
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 16
    torch.manual_seed(seed)
    return GeneralizedRCNN(cfg)


def test_rcnn_distiller_checks_the_widths_at_build_and_distils_every_level(tmp_path):
    from detectron2.structures import Boxes, Instances
    from detectron2.utils.events import EventStorage

    from apd.modeling.meta_arch.rcnn_distiller import RCNNDistiller

    teacher_file = tmp_path / "teacher.pth"
    torch.save(_tiny_rcnn(16, seed=1).state_dict(), teacher_file)

    def build(student_channels):
        return RCNNDistiller(student=_tiny_rcnn(8, seed=0), teacher=_tiny_rcnn(16, seed=2),
                             teacher_weights=str(teacher_file),
                             distill_heads={"pkd": FPNPKDHead(student_channels=student_channels, teacher_channels=16)},
                             loss_weights={"loss_pkd": 24.0})

    with pytest.raises(TermCompatibilityError, match=r"distill_heads\['pkd'\] \(FPNPKDHead\): student_channels=16 "
                       r"expects the student's 'p2' as B×16×h×w, but the built student's is B×8×h×w"):
        build(16)
    model = build(8).train()
    instances = Instances((64, 64), gt_boxes=Boxes(torch.tensor([[4.0, 6.0, 40.0, 44.0]])),
                          gt_classes=torch.tensor([1]))
    image = torch.randint(0, 256, (3, 64, 64), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    with EventStorage():
        losses = model([{"image": image, "instances": instances, "height": 64, "width": 64}])
    assert {"loss_rpn_cls", "loss_cls", "loss_pkd"} <= set(losses)
    assert 0.0 < losses["loss_pkd"].item() <= 24.0 * 2
    fpn_output_convs = [model.student.backbone.fpn_output2, model.student.backbone.fpn_output5]
    grads = torch.autograd.grad(losses["loss_pkd"], [c.weight for c in fpn_output_convs])
    assert all(g.abs().sum() > 0 for g in grads)  # p2 and p5 both reach the student

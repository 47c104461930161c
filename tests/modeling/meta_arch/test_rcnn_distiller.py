"""RCNNDistiller: dense FPN APD, FPN imitation, ROI APD and ROI KD on tiny Detectron2 R-CNNs (R18-FPN, 64×64)."""
import copy

import pytest
import torch

from detectron2 import model_zoo
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.modeling import GeneralizedRCNN
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.utils.events import EventStorage

from apd.modeling.distill.fpn_terms import FPNAPDHead, FPNImitationHead
from apd.modeling.distill.roi_terms import ROIAPDHead, ROILogitKDHead
from apd.modeling.meta_arch.distiller import Distiller
from apd.modeling.distill.protocol import CLASS_MAPS, ROIS, TermCompatibilityError
from apd.modeling.meta_arch.rcnn_distiller import RCNNDistiller
from apd.modeling.meta_arch.teacher import TeacherWeightsError

NUM_CLASSES = 3
FPN = 16
D2_BOX_KEYS = {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg"}
FPN_APD_KEYS = {"loss_apd", "loss_pa", "loss_adapt"}
ROI_APD_KEYS = {"loss_roi_apd", "loss_roi_pa", "loss_roi_adapt"}


@pytest.fixture(autouse=True)
def _few_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_rcnn(seed=0, fc_dim=32, mask_on=False, input_format="BGR", pixel_mean=(103.5, 116.3, 123.7), fpn=FPN):
    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file("Base-RCNN-FPN.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64  # required by Detectron2 for R18
    cfg.MODEL.FPN.OUT_CHANNELS = fpn
    cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN = cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = 64
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 32
    cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = NUM_CLASSES
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.ROI_HEADS.POSITIVE_FRACTION = 0.5  # both classes of image 0 get foreground ROIs
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0  # random weights: keep some detections to compare
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = fc_dim
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 8
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 1
    cfg.MODEL.MASK_ON = mask_on
    cfg.INPUT.FORMAT = input_format
    cfg.MODEL.PIXEL_MEAN = list(pixel_mean)
    torch.manual_seed(seed)
    return GeneralizedRCNN(cfg)


def make_inputs(with_instances=True, mask=False):
    g = torch.Generator().manual_seed(1)
    inputs = []
    annotations = (([[4.0, 6.0, 40.0, 44.0], [20.0, 10.0, 60.0, 50.0]], [0, 2]), ([[8.0, 8.0, 30.0, 56.0]], [1]))
    for boxes, classes in annotations:
        image = torch.randint(0, 256, (3, 64, 64), generator=g, dtype=torch.uint8)
        instances = Instances((64, 64))
        if not with_instances:
            boxes, classes = torch.zeros(0, 4), []
        instances.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        instances.gt_classes = torch.tensor(classes, dtype=torch.long)
        if mask:
            masks = torch.zeros(len(classes), 64, 64, dtype=torch.bool)
            for m, (x0, y0, x1, y1) in zip(masks, instances.gt_boxes.tensor.long().tolist()):
                m[y0:y1, x0:x1] = True
            instances.gt_masks = BitMasks(masks)
        inputs.append({"image": image, "instances": instances, "height": 64, "width": 64})
    return inputs


def _fc(model):
    return model.roi_heads.box_predictor.cls_score.in_features


def _fpn(model):
    return model.backbone.output_shape()["p2"].channels


def heads(student, teacher, names=("fpn_apd", "roi_apd", "kd"), seed=0, **roi_kw):
    torch.manual_seed(seed)
    out = {}
    if "fpn_apd" in names:
        out["fpn_apd"] = FPNAPDHead(student_channels=_fpn(student), teacher_channels=_fpn(teacher),
                                    num_classes=NUM_CLASSES, hidden_dim=16, embed_dim=8)
    if "fpn_mimic" in names:
        out["fpn_mimic"] = FPNImitationHead(student_channels=_fpn(student), teacher_channels=_fpn(teacher))
    if "roi_apd" in names:
        out["roi_apd"] = ROIAPDHead(student_channels=_fc(student), teacher_channels=_fc(teacher),
                                    num_classes=NUM_CLASSES, hidden_dim=16, embed_dim=8, **roi_kw)
    if "kd" in names:
        out["kd"] = ROILogitKDHead(temperature=1.0)
    return out


def save_weights(model, tmp_path, name="teacher.pth"):
    path = str(tmp_path / name)
    torch.save(model.state_dict(), path)
    return path


def build(tmp_path, student=None, teacher=None, names=("fpn_apd", "roi_apd", "kd"), **kwargs):
    student = student if student is not None else tiny_rcnn(seed=0)
    teacher = teacher if teacher is not None else tiny_rcnn(seed=1)
    if "teacher_weights" not in kwargs:
        kwargs["teacher_weights"] = save_weights(teacher, tmp_path)
    if "distill_heads" not in kwargs:
        kwargs["distill_heads"] = heads(student, teacher, names)
    return RCNNDistiller(student=student, teacher=teacher, **kwargs)


def train_step(model, inputs, seed=0):
    model.train()
    torch.manual_seed(seed)  # proposal sampling is random
    with EventStorage():
        return model(inputs)


def test_identical_teacher_and_student_give_zero_apd_pa_and_kd(tmp_path):
    student = tiny_rcnn(seed=0)
    teacher = tiny_rcnn(seed=5)
    weights = save_weights(student, tmp_path, "student.pth")  # the teacher gets exactly the student's weights
    model = build(tmp_path, student=student, teacher=teacher, teacher_weights=weights)
    for name in ("fpn_apd", "roi_apd"):
        head = model.distill_heads[name]
        head.teacher_adapter.load_state_dict(head.student_adapter.state_dict())
    losses = train_step(model, make_inputs())
    # Same features, same adapters → same similarities and prototypes: KL = 0, 1 − cos = 0 (docs/METHOD.md §8).
    for key in ("loss_apd", "loss_pa", "loss_roi_apd", "loss_roi_pa", "loss_kd"):
        torch.testing.assert_close(losses[key], torch.zeros(()), atol=1e-6, rtol=0)
    assert losses["loss_adapt"] > 0 and losses["loss_roi_adapt"] > 0


def test_loss_keys_are_detectron2_keys_plus_the_terms_keys(tmp_path):
    losses = train_step(build(tmp_path), make_inputs())
    assert set(losses) == D2_BOX_KEYS | FPN_APD_KEYS | ROI_APD_KEYS | {"loss_kd"}
    assert all(torch.isfinite(v) for v in losses.values())
    dense = build(tmp_path, names=("fpn_apd", "fpn_mimic"))
    assert not dense.uses(ROIS) and dense.uses(CLASS_MAPS)
    assert set(train_step(dense, make_inputs())) == D2_BOX_KEYS | FPN_APD_KEYS | {"loss_fpn_mimic"}
    assert build(tmp_path, names=("kd",)).uses(ROIS)


@pytest.mark.parametrize("names", [("fpn_apd",), ("roi_apd", "kd")])
def test_detectron2_losses_pass_through_unchanged(tmp_path, names):
    student = tiny_rcnn(seed=0)
    bare = copy.deepcopy(student)
    model = build(tmp_path, student=student, names=names)
    losses = train_step(model, make_inputs())
    expected = train_step(bare, make_inputs())  # same seed → same RPN / ROI sampling
    for key in D2_BOX_KEYS:
        torch.testing.assert_close(losses[key], expected[key], rtol=0, atol=0)


def test_teacher_is_frozen_and_gets_no_gradient(tmp_path):
    model = build(tmp_path, names=("fpn_apd", "roi_apd", "kd", "fpn_mimic"))
    losses = train_step(model, make_inputs())
    assert isinstance(model, Distiller)
    assert not model.teacher.training and model.training
    student_params = [p for n, p in model.named_parameters() if p.requires_grad and "teacher_adapter" not in n]
    for key in ("loss_adapt", "loss_roi_adapt"):  # reach only the teacher adapters
        grads = torch.autograd.grad(losses[key], student_params, retain_graph=True, allow_unused=True)
        assert all(g is None or not g.any() for g in grads)
    sum(losses.values()).backward()
    assert all(not p.requires_grad and p.grad is None for p in model.teacher.parameters())
    for name in ("fpn_apd", "roi_apd"):
        assert all(p.grad is not None for p in model.distill_heads[name].teacher_adapter.parameters())
        assert model.distill_heads[name].student_adapter[0].weight.grad.abs().sum() > 0
    assert model.distill_heads["fpn_mimic"].adapter.weight.grad.abs().sum() > 0
    assert model.student.backbone.bottom_up.res5[0].conv1.weight.grad.abs().sum() > 0
    assert not any(k.startswith("teacher.") for k in model.state_dict())


def test_dense_apd_reaches_the_student_fpn_through_every_level(tmp_path):
    model = build(tmp_path, names=("fpn_apd",))
    assert model.distill_heads["fpn_apd"].levels == ("p2", "p3", "p4", "p5", "p6")
    seen = {}
    model.student.backbone.register_forward_hook(lambda m, i, o: seen.update(o))
    losses = train_step(model, make_inputs())
    grads = torch.autograd.grad(losses["loss_apd"] + losses["loss_pa"], [seen[k] for k in ("p2", "p3", "p4", "p5", "p6")])
    assert all(g.abs().sum() > 0 for g in grads)


def test_teacher_and_student_pool_the_same_boxes_with_own_preprocessing(tmp_path):
    # RGB teacher with other statistics, wider FPN and box head than the BGR student.
    teacher = tiny_rcnn(seed=1, fc_dim=48, input_format="RGB", pixel_mean=(120.0, 110.0, 100.0), fpn=24)
    model = build(tmp_path, teacher=teacher)
    seen = {}
    model.student.roi_heads.box_pooler.register_forward_hook(lambda m, i, o: seen.__setitem__("student", i[1]))
    model.teacher.roi_heads.box_pooler.register_forward_hook(lambda m, i, o: seen.__setitem__("teacher", i[1]))
    model.teacher.backbone.register_forward_hook(lambda m, i, o: seen.__setitem__("teacher_input", i[0]))
    inputs = make_inputs()
    train_step(model, inputs)
    assert len(seen["student"]) == len(seen["teacher"]) == 2
    for s_boxes, t_boxes in zip(seen["student"], seen["teacher"]):
        assert len(s_boxes) > 0
        torch.testing.assert_close(t_boxes.tensor, s_boxes.tensor, rtol=0, atol=0)
    # Teacher input = student image with channels reversed, normalised by the teacher's mean/std.
    expected = (inputs[0]["image"].flip(0).float() - torch.tensor([120.0, 110.0, 100.0]).view(3, 1, 1)) / 1.0
    torch.testing.assert_close(seen["teacher_input"][0, :, :64, :64], expected)


def test_eval_output_equals_bare_student_and_skips_teacher(tmp_path):
    student = tiny_rcnn(seed=0)
    bare = copy.deepcopy(student).eval()
    model = build(tmp_path, student=student).eval()
    calls = []
    model.teacher.backbone.register_forward_hook(lambda *a: calls.append(1))
    inputs = make_inputs(with_instances=False)
    with torch.no_grad():
        out, expected = model(inputs), bare(inputs)
    assert not calls
    for o, e in zip(out, expected):
        o, e = o["instances"], e["instances"]
        assert len(e) > 0
        torch.testing.assert_close(o.pred_boxes.tensor, e.pred_boxes.tensor, rtol=0, atol=0)
        torch.testing.assert_close(o.scores, e.scores, rtol=0, atol=0)
        torch.testing.assert_close(o.pred_classes, e.pred_classes)


def test_images_without_instances(tmp_path):
    model = build(tmp_path)
    losses = train_step(model, make_inputs(with_instances=False))
    for key in ROI_APD_KEYS | {"loss_apd"}:  # background is the only class: a softmax over one prototype
        torch.testing.assert_close(losses[key], torch.zeros(()))
    assert losses["loss_adapt"] > 0  # background present: CE against absent classes at logit 0
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    # Zeros stay in the graph: every adapter parameter gets a (zero) gradient, as DDP requires.
    assert all(p.grad is not None for p in model.distill_heads.parameters())


def test_background_prototype_option_of_roi_apd(tmp_path):
    # Background ROIs become class K: on images without objects the background is the one present class,
    # so loss_roi_apd = 0 but the teacher adapter's CE over the K+1 logits is > 0 (0 without the option).
    student, teacher = tiny_rcnn(seed=0), tiny_rcnn(seed=1)
    model = build(tmp_path, student=student, teacher=teacher,
                  distill_heads=heads(student, teacher, ("roi_apd",), include_background_proto=True))
    losses = train_step(model, make_inputs(with_instances=False))
    torch.testing.assert_close(losses["loss_roi_apd"], torch.zeros(()))
    assert losses["loss_roi_adapt"] > 0


def test_loss_weights_scale_terms_and_unknown_key_is_rejected_at_build(tmp_path):
    weights = {"loss_apd": 3.0, "loss_pa": 0.5, "loss_adapt": 2.0, "loss_kd": 10.0, "loss_roi_apd": 4.0}
    plain = train_step(build(tmp_path), make_inputs())
    weighted = train_step(build(tmp_path, loss_weights=weights), make_inputs())
    for key, w in weights.items():
        assert plain[key] > 0
        torch.testing.assert_close(weighted[key], w * plain[key])
    with pytest.raises(KeyError, match="loss_foo"):
        build(tmp_path, loss_weights={"loss_foo": 1.0})
    with pytest.raises(KeyError, match="loss_roi_apd"):  # KD-only model: the APD weights name no term
        build(tmp_path, names=("kd",), loss_weights={"loss_kd": 1.0, "loss_roi_apd": 1.0})


def test_warmup_scales_distillation_weights_but_not_the_adapter_losses(tmp_path):
    weights = {"loss_apd": 3.0, "loss_pa": 0.5, "loss_adapt": 2.0, "loss_kd": 10.0}
    plain = train_step(build(tmp_path, loss_weights=weights), make_inputs())
    model = build(tmp_path, loss_weights=weights, warmup_iters=4)
    model.train()
    for iteration, scale in ((0, 0.25), (1, 0.5), (3, 1.0), (100, 1.0)):
        torch.manual_seed(0)
        with EventStorage(iteration):
            losses = model(make_inputs())
        for key in ("loss_apd", "loss_pa", "loss_kd", "loss_roi_apd", "loss_roi_pa"):
            torch.testing.assert_close(losses[key], scale * plain[key])
        for key in ("loss_adapt", "loss_roi_adapt", "loss_cls", "loss_rpn_cls"):
            torch.testing.assert_close(losses[key], plain[key])


def test_construction_and_training_errors(tmp_path):
    model = build(tmp_path, teacher_weights=None)
    with pytest.raises(TeacherWeightsError, match="teacher_weights"):
        train_step(model, make_inputs())
    student, teacher = tiny_rcnn(seed=0), tiny_rcnn(seed=1)
    # A term built for other channels, levels or classes than the built models: one error at build naming
    # the term, its key and both shapes.
    wrong_fc = {"roi_apd": ROIAPDHead(student_channels=16, teacher_channels=32, num_classes=NUM_CLASSES)}
    with pytest.raises(TermCompatibilityError, match=r"distill_heads\['roi_apd'\] \(ROIAPDHead\): student_channels=16 "
                       r"expects the student's 'roi_features' as R×16, but the built student's is R×32"):
        build(tmp_path, student=student, teacher=teacher, distill_heads=wrong_fc)
    wrong_fpn = {"fpn": FPNAPDHead(student_channels=FPN, teacher_channels=8, num_classes=NUM_CLASSES)}
    with pytest.raises(TermCompatibilityError, match=r"'fpn'\] \(FPNAPDHead\): teacher_channels=8 expects the "
                       r"teacher's 'p2' as B×8×h×w, but the built teacher's is B×16×h×w"):
        build(tmp_path, student=student, teacher=teacher, distill_heads=wrong_fpn)
    wrong_classes = {"fpn": FPNAPDHead(student_channels=FPN, teacher_channels=FPN, num_classes=NUM_CLASSES + 1)}
    with pytest.raises(TermCompatibilityError, match=r"num_classes=4 expects the student's 'classes' as K=4, but the "
                       r"built student's is K=3"):
        build(tmp_path, student=student, teacher=teacher, distill_heads=wrong_classes)
    wrong_level = {"fpn": FPNImitationHead(student_channels=FPN, teacher_channels=FPN, levels=("p2", "p7"))}
    with pytest.raises(ValueError, match="'p7'"):
        build(tmp_path, student=student, teacher=teacher, distill_heads=wrong_level)
    with pytest.raises(ValueError, match="nothing to distil"):
        build(tmp_path, distill_heads={})
    with pytest.raises(ValueError, match="input_format"):
        build(tmp_path, teacher=tiny_rcnn(seed=1, input_format="YUV-BT.601"))


def test_checkpoint_keys_round_trip_through_both_checkpointers(tmp_path):
    model = build(tmp_path)
    state = model.state_dict()
    assert all(k.startswith(("student.", "distill_heads.")) for k in state)
    path = str(tmp_path / "model.pth")
    torch.save({"model": {k: v + 1 for k, v in state.items()}}, path)  # recognisable values
    from apd.checkpoint import AtomicCheckpointer

    for checkpointer in (DetectionCheckpointer, AtomicCheckpointer):  # Detectron2's and the project's reader
        fresh = build(tmp_path)
        checkpointer(fresh).load(path)
        loaded = fresh.state_dict()
        assert loaded.keys() == state.keys()
        for key in state:
            if state[key].is_floating_point():
                torch.testing.assert_close(loaded[key], state[key] + 1, msg=f"{checkpointer.__name__}: {key}")


def test_student_roi_heads_run_through_their_own_forward(tmp_path):
    """The ROI terms read the box branch of the student's ROI heads as they run: a StandardROIHeads
    subclass's own forward (here adding a loss and counting calls) is what trains, once per step."""
    from detectron2.modeling.roi_heads import StandardROIHeads

    class CountingROIHeads(StandardROIHeads):
        calls = 0

        def forward(self, images, features, proposals, targets=None):
            CountingROIHeads.calls += 1
            out, losses = super().forward(images, features, proposals, targets)
            return out, {**losses, "loss_extra": sum(f.sum() for f in features.values()) * 0.0}

    student = tiny_rcnn(seed=0)
    student.roi_heads.__class__ = CountingROIHeads
    model = build(tmp_path, student=student, names=("roi_apd", "kd"))
    losses = train_step(model, make_inputs())
    assert CountingROIHeads.calls == 1
    assert set(losses) == D2_BOX_KEYS | ROI_APD_KEYS | {"loss_kd", "loss_extra"}


def test_mask_rcnn_training_step_with_mask_class_maps(tmp_path):
    student, teacher = tiny_rcnn(seed=0, mask_on=True), tiny_rcnn(seed=1, mask_on=True)
    model = build(tmp_path, student=student, teacher=teacher)
    losses = train_step(model, make_inputs(mask=True))
    assert set(losses) == D2_BOX_KEYS | FPN_APD_KEYS | ROI_APD_KEYS | {"loss_kd", "loss_mask"}
    sum(losses.values()).backward()
    assert model.student.roi_heads.mask_head.predictor.weight.grad is not None


@pytest.mark.parametrize("names", [("roi_apd", "kd"), pytest.param(("fpn_apd", "fpn_mimic"), marks=pytest.mark.slow)])
def test_zero_weight_distiller_trains_bitwise_like_the_bare_student(tmp_path, names):
    """With every distillation weight at 0, several real trainer steps (Mask R-CNN: box + mask branches, SGD
    with momentum) leave the student's parameters exactly where training the bare student leaves them:
    the distiller adds the teacher's forward, and nothing to the student's own computation."""
    from apd.engine.distill_trainer import DistillTrainer

    student, teacher = tiny_rcnn(seed=0, mask_on=True), tiny_rcnn(seed=1, mask_on=True)
    bare = copy.deepcopy(student)
    model = build(tmp_path, student=student, teacher=teacher, names=names)
    model.loss_weights = {k: 0.0 for h in model.distill_heads.values() for k in h.loss_keys}
    batches = [make_inputs(mask=True) for _ in range(3)]

    def run(m):
        params = [p for n, p in m.named_parameters() if p.requires_grad and not n.startswith("distill_heads.")]
        trainer = DistillTrainer(m, iter(batches), torch.optim.SGD(params, lr=1e-3, momentum=0.9), None, seed=7)
        m.train()
        for step in range(len(batches)):
            with EventStorage(step) as storage:
                trainer.storage, trainer.iter = storage, step
                trainer.run_step()
        return {n.removeprefix("student."): p.detach().clone() for n, p in m.named_parameters()
                if not n.startswith(("teacher.", "distill_heads."))}

    after_bare, after_distiller = run(bare), run(model)
    assert after_bare.keys() == after_distiller.keys()
    for name, value in after_bare.items():
        assert torch.equal(value, after_distiller[name]), name
    assert any(not torch.equal(v, p) for v, p in zip(after_bare.values(), tiny_rcnn(seed=0, mask_on=True).parameters()))

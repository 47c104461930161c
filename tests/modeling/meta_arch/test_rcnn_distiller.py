"""RCNNDistiller: APD/KD on the student's sampled ROIs of tiny Detectron2 R-CNNs (R18-FPN, 64×64 images)."""
import copy

import pytest
import torch

from detectron2 import model_zoo
from detectron2.config import get_cfg
from detectron2.modeling import GeneralizedRCNN
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.utils.events import EventStorage

from apd.modeling.distill.apd_head import APDHead
from apd.modeling.meta_arch.rcnn_distiller import RCNNDistiller, rcnn_distiller_from_models
from apd.modeling.meta_arch.teacher import TeacherWeightsError

NUM_CLASSES = 3
D2_BOX_KEYS = {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg"}
DISTILL_KEYS = {"loss_apd", "loss_pa", "loss_adapt", "loss_kd"}


@pytest.fixture(autouse=True)
def _few_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_rcnn(seed=0, fc_dim=32, mask_on=False, input_format="BGR", pixel_mean=(103.5, 116.3, 123.7)):
    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file("Base-RCNN-FPN.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64  # required by Detectron2 for R18
    cfg.MODEL.FPN.OUT_CHANNELS = 16
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


def apd_head(student_channels=32, teacher_channels=32, seed=0, num_classes=NUM_CLASSES):
    torch.manual_seed(seed)
    return APDHead(
        student_channels=student_channels,
        teacher_channels=teacher_channels,
        num_classes=num_classes,
        hidden_dim=16,
        embed_dim=8,
        ignore_value=-1,
        adapter="mlp",
    )


def save_weights(model, tmp_path, name="teacher.pth"):
    path = str(tmp_path / name)
    torch.save(model.state_dict(), path)
    return path


def build(tmp_path, student=None, teacher=None, **kwargs):
    student = student if student is not None else tiny_rcnn(seed=0)
    teacher = teacher if teacher is not None else tiny_rcnn(seed=1)
    if "teacher_weights" not in kwargs:
        kwargs["teacher_weights"] = save_weights(teacher, tmp_path)
    if "apd_head" not in kwargs:
        kwargs["apd_head"] = apd_head(_fc(student), _fc(teacher))
    kwargs.setdefault("use_kd", True)
    return rcnn_distiller_from_models(student=student, teacher=teacher, **kwargs)


def _fc(model):
    return model.roi_heads.box_predictor.cls_score.in_features


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
    model.apd_head.teacher_adapter.load_state_dict(model.apd_head.student_adapter.state_dict())
    losses = train_step(model, make_inputs())
    # Same features, same adapters → same similarities and prototypes: KL = 0, 1 − cos = 0 (APD_SPEC §8.1).
    for key in ("loss_apd", "loss_pa", "loss_kd"):
        torch.testing.assert_close(losses[key], torch.zeros(()), atol=1e-6, rtol=0)
    assert losses["loss_adapt"] > 0  # CE of the teacher-side perspective logits is not zero


def test_loss_keys_are_detectron2_keys_plus_distill_terms(tmp_path):
    losses = train_step(build(tmp_path), make_inputs())
    assert set(losses) == D2_BOX_KEYS | DISTILL_KEYS
    assert all(torch.isfinite(v) for v in losses.values())

    kd_only = build(tmp_path, apd_head=None, use_kd=True)
    assert set(train_step(kd_only, make_inputs())) == D2_BOX_KEYS | {"loss_kd"}
    apd_only = build(tmp_path, use_kd=False)
    assert set(train_step(apd_only, make_inputs())) == D2_BOX_KEYS | {"loss_apd", "loss_pa", "loss_adapt"}


def test_detectron2_losses_pass_through_unchanged(tmp_path):
    student = tiny_rcnn(seed=0)
    bare = copy.deepcopy(student)
    model = build(tmp_path, student=student)
    losses = train_step(model, make_inputs())
    expected = train_step(bare, make_inputs())  # same seed → same RPN / ROI sampling
    for key in D2_BOX_KEYS:
        torch.testing.assert_close(losses[key], expected[key])


def test_teacher_is_frozen_and_gets_no_gradient(tmp_path):
    model = build(tmp_path)
    losses = train_step(model, make_inputs())
    assert not model.teacher.training and model.training
    # loss_adapt reaches only the teacher adapter.
    student_params = [p for n, p in model.named_parameters() if p.requires_grad and "teacher_adapter" not in n]
    grads = torch.autograd.grad(losses["loss_adapt"], student_params, retain_graph=True, allow_unused=True)
    assert all(g is None or not g.any() for g in grads)
    sum(losses.values()).backward()
    assert all(not p.requires_grad and p.grad is None for p in model.teacher.parameters())
    assert all(p.grad is not None for p in model.apd_head.teacher_adapter.parameters())
    assert model.apd_head.student_adapter[0].weight.grad.abs().sum() > 0
    assert model.backbone.bottom_up.res5[0].conv1.weight.grad.abs().sum() > 0
    assert not any(k.startswith("teacher.") for k in model.state_dict())


def test_teacher_and_student_pool_the_same_boxes_with_own_preprocessing(tmp_path):
    # RGB teacher with other statistics and a wider box head than the BGR student.
    teacher = tiny_rcnn(seed=1, fc_dim=48, input_format="RGB", pixel_mean=(120.0, 110.0, 100.0))
    model = build(tmp_path, teacher=teacher)
    seen = {}
    model.roi_heads.box_pooler.register_forward_hook(lambda m, i, o: seen.__setitem__("student", i[1]))
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
        torch.testing.assert_close(o.pred_boxes.tensor, e.pred_boxes.tensor)
        torch.testing.assert_close(o.scores, e.scores)
        torch.testing.assert_close(o.pred_classes, e.pred_classes)


def test_images_without_instances_give_zero_apd_and_finite_total(tmp_path):
    model = build(tmp_path)
    losses = train_step(model, make_inputs(with_instances=False))
    for key in ("loss_apd", "loss_pa", "loss_adapt"):
        torch.testing.assert_close(losses[key], torch.zeros(()))
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    # Zeros stay in the graph: every adapter parameter gets a (zero) gradient, as DDP requires.
    assert all(p.grad is not None for p in model.apd_head.parameters())


def test_background_prototype_option(tmp_path):
    # Background ROIs (label K) become class K of a (K+1)-class APD head: on images without objects
    # the background is the one present class, so loss_apd = 0 (softmax over one prototype) but the
    # teacher adapter's CE, log(1 + K·e^{−τ·cos}) summed over ROIs, is > 0 (0 without the option).
    model = build(tmp_path, apd_head=apd_head(num_classes=NUM_CLASSES + 1), include_background_proto=True)
    losses = train_step(model, make_inputs(with_instances=False))
    torch.testing.assert_close(losses["loss_apd"], torch.zeros(()))
    assert losses["loss_adapt"] > 0
    with pytest.raises(ValueError, match="apd_head.num_classes=3"):
        build(tmp_path, include_background_proto=True)


def test_loss_weights_scale_terms_and_unknown_key_is_rejected(tmp_path):
    weights = {"loss_apd": 3.0, "loss_pa": 0.5, "loss_adapt": 2.0, "loss_kd": 10.0}
    plain = train_step(build(tmp_path), make_inputs())
    weighted = train_step(build(tmp_path, loss_weights=weights), make_inputs())
    for key, w in weights.items():
        assert plain[key] > 0
        torch.testing.assert_close(weighted[key], w * plain[key])
    with pytest.raises(KeyError, match="loss_foo"):
        build(tmp_path, loss_weights={"loss_foo": 1.0})


def test_construction_and_training_errors(tmp_path):
    model = build(tmp_path, teacher_weights=None)
    with pytest.raises(TeacherWeightsError, match="teacher_weights"):
        train_step(model, make_inputs())
    with pytest.raises(ValueError, match="student_channels=16"):
        build(tmp_path, apd_head=apd_head(student_channels=16))
    with pytest.raises(ValueError, match="nothing to distil"):
        build(tmp_path, apd_head=None, use_kd=False)
    with pytest.raises(ValueError, match="input_format"):
        build(tmp_path, teacher=tiny_rcnn(seed=1, input_format="YUV-BT.601"))


def test_student_checkpoint_loads_directly(tmp_path):
    student = tiny_rcnn(seed=3)
    model = build(tmp_path)
    result = model.load_state_dict(student.state_dict(), strict=False)
    assert not result.unexpected_keys
    assert result.missing_keys and all(k.startswith("apd_head.") for k in result.missing_keys)
    torch.testing.assert_close(model.backbone.bottom_up.stem.conv1.weight, student.backbone.bottom_up.stem.conv1.weight)


def test_mask_rcnn_training_step(tmp_path):
    student, teacher = tiny_rcnn(seed=0, mask_on=True), tiny_rcnn(seed=1, mask_on=True)
    model = build(tmp_path, student=student, teacher=teacher)
    losses = train_step(model, make_inputs(mask=True))
    assert set(losses) == D2_BOX_KEYS | DISTILL_KEYS | {"loss_mask"}
    sum(losses.values()).backward()
    assert model.roi_heads.mask_head.predictor.weight.grad is not None
    assert isinstance(model, RCNNDistiller)


def test_zero_weight_distiller_trains_bitwise_like_the_bare_student(tmp_path):
    """With every distillation weight at 0, several real trainer steps (Mask R-CNN: box + mask branches, SGD
    with momentum) leave the student's parameters exactly where training the bare student leaves them:
    the distiller adds the teacher's forward, and nothing to the student's own computation."""
    from apd.engine.distill_trainer import DistillTrainer

    student, teacher = tiny_rcnn(seed=0, mask_on=True), tiny_rcnn(seed=1, mask_on=True)
    bare = copy.deepcopy(student)
    weights = dict(loss_apd=0.0, loss_pa=0.0, loss_adapt=0.0, loss_kd=0.0)
    model = build(tmp_path, student=student, teacher=teacher, loss_weights=weights)
    batches = [make_inputs(mask=True) for _ in range(3)]

    def run(m):
        params = [p for n, p in m.named_parameters() if p.requires_grad and not n.startswith("apd_head.")]
        trainer = DistillTrainer(m, iter(batches), torch.optim.SGD(params, lr=1e-3, momentum=0.9), None, seed=7)
        m.train()
        for step in range(len(batches)):
            with EventStorage(step) as storage:
                trainer.storage, trainer.iter = storage, step
                trainer.run_step()
        return {n: p.detach().clone() for n, p in m.named_parameters()
                if not n.startswith(("teacher.", "apd_head."))}

    after_bare, after_distiller = run(bare), run(model)
    assert after_bare.keys() == after_distiller.keys()
    for name, value in after_bare.items():
        assert torch.equal(value, after_distiller[name]), name
    assert any(not torch.equal(v, p) for v, p in zip(after_bare.values(), tiny_rcnn(seed=0, mask_on=True).parameters()))


def test_warmup_scales_distillation_weights_but_not_loss_adapt(tmp_path):
    weights = {"loss_apd": 3.0, "loss_pa": 0.5, "loss_adapt": 2.0, "loss_kd": 10.0}
    plain = train_step(build(tmp_path, loss_weights=weights), make_inputs())
    model = build(tmp_path, loss_weights=weights, warmup_iters=4)
    model.train()
    for iteration, scale in ((0, 0.25), (1, 0.5), (3, 1.0), (100, 1.0)):
        torch.manual_seed(0)
        with EventStorage(iteration):
            losses = model(make_inputs())
        for key in ("loss_apd", "loss_pa", "loss_kd"):
            torch.testing.assert_close(losses[key], scale * plain[key])
        torch.testing.assert_close(losses["loss_adapt"], plain["loss_adapt"])
        torch.testing.assert_close(losses["loss_cls"], plain["loss_cls"])

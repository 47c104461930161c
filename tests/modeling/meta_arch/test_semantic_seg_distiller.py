import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from apd.errors import ConfigValueError
from apd.modeling.distill.protocol import HEAD_OUTPUTS, ROIS, DistillationTerm, ExpectedFeature, TermCompatibilityError
from apd.modeling.meta_arch.semantic_seg_distiller import SemanticSegDistiller
from apd.modeling.meta_arch.teacher import TeacherWeightsError
from helpers import toy_batch, toy_segmentor


class FeatureMSE(DistillationTerm):
    """A minimal distillation term: student adapter + MSE to the teacher feature."""

    loss_keys = ("loss_mse",)
    inputs = frozenset({HEAD_OUTPUTS})

    def __init__(self, channels=8):
        super().__init__()
        self.student_adapter = nn.Conv2d(channels, channels, 1)

    def forward(self, student, teacher, targets):
        return {"loss_mse": F.mse_loss(self.student_adapter(student.feature), teacher.feature)}


def _teacher_file(tmp_path, seed=1):
    teacher = toy_segmentor(seed=seed)
    path = os.path.join(tmp_path, "teacher.pth")
    torch.save({"model": {"module." + k: v for k, v in teacher.state_dict().items()}}, path)
    return teacher, path


def _distiller(tmp_path, **kw):
    _, path = _teacher_file(tmp_path)
    kw.setdefault("distill_heads", {"mse": FeatureMSE()})
    kw.setdefault("loss_weights", {"loss_mse": 2.0})
    return SemanticSegDistiller(student=toy_segmentor(seed=0), teacher=toy_segmentor(seed=5),
                                teacher_weights=path, **kw)


def test_training_returns_weighted_named_losses_and_teacher_gets_no_grad(tmp_path):
    model = _distiller(tmp_path)
    model.train()
    losses = model(toy_batch())
    assert set(losses) == {"loss_sem_seg", "loss_mse"}
    sum(losses.values()).backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert all(not p.requires_grad for p in model.teacher.parameters())
    assert model.student.sem_seg_head.predictor.weight.grad is not None
    model.eval()
    assert not model.teacher.training


def test_forward_train_returns_named_outputs(tmp_path):
    from apd.modeling.heads.outputs import SegHeadOutputs
    from apd.modeling.meta_arch import Distiller, TrainingOutputs

    model = _distiller(tmp_path)
    assert isinstance(model, Distiller)
    model.train()
    batch = toy_batch()
    out = model.forward_train(batch)
    assert isinstance(out, TrainingOutputs) and set(out.task_losses) == {"loss_sem_seg"}
    assert isinstance(out.student, SegHeadOutputs) and isinstance(out.teacher, SegHeadOutputs)
    assert out.targets.shape == (len(batch), *out.targets.shape[1:]) and out.targets.dtype == torch.int64


def test_loss_weight_is_applied(tmp_path):
    torch.manual_seed(0)
    a = _distiller(tmp_path, loss_weights={"loss_mse": 1.0})
    b = _distiller(tmp_path, loss_weights={"loss_mse": 3.0})
    b.load_state_dict(a.state_dict())
    a.train(); b.train()
    batch = toy_batch()
    torch.manual_seed(0); la = a(batch)
    torch.manual_seed(0); lb = b(batch)
    torch.testing.assert_close(lb["loss_mse"], 3.0 * la["loss_mse"])
    torch.testing.assert_close(lb["loss_sem_seg"], la["loss_sem_seg"])


def test_teacher_loaded_strictly_with_module_prefix(tmp_path):
    teacher, path = _teacher_file(tmp_path, seed=1)
    model = SemanticSegDistiller(student=toy_segmentor(seed=0), teacher=toy_segmentor(seed=7), teacher_weights=path)
    for k, v in teacher.state_dict().items():
        torch.testing.assert_close(model.teacher.state_dict()[k], v)


def test_mismatched_teacher_weights_list_offending_keys(tmp_path):
    _, path = _teacher_file(tmp_path)
    state = torch.load(path, weights_only=True)["model"]
    state.pop("module.sem_seg_head.predictor.bias")
    state["module.extra.weight"] = torch.zeros(1)
    state["module.sem_seg_head.conv.weight"] = torch.zeros(8, 8, 1, 1)
    torch.save(state, path)
    with pytest.raises(TeacherWeightsError) as e:
        SemanticSegDistiller(student=toy_segmentor(), teacher=toy_segmentor(), teacher_weights=path)
    msg = str(e.value)
    assert "sem_seg_head.predictor.bias" in msg and "extra.weight" in msg
    assert "sem_seg_head.conv.weight (checkpoint (8, 8, 1, 1) vs model (8, 8, 3, 3))" in msg


def test_missing_teacher_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        SemanticSegDistiller(student=toy_segmentor(), teacher=toy_segmentor(),
                             teacher_weights=str(tmp_path / "nope.pth"))


def test_training_without_teacher_weights_is_refused():
    model = SemanticSegDistiller(student=toy_segmentor(), teacher=toy_segmentor(), teacher_weights=None)
    model.train()
    with pytest.raises(TeacherWeightsError, match="teacher_weights"):
        model(toy_batch())


def test_inference_equals_bare_student(tmp_path):
    model = _distiller(tmp_path).eval()
    bare = toy_segmentor(seed=0).eval()
    bare.load_state_dict(model.student.state_dict())
    batch = toy_batch()
    with torch.no_grad():
        ours, ref = model(batch), bare(batch)
    assert len(ours) == len(ref) == 2
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a["sem_seg"], b["sem_seg"])


def test_state_dict_excludes_teacher_unless_asked(tmp_path):
    model = _distiller(tmp_path)
    keys = model.state_dict().keys()
    assert not any(k.startswith("teacher.") for k in keys)
    assert any(k.startswith("student.") for k in keys)
    # loading a student-only checkpoint reports no missing teacher keys
    incompatible = model.load_state_dict(model.state_dict(), strict=False)
    assert incompatible.missing_keys == [] and incompatible.unexpected_keys == []
    with_teacher = _distiller(tmp_path, save_teacher=True)
    assert any(k.startswith("teacher.") for k in with_teacher.state_dict())


def test_teacher_stays_in_eval_mode_after_train_calls(tmp_path):
    model = _distiller(tmp_path)
    model.train()
    model.eval()
    model.train(True)
    assert model.student.training
    assert not model.teacher.training
    assert not any(m.training for m in model.teacher.modules())


def test_unknown_loss_weight_key_is_an_error_when_the_model_is_built(tmp_path):
    with pytest.raises(KeyError, match="loss_msee"):
        _distiller(tmp_path, loss_weights={"loss_msee": 1.0})


def test_terms_are_checked_against_the_protocol_when_built(tmp_path):
    class Undeclared(FeatureMSE):
        loss_keys = ()

    with pytest.raises(ConfigValueError, match=r"distill_heads\['mse'\] \(Undeclared\) declares no loss_keys"):
        _distiller(tmp_path, distill_heads={"mse": Undeclared()}, loss_weights={})

    class PlainModule(nn.Module):
        loss_keys = ("loss_mse",)

    with pytest.raises(ConfigValueError, match=r"\(PlainModule\) is not a DistillationTerm"):
        _distiller(tmp_path, distill_heads={"mse": PlainModule()})

    class ReadsROIs(FeatureMSE):
        inputs = frozenset({ROIS})

    with pytest.raises(TermCompatibilityError, match=r"reads \['rois'\], which SemanticSegDistiller does not provide"):
        _distiller(tmp_path, distill_heads={"mse": ReadsROIs()})

    class WrongChannels(FeatureMSE):
        def expected_features(self):
            return [ExpectedFeature("teacher", "feature", "teacher_channels", 16)]

    with pytest.raises(TermCompatibilityError, match=r"\(WrongChannels\): teacher_channels=16 expects the teacher's "
                       r"'feature' as B×16×h×w, but the built teacher's is B×8×h×w"):
        _distiller(tmp_path, distill_heads={"mse": WrongChannels()})

    class ReturnsOtherKeys(FeatureMSE):
        def forward(self, student, teacher, targets):
            return {"loss_msee": super().forward(student, teacher, targets)["loss_mse"]}

    model = _distiller(tmp_path, distill_heads={"mse": ReturnsOtherKeys()})
    model.train()
    with pytest.raises(KeyError, match=r"'mse' returned \['loss_msee'\] but declares loss_keys \['loss_mse'\]"):
        model(toy_batch())


def test_segmentation_terms_check_channels_and_classes_at_build(tmp_path):
    from apd.modeling.distill import APDHead, FitNetHead, IFVDHead

    with pytest.raises(TermCompatibilityError, match=r"\['apd'\] \(APDHead\): student_channels=6 expects the "
                       r"student's 'feature' as B×6×h×w, but the built student's is B×8×h×w"):
        _distiller(tmp_path, distill_heads={"apd": APDHead(student_channels=6, teacher_channels=8, num_classes=3)},
                   loss_weights={})
    with pytest.raises(TermCompatibilityError, match=r"\(IFVDHead\): num_classes=5 expects the student's 'classes' as "
                       r"K=5, but the built student's is K=3"):
        _distiller(tmp_path, distill_heads={"ifvd": IFVDHead(num_classes=5)}, loss_weights={})
    with pytest.raises(TermCompatibilityError, match=r"\(FitNetHead\): teacher_channels=4"):
        _distiller(tmp_path, distill_heads={"fit": FitNetHead(student_channels=8, teacher_channels=4)},
                   loss_weights={})


def test_two_terms_declaring_one_key_is_an_error_when_built(tmp_path):
    with pytest.raises(KeyError, match="loss_mse"):
        _distiller(tmp_path, distill_heads={"a": FeatureMSE(), "b": FeatureMSE()})


class _AdaptTerm(FeatureMSE):
    """FeatureMSE plus a key it declares for a second optimiser (as APD's loss_adapt), under a name no
    other code knows."""

    loss_keys = ("loss_mse", "loss_own_adapter")
    second_optimizer_keys = ("loss_own_adapter",)

    def forward(self, student, teacher, targets):
        out = super().forward(student, teacher, targets)
        return {**out, "loss_own_adapter": out["loss_mse"].detach() + 1.0}


@pytest.mark.parametrize("warmup_iters", [0, 10])
def test_warmup_scales_distillation_weights_by_iteration(tmp_path, warmup_iters):
    from detectron2.utils.events import EventStorage

    model = _distiller(tmp_path, distill_heads={"mse": _AdaptTerm()},
                       loss_weights={"loss_mse": 2.0, "loss_own_adapter": 3.0}, warmup_iters=warmup_iters)
    model.train()
    batch = toy_batch()
    with torch.no_grad():
        torch.manual_seed(0)  # dropout
        reference = model(batch)  # outside a trainer: no iteration, full weight
        raw = reference["loss_mse"] / 2.0
        adapt = reference["loss_own_adapter"]
        for iteration, expected in ((0, 0.1), (4, 0.5), (9, 1.0), (50, 1.0)):
            torch.manual_seed(0)
            with EventStorage(iteration):
                losses = model(batch)
            scale = expected if warmup_iters else 1.0
            # The returned (and logged) values are the weighted ones: weight × warm-up × raw term.
            torch.testing.assert_close(losses["loss_mse"], 2.0 * scale * raw)
            torch.testing.assert_close(losses["loss_own_adapter"], adapt)  # second optimiser's: never warmed up
            torch.testing.assert_close(losses["loss_sem_seg"], reference["loss_sem_seg"])


def test_negative_warmup_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="warmup_iters"):
        _distiller(tmp_path, warmup_iters=-1)


def test_class_count_mismatch_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="3 classes but the teacher predicts 5"):
        SemanticSegDistiller(student=toy_segmentor(num_classes=3), teacher=toy_segmentor(num_classes=5),
                             teacher_weights=None)


def test_bgr_teacher_sees_channel_swapped_images(tmp_path):
    teacher, path = _teacher_file(tmp_path)
    captured = {}

    class Spy(DistillationTerm):
        loss_keys = ("loss_spy",)
        inputs = frozenset({HEAD_OUTPUTS})

        def forward(self, student, teacher_out, targets):
            captured["t"] = teacher_out.logits
            return {"loss_spy": student.logits.sum() * 0.0}

    model = SemanticSegDistiller(student=toy_segmentor(), teacher=toy_segmentor(), teacher_weights=path,
                                 distill_heads={"spy": Spy()})
    model.teacher.input_format = "BGR"
    model.train()
    batch = toy_batch(batch_size=1)
    model(batch)
    ref = toy_segmentor().eval()
    ref.load_state_dict(teacher.state_dict())
    img = batch[0]["image"].flip(0)
    x = ((img - ref.pixel_mean) / ref.pixel_std)[None]
    with torch.no_grad():
        expected = ref.sem_seg_head.layers(ref.backbone(x)).logits
    torch.testing.assert_close(captured["t"], expected)


def test_teacher_for_student_inputs_swaps_channels_only_when_formats_differ(tmp_path):
    teacher, path = _teacher_file(tmp_path)
    model = SemanticSegDistiller(student=toy_segmentor(), teacher=toy_segmentor(), teacher_weights=path)
    assert model.teacher_for_student_inputs() is model.teacher
    model.teacher.input_format = "BGR"
    wrapped = model.teacher_for_student_inputs().eval()
    batch = toy_batch(batch_size=1)
    flipped = [{**batch[0], "image": batch[0]["image"].flip(0)}]
    with torch.no_grad():
        torch.testing.assert_close(wrapped(batch)[0]["sem_seg"], model.teacher(flipped)[0]["sem_seg"])
    model.teacher.input_format = "L"
    with pytest.raises(ValueError, match="only RGB<->BGR"):
        model.teacher_for_student_inputs()


def test_student_and_labels_are_padded_as_the_students_own_preprocessing(tmp_path):
    # A student backbone with Detectron2 padding constraints (a square size): its images and the labels
    # are padded to it, as SemanticSegmentor pads them; the teacher keeps its own (none) and is observed
    # on the student's grid.
    model = _distiller(tmp_path)
    backbone = model.student.backbone

    class SquareBackbone(type(backbone)):
        @property
        def padding_constraints(self):
            return {"square_size": 48}

    backbone.__class__ = SquareBackbone
    model.train()
    out = model.forward_train(toy_batch(height=32, width=40))
    assert out.targets.shape[-2:] == (48, 48)
    assert (out.targets[:, 32:, :] == 255).all() and (out.targets[:, :, 40:] == 255).all()
    assert out.student.feature.shape[-2:] == (12, 12)  # stride 4 of the padded 48×48
    assert out.teacher.feature.shape[-2:] == (12, 12)  # the teacher's 8×10 resized onto the student's grid

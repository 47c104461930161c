"""``train.init_checkpoint`` reaches the weights it names, or the load stops with one line.

Detectron2's checkpointer loads non-strictly and only logs what does not fit. A distiller config inherits
the student config's ``train.init_checkpoint`` (an ImageNet backbone converted to ``backbone.*``), whose
keys miss the distiller's ``student.`` prefix: every student run trained from random weights.
"""
import os
import pickle

import pytest
import torch
from detectron2.config import LazyConfig, instantiate

from apd.checkpoint import AtomicCheckpointer
from apd.checkpoint.io import CheckpointError
from apd.modeling.meta_arch.semantic_seg_distiller import SemanticSegDistiller
from helpers import toy_segmentor

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
APD_DEMO = os.path.join(REPO, "configs/demo/apd_pspnet_r18_demo.py")


def toy_distiller(seed=0, **kwargs):
    return SemanticSegDistiller(student=toy_segmentor(seed=seed), teacher=toy_segmentor(seed=seed + 1),
                                teacher_weights=None, distill_heads={}, **kwargs)


def randomized(state, seed):
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone()) for k, v in state.items()}


def test_student_keys_without_prefix_load_into_the_student(tmp_path):
    source = randomized(toy_segmentor(seed=0).state_dict(), seed=1)
    backbone = {k: v for k, v in source.items() if k.startswith("backbone.")}
    for name, state in (("backbone_only", backbone), ("student_only", source), ("model_zoo", backbone)):
        path = str(tmp_path / f"{name}.pth")
        torch.save({"model": state}, path)
        # model zoo: Detectron2's name matching over a distiller whose state_dict holds the teacher
        # (save_teacher=True) found every name twice ("Cannot match one checkpoint key to multiple keys")
        if name == "model_zoo":
            path = str(tmp_path / "model_final.pkl")
            with open(path, "wb") as f:
                pickle.dump({"model": {k: v.numpy() for k, v in state.items()}, "__author__": "Detectron2 Model Zoo",
                             "matching_heuristics": True}, f)
        model = toy_distiller(seed=5, save_teacher=name == "model_zoo")
        teacher_before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
        AtomicCheckpointer(model).resume_or_load(path, resume=False)
        student = model.student.state_dict()
        for k, v in state.items():
            assert torch.equal(student[k], v), (name, k)
        assert all(torch.equal(v, teacher_before[k]) for k, v in model.teacher.state_dict().items()), name


def test_checkpoint_that_fits_nothing_or_mostly_nothing_is_refused_before_loading(tmp_path):
    model = toy_distiller(seed=5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # an unconverted ImageNet layout: no key is a model key
    raw = {k[len("backbone."):]: v for k, v in toy_segmentor(seed=0).state_dict().items() if k.startswith("backbone.")}
    unconverted = str(tmp_path / "resnet_imagenet.pth")
    torch.save(raw, unconverted)
    # one fitting tensor among many that fit nothing
    mostly = dict({f"head{i}.weight": torch.zeros(3) for i in range(6)},
                  **{"student.backbone.conv1.weight": model.student.backbone.conv1.weight.detach() + 1})
    mostly_path = str(tmp_path / "mostly.pth")
    torch.save({"model": mostly}, mostly_path)
    for path, count in ((unconverted, f"{len(raw)} of its {len(raw)}"), (mostly_path, "6 of its 7")):
        with pytest.raises(CheckpointError) as err:
            AtomicCheckpointer(model).resume_or_load(path, resume=False)
        message = str(err.value)
        assert "\n" not in message and path in message and count in message, message
        assert "--prefix student." in message
    zoo = str(tmp_path / "other_zoo.pkl")  # a model-zoo file whose names match nothing
    with open(zoo, "wb") as f:
        pickle.dump({"model": {"fc1000_w": torch.zeros(2, 2).numpy()}, "__author__": "Caffe2",
                     "matching_heuristics": True}, f)
    with pytest.raises(CheckpointError, match=r"other_zoo\.pkl' does not fit SemanticSegDistiller: 1 of its 1 tensors"):
        AtomicCheckpointer(model).resume_or_load(zoo, resume=False)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # nothing was loaded


def test_distiller_checkpoint_and_plain_segmentor_init_are_unchanged(tmp_path):
    trained = toy_distiller(seed=7)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)
    AtomicCheckpointer(trained, str(tmp_path)).save("model_0000004")
    resumed = toy_distiller(seed=8)
    AtomicCheckpointer(resumed, str(tmp_path)).resume_or_load("", resume=True)
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in resumed.state_dict().items())
    plain = toy_segmentor(seed=9)
    with_teacher = toy_distiller(seed=7, save_teacher=True)
    AtomicCheckpointer(with_teacher, str(tmp_path)).save("with_teacher")
    with pytest.raises(CheckpointError, match=r"tools/export_student\.py"):  # teacher tensors beside the student's
        AtomicCheckpointer(plain).load(str(tmp_path / "with_teacher.pth"))
    # a file of student tensors only (no teacher, no terms): they load without the prefix
    assert all(k.startswith("student.") for k in torch.load(str(tmp_path / "model_0000004.pth"))["model"])
    AtomicCheckpointer(plain).load(str(tmp_path / "model_0000004.pth"))
    assert all(torch.equal(v, trained.student.state_dict()[k]) for k, v in plain.state_dict().items())
    plain = toy_segmentor(seed=9)
    backbone = {k: v for k, v in randomized(plain.state_dict(), 3).items() if k.startswith("backbone.")}
    path = str(tmp_path / "backbone.pth")
    torch.save({"model": backbone}, path)
    AtomicCheckpointer(plain).load(path)
    assert torch.equal(plain.backbone.conv1.weight, backbone["backbone.conv1.weight"])


@pytest.mark.slow
def test_converted_imagenet_backbone_initialises_the_student_of_the_apd_demo_config(tmp_path):
    """tools/convert_torchvision_backbone.py output for the student config (``backbone.*``, no prefix) as
    the ``train.init_checkpoint`` of the APD demo distiller: the student backbone equals the file."""
    import sys

    sys.path.insert(0, os.path.join(REPO, "tools"))
    import convert_torchvision_backbone as tool

    cfg = LazyConfig.load(APD_DEMO)
    cfg.model.teacher_weights = None
    student = instantiate(cfg.model.student)
    # the ImageNet deep-stem layout the converter reads: conv1..3, bn1..3, layer1..4 (+ the classifier)
    imagenet = {k[len("backbone."):]: v for k, v in randomized(student.state_dict(), 2).items()
                if k.startswith("backbone.")}
    imagenet.update({"fc.weight": torch.zeros(10, 4), "fc.bias": torch.zeros(10)})
    src, dst = str(tmp_path / "resnet18_v2.pth"), str(tmp_path / "r18_deep.pth")
    torch.save(imagenet, src)
    assert tool.main(["--arch", "resnet18", "--deep-stem", src, dst, "--config-file", APD_DEMO,
                      "--model-key", "model.student"]) == 0
    converted = torch.load(dst, weights_only=True)["model"]
    assert converted and all(k.startswith("backbone.") for k in converted)

    model = instantiate(cfg.model)
    AtomicCheckpointer(model).resume_or_load(dst, resume=False)
    student_state = model.student.state_dict()
    for k, v in converted.items():
        assert torch.equal(student_state[k], v), k


@pytest.mark.slow
def test_model_zoo_backbone_initialises_only_the_student_of_the_rcnn_distiller(tmp_path):
    """A Detectron2 model-zoo ``.pkl`` (name-matching heuristics) for the R-CNN distiller with
    ``save_teacher=True``: Detectron2 matched it against student and teacher at once and raised; here only
    the student's backbone takes it."""
    cfg = LazyConfig.load(os.path.join(REPO, "configs/COCO-Detection/apd_faster_rcnn_R101_to_R50_FPN_1x_demo.py"))
    cfg.model.teacher_weights = None
    cfg.model.save_teacher = True
    model = instantiate(cfg.model)
    teacher_before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    zoo = {k: v for k, v in randomized(model.student.state_dict(), 4).items() if k.startswith("backbone.bottom_up.")}
    path = str(tmp_path / "R-50.pkl")
    with open(path, "wb") as f:
        pickle.dump({"model": {k: v.numpy() for k, v in zoo.items()}, "__author__": "Detectron2 Model Zoo",
                     "matching_heuristics": True}, f)
    AtomicCheckpointer(model).resume_or_load(path, resume=False)
    student = model.student.state_dict()
    assert all(torch.equal(student[k], v) for k, v in zoo.items())
    assert all(torch.equal(v, teacher_before[k]) for k, v in model.teacher.state_dict().items())

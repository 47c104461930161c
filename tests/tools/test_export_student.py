"""tools/export_student.py and apd.export: student-only checkpoints, TorchScript and ONNX of the student.

The distiller checkpoints are written from instantiated demo configs with random weights (BatchNorm
statistics perturbed so that a wrongly loaded or freshly initialised student would not match).
Tolerances of exported vs in-framework logits (float32, logits of magnitude ~1):
TorchScript runs the same ATen kernels → atol = rtol = 1e-5; ONNX Runtime uses its own kernels and
summation order → atol = rtol = 1e-4 (measured max |diff| ≈ 2e-5 on the demo student).
"""
import os
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import LazyConfig, instantiate

from apd.export import (
    AdaptiveAvgPool2dAsMatmul,
    SegmentationExportModel,
    adaptive_pool_matrix,
    onnx_compatible_copy,
    student_config,
)
from helpers import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
APD_DEMO = "configs/demo/apd_pspnet_r18_demo.py"
STUDENT_DEMO = "configs/demo/pspnet_r18_demo.py"
TS_TOL = dict(atol=1e-5, rtol=1e-5)
ONNX_TOL = dict(atol=1e-4, rtol=1e-4)


def load_tool(name):
    return load_script(os.path.join(ROOT, "tools", f"{name}.py"))


@pytest.fixture(scope="module")
def export_tool():
    return load_tool("export_student")


def perturb_batchnorm(model, seed=0):
    """Move every BatchNorm's running stats and bias away from their initial values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.add_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.mul_(0.5 + torch.rand(m.running_var.shape, generator=g))
                m.bias.add_(torch.randn(m.bias.shape, generator=g) * 0.1)


def distiller_checkpoint(config, path, **overrides):
    """Instantiate a distiller config (no teacher weights), perturb the student, save a training-style
    checkpoint; returns the distiller."""
    cfg = LazyConfig.load(config)
    cfg.model.teacher_weights = None
    for key, value in overrides.items():
        setattr(cfg.model, key, value)
    model = instantiate(cfg.model)
    perturb_batchnorm(model.student if hasattr(model, "student") else model)
    torch.save({"model": model.state_dict(), "iteration": 3, "optimizer": {}}, path)
    return model.eval()


@pytest.fixture(scope="module")
def demo_distiller(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("apd_ckpt") / "model_final.pth")
    return distiller_checkpoint(APD_DEMO, path), path


# ------------------------------------------------------------------------------ pooling as matmul
def test_adaptive_pool_matrix_has_pytorch_windows():
    # L = 5 inputs, b = 3 bins: windows [floor(i·5/3), ceil((i+1)·5/3)) = [0,2), [1,4), [3,5).
    expected = torch.tensor(
        [[1 / 2, 1 / 2, 0, 0, 0], [0, 1 / 3, 1 / 3, 1 / 3, 0], [0, 0, 0, 1 / 2, 1 / 2]]
    )
    torch.testing.assert_close(adaptive_pool_matrix(5, 3), expected)


@pytest.mark.parametrize("size", [(128, 256), (7, 13), (1, 1)])
@pytest.mark.parametrize("bins", [1, 2, 3, 6, (3, None)])
def test_matmul_pool_equals_adaptive_avg_pool(size, bins):
    x = torch.randn(2, 4, *size, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(AdaptiveAvgPool2dAsMatmul(bins)(x), F.adaptive_avg_pool2d(x, bins))


def test_onnx_compatible_copy_replaces_pools_and_keeps_original(demo_distiller):
    student = demo_distiller[0].student
    copied = onnx_compatible_copy(student)
    assert not any(isinstance(m, torch.nn.AdaptiveAvgPool2d) for m in copied.modules())
    # PSPHead bins (1, 2, 3, 6): four pools replaced, the original untouched.
    assert sum(isinstance(m, AdaptiveAvgPool2dAsMatmul) for m in copied.modules()) == 4
    assert sum(isinstance(m, torch.nn.AdaptiveAvgPool2d) for m in student.modules()) == 4


# ----------------------------------------------------------------------------- student config
def test_student_config_of_each_kind_of_config():
    seg = student_config(LazyConfig.load(APD_DEMO).model)
    assert seg.prefix == "student." and seg.distiller == "SemanticSegDistiller"
    assert seg.node.backbone.depth == 18
    rcnn = student_config(LazyConfig.load("configs/COCO-Detection/apd_faster_rcnn_R101_to_R50_FPN_1x.py").model)
    assert rcnn.prefix == "student." and rcnn.distiller == "RCNNDistiller"
    assert rcnn.node.backbone.bottom_up.stages.depth == 50
    plain = student_config(LazyConfig.load(STUDENT_DEMO).model)
    assert plain.prefix == "" and plain.distiller is None


# ------------------------------------------------------------------------------- checkpoint export
def test_checkpoint_export_loads_into_plain_student_config(demo_distiller, export_tool, tmp_path):
    distiller, ckpt = demo_distiller
    out = tmp_path / "exported"
    argv = ["--config-file", APD_DEMO, "--checkpoint", ckpt, "--output-dir", str(out), "--format", "checkpoint"]
    assert export_tool.main(argv) == 0
    exported = torch.load(out / "model_student.pth", map_location="cpu", weights_only=True)
    state = exported["model"]
    assert not [k for k in state if k.startswith(("teacher.", "student.", "distill_heads."))]

    plain = instantiate(LazyConfig.load(STUDENT_DEMO).model)
    assert list(state) == list(plain.state_dict())
    plain.load_state_dict(state, strict=True)  # no missing, no unexpected key

    # Detectron2's own loader: every tensor is the trained student's.
    fresh = instantiate(LazyConfig.load(STUDENT_DEMO).model)
    DetectionCheckpointer(fresh).load(str(out / "model_student.pth"))
    trained = distiller.student.state_dict()
    for key, value in fresh.state_dict().items():
        torch.testing.assert_close(value, trained[key], rtol=0, atol=0, msg=key)


def test_missing_student_key_is_named(demo_distiller, export_tool, tmp_path, capsys):
    _, ckpt = demo_distiller
    data = torch.load(ckpt, map_location="cpu", weights_only=True)
    del data["model"]["student.sem_seg_head.classifier.weight"]
    broken = tmp_path / "broken.pth"
    torch.save(data, broken)
    argv = ["--config-file", APD_DEMO, "--checkpoint", str(broken), "--output-dir", str(tmp_path / "o"),
            "--format", "checkpoint"]
    assert export_tool.main(argv) == 2
    err = capsys.readouterr().err
    assert "missing keys (1): sem_seg_head.classifier.weight" in err and str(broken) in err
    assert not (tmp_path / "o" / "model_student.pth").exists()


def test_unknown_format_is_refused(export_tool, demo_distiller, tmp_path, capsys):
    argv = ["--config-file", APD_DEMO, "--checkpoint", demo_distiller[1], "--output-dir", str(tmp_path),
            "--format", "checkpoint,tflite"]
    assert export_tool.main(argv) == 2
    assert "tflite" in capsys.readouterr().err


# ---------------------------------------------------------------------- TorchScript and ONNX export
@pytest.mark.slow
def test_torchscript_and_onnx_match_student_on_real_size_input(demo_distiller, export_tool, tmp_path):
    import onnxruntime

    distiller, ckpt = demo_distiller
    out = tmp_path / "exported"
    argv = ["--config-file", APD_DEMO, "--checkpoint", ckpt, "--output-dir", str(out),
            "--format", "torchscript,onnx", "--height", "1024", "--width", "2048"]
    assert export_tool.main(argv) == 0

    image = torch.rand(1, 3, 1024, 2048, generator=torch.Generator().manual_seed(0)) * 255
    with torch.no_grad():
        expected = distiller.student([{"image": image[0]}])[0]["sem_seg"][None]
        assert expected.shape == (1, 19, 1024, 2048)
        traced = torch.jit.load(str(out / "student.ts"))
        torch.testing.assert_close(traced(image), expected, **TS_TOL)
        del traced
    session = onnxruntime.InferenceSession(str(out / "student.onnx"), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(["logits"], {"image": image.numpy()})[0])
    torch.testing.assert_close(got, expected, **ONNX_TOL)


def test_onnx_graph_has_dynamic_batch_and_odd_sizes(demo_distiller, tmp_path, export_tool):
    import onnxruntime

    distiller, _ = demo_distiller
    student = distiller.student
    path = str(tmp_path / "small.onnx")
    # 65×97: odd sizes, feature grid 9×13 (stride 8, ceil): bins 2, 3, 6 do not divide it.
    export_tool.export_onnx(student, torch.zeros(1, 3, 65, 97), path, opset=17)
    images = torch.rand(2, 3, 65, 97, generator=torch.Generator().manual_seed(3)) * 255
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {"image": images.numpy()})[0])
    with torch.no_grad():
        expected = torch.stack([o["sem_seg"] for o in student([{"image": x} for x in images])])
    assert got.shape == (2, 19, 65, 97)
    torch.testing.assert_close(got, expected, **ONNX_TOL)


def test_export_model_takes_images_in_input_format(demo_distiller):
    student = demo_distiller[0].student
    wrapper = SegmentationExportModel(student)
    image = torch.rand(1, 3, 33, 41, generator=torch.Generator().manual_seed(4)) * 255
    with torch.no_grad():
        expected = student.predict_logits((image - student.pixel_mean) / student.pixel_std)
        torch.testing.assert_close(wrapper(image), expected, rtol=0, atol=0)
    assert wrapper.input_format == "RGB" and not wrapper.training
    with pytest.raises(ValueError, match=r"B×3×H×W, got shape \(3, 33, 41\)"):
        wrapper(image[0])


# ------------------------------------------------------------------------------------ R-CNN student
RCNN_APD_DEMO = "configs/COCO-InstanceSegmentation/apd_mask_rcnn_R34_to_R18_FPN_demo.py"


@pytest.fixture(scope="module")
def rcnn_distiller(tmp_path_factory):
    """(distiller, its checkpoint) of the R-CNN APD demo config, built once for both layouts (read-only)."""
    path = str(tmp_path_factory.mktemp("rcnn_ckpt") / "rcnn.pth")
    return distiller_checkpoint(RCNN_APD_DEMO, path), path


def test_rcnn_distiller_exports_generalized_rcnn_checkpoint(export_tool, rcnn_distiller, tmp_path, capsys):
    """An R-CNN distiller checkpoint (keys student.*, distill_heads.*) exports to the plain student's keys."""
    config = RCNN_APD_DEMO
    distiller, source = rcnn_distiller
    ckpt = str(tmp_path / "rcnn.pth")
    shutil.copyfile(source, ckpt)
    saved = torch.load(ckpt, weights_only=True)["model"]
    assert any(k.startswith("distill_heads.apd.") for k in saved) and any(k.startswith("student.") for k in saved)
    out = tmp_path / "exported"
    assert export_tool.main(["--config-file", config, "--checkpoint", ckpt, "--output-dir", str(out),
                             "--format", "checkpoint"]) == 0
    state = torch.load(out / "model_student.pth", weights_only=True)["model"]
    plain = instantiate(LazyConfig.load("configs/COCO-InstanceSegmentation/mask_rcnn_R_18_FPN_demo.py").model)
    assert set(state) == set(plain.state_dict())
    plain.load_state_dict(state, strict=True)
    trained = distiller.student.state_dict()
    for key in ("backbone.bottom_up.stem.conv1.weight", "roi_heads.box_predictor.cls_score.weight"):
        torch.testing.assert_close(plain.state_dict()[key], trained[key], rtol=0, atol=0)

    # Traced formats are for segmentation students only: refused with the student's type named.
    assert export_tool.main(["--config-file", config, "--checkpoint", ckpt, "--output-dir", str(out),
                             "--format", "onnx"]) == 2
    assert "GeneralizedRCNN" in capsys.readouterr().err


def test_pre_release_rcnn_layout_is_refused_naming_its_keys(export_tool, rcnn_distiller, tmp_path, capsys):
    """The pre-release R-CNN layout (student keys at the top level, ROI APD adapters under apd_head.*) is not
    read: the export stops naming the keys the student does not have."""
    _, source = rcnn_distiller
    saved = torch.load(source, weights_only=True)["model"]
    former = {(k[len("student."):] if k.startswith("student.") else k.replace("distill_heads.apd.", "apd_head.")): v
              for k, v in saved.items()}
    ckpt = str(tmp_path / "former.pth")
    torch.save({"model": former}, ckpt)
    assert export_tool.main(["--config-file", RCNN_APD_DEMO, "--checkpoint", ckpt, "--output-dir",
                             str(tmp_path / "exported"), "--format", "checkpoint"]) == 2
    assert "apd_head." in capsys.readouterr().err


# --------------------------------------------------------------------- the real Cityscapes recipe
@pytest.mark.slow
def test_real_pspnet_r18_export_matches_on_cityscapes_size(export_tool, tmp_path):
    """configs/apd_pspnet_r18.py (R101 teacher, full-width R18 student) at 1024×2048 (~1 min on 2 cores)."""
    import onnxruntime

    ckpt = str(tmp_path / "apd.pth")
    distiller = distiller_checkpoint("configs/apd_pspnet_r18.py", ckpt)
    out = tmp_path / "exported"
    assert export_tool.main(["--config-file", "configs/apd_pspnet_r18.py", "--checkpoint", ckpt,
                             "--output-dir", str(out)]) == 0
    state = torch.load(out / "model_student.pth", weights_only=True)["model"]
    plain = instantiate(LazyConfig.load("configs/cityscapes/pspnet_r18.py").model)
    plain.load_state_dict(state, strict=True)

    student = distiller.student
    student.sliding_window = None  # the exported graph is the whole-image inference
    image = torch.rand(1, 3, 1024, 2048, generator=torch.Generator().manual_seed(0)) * 255
    with torch.no_grad():
        expected = student([{"image": image[0]}])[0]["sem_seg"][None]
        torch.testing.assert_close(torch.jit.load(str(out / "student.ts"))(image), expected, **TS_TOL)
    session = onnxruntime.InferenceSession(str(out / "student.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": image.numpy().astype(np.float32)})[0]
    torch.testing.assert_close(torch.from_numpy(got), expected, **ONNX_TOL)

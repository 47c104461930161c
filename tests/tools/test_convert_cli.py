"""tools/convert_*.py: end to end (one subprocess run) and the failure paths in-process (main(argv))."""
import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torchvision

from apd.modeling.backbone import DilatedResNet

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
K = 5

# A tiny Segmentor(DilatedResNet-18, PSPHead): res4 = 4·8 = 32 channels, res5 = 8·8 = 64 channels.
CONFIG = """
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec

from apd.modeling.backbone.dilated_resnet import DilatedResNet
from apd.modeling.heads.psp_head import PSPHead
from apd.modeling.meta_arch.segmentor import Segmentor

model = L(Segmentor)(
    backbone=L(DilatedResNet)(depth=18, output_stride=8, deep_stem={deep_stem}, stem_width=8, base_channels=8,
                              norm="BN", out_features=["res4", "res5"]),
    sem_seg_head=L(PSPHead)(
        input_shape={{"res4": ShapeSpec(channels=32, stride=8), "res5": ShapeSpec(channels=64, stride=8)}},
        num_classes={K}, channels=16, norm="BN", align_corners=True, aux_in_feature="res4", aux_channels=8,
    ),
    pixel_mean=[0.0, 0.0, 0.0],
    pixel_std=[1.0, 1.0, 1.0],
)
"""


def load_tool(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_config(tmp_path, deep_stem=True):
    path = tmp_path / f"tiny_pspnet_deep{int(deep_stem)}.py"
    path.write_text(textwrap.dedent(CONFIG.format(deep_stem=deep_stem, K=K)))
    return str(path)


def build(config):
    from apd.checkpoint.cli import build_model_from_config

    torch.manual_seed(0)
    return build_model_from_config(config)[0]


# Inverse of the official APD PSPNet map (our names -> official names), to write an official-format file
# from a model of the config; the converter's own correctness is tested numerically in
# tests/checkpoint/test_converters.py.
OFFICIAL_NAMES = [
    ("backbone.conv1.", "layer0.0."), ("backbone.bn1.", "layer0.1."), ("backbone.conv2.", "layer0.3."),
    ("backbone.bn2.", "layer0.4."), ("backbone.conv3.", "layer0.6."), ("backbone.bn3.", "layer0.7."),
    ("backbone.", ""), ("sem_seg_head.merge.0.norm.", "ppm.merge.1."), ("sem_seg_head.merge.0.", "ppm.merge.0."),
    ("sem_seg_head.classifier.", "cls.0."), ("sem_seg_head.aux_head.conv.norm.", "aux.1."),
    ("sem_seg_head.aux_head.conv.", "aux.0."), ("sem_seg_head.aux_head.classifier.", "aux.4."),
]


def official_name(key):
    for i in range(4):
        for ours, theirs in ((f"stages.{i}.1.norm.", f"features.{i}.2."), (f"stages.{i}.1.", f"features.{i}.1.")):
            key = key.replace(f"sem_seg_head.ppm.{ours}", f"ppm.{theirs}")
    for ours, theirs in OFFICIAL_NAMES:
        if key.startswith(ours):
            return theirs + key[len(ours):]
    return key


def test_convert_official_apd_end_to_end_and_failures(tmp_path, capsys):
    config = write_config(tmp_path)
    source_model = build(config)
    with torch.no_grad():
        for p in source_model.parameters():
            p.add_(torch.randn_like(p))
    expected = source_model.state_dict()
    src, dst = tmp_path / "official.pth", tmp_path / "converted.pth"
    torch.save({"epoch": 200, "state_dict": {"module." + official_name(k): v for k, v in expected.items()},
                "optimizer": {}}, src)

    # one real command-line run
    proc = subprocess.run(
        [sys.executable, "tools/convert_official_apd.py", str(src), str(dst), "--config-file", config],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "official_apd_pspnet (apd layout)" in proc.stdout and "sem_seg_head.ppm" in proc.stdout
    converted = torch.load(dst, weights_only=True)["model"]
    assert converted.keys() == expected.keys()
    for k, v in expected.items():
        torch.testing.assert_close(converted[k], v, msg=k)
    model = build(config)
    model.load_state_dict(converted, strict=True)

    tool = load_tool("convert_official_apd")
    # a config with another number of classes: the shape mismatch is named, nothing is written
    rc = tool.main([str(src), str(tmp_path / "bad.pth"), "--config-file", config,
                    "--opts", "model.sem_seg_head.num_classes=7"])
    err = capsys.readouterr().err
    assert rc == 1 and not (tmp_path / "bad.pth").exists()
    assert "sem_seg_head.classifier.weight (checkpoint (5, 16, 1, 1) vs model (7, 16, 1, 1))" in err
    # a key the converter does not know is listed
    torch.save({"state_dict": {**{official_name(k): v for k, v in expected.items()}, "ppm.gate.weight": torch.ones(1)}},
               tmp_path / "extra.pth")
    assert tool.main([str(tmp_path / "extra.pth"), str(tmp_path / "bad.pth"), "--config-file", config]) == 1
    assert "ppm.gate.weight" in capsys.readouterr().err
    # the checkpoint lacks the aux head (e.g. saved from an eval-mode model): missing keys are listed
    no_aux = {official_name(k): v for k, v in expected.items() if "aux_head" not in k}
    torch.save(no_aux, tmp_path / "no_aux.pth")
    assert tool.main([str(tmp_path / "no_aux.pth"), str(tmp_path / "bad.pth"), "--config-file", config]) == 1
    assert "sem_seg_head.aux_head.classifier.weight" in capsys.readouterr().err


def test_convert_torchvision_backbone(tmp_path, capsys):
    tool = load_tool("convert_torchvision_backbone")
    help_text = tool.argument_parser().format_help()
    assert "--arch" in help_text and "--deep-stem" in help_text and "mobilenet_v2" in help_text

    src = tmp_path / "resnet18.pth"
    tv_state = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(tv_state, src)
    dst = tmp_path / "r18.pth"
    assert tool.main(["--arch", "resnet18", str(src), str(dst)]) == 0
    assert "Dropped 2 source keys: fc (2)" in capsys.readouterr().out
    state = torch.load(dst, weights_only=True)["model"]
    DilatedResNet(depth=18, deep_stem=False, norm="BN").load_state_dict(
        {k[len("backbone."):]: v for k, v in state.items()}, strict=True
    )
    # a torchvision (7×7 stem) checkpoint is not a deep-stem one: converting it as such fails by name
    assert tool.main(["--arch", "resnet18", "--deep-stem", str(src), str(dst)]) == 1
    err = capsys.readouterr().err
    assert "missing keys" in err and "backbone.conv2.weight" in err
    assert "backbone.conv1.weight (checkpoint (64, 3, 7, 7) vs model (64, 3, 3, 3))" in err

    # a tiny torchvision-layout checkpoint against a (7×7-stem) Segmentor config: the head is reported
    tiny = DilatedResNet(depth=18, deep_stem=False, stem_width=8, base_channels=8, norm="BN").state_dict()
    tiny.update({"fc.weight": torch.zeros(10, 64), "fc.bias": torch.zeros(10)})
    torch.save(tiny, tmp_path / "tiny.pth")
    config = write_config(tmp_path, deep_stem=False)
    assert tool.main(["--arch", "resnet18", str(tmp_path / "tiny.pth"), str(dst), "--config-file", config]) == 0
    out = capsys.readouterr().out
    assert "expected for an ImageNet init" in out and "  sem_seg_head.classifier.weight" in out
    assert "backbone.conv1.weight" not in out.split("Not in this checkpoint")[1]
    # the same weights against the deep-stem config: shape mismatch and missing stem convs, by name
    assert tool.main(["--arch", "resnet18", str(tmp_path / "tiny.pth"), str(dst),
                      "--config-file", write_config(tmp_path, deep_stem=True)]) == 1
    err = capsys.readouterr().err
    assert "backbone.conv1.weight (checkpoint (8, 3, 7, 7) vs model (8, 3, 3, 3))" in err
    assert "backbone.bn3.weight" in err


def test_convert_cirkd_backbone_only(tmp_path, capsys):
    tool = load_tool("convert_cirkd_deeplabv3")
    config = write_config(tmp_path)
    backbone = build(config).backbone.state_dict()
    state = {"pretrained." + k: v for k, v in backbone.items()}
    state.update({"head.aspp.project.0.weight": torch.zeros(4, 20, 1, 1),
                  "head.aspp.b0.0.weight": torch.zeros(4, 64, 1, 1), "auxlayer.block.4.bias": torch.zeros(K)})
    torch.save(state, tmp_path / "cirkd.pth")
    dst = tmp_path / "cirkd_backbone.pth"
    assert tool.main([str(tmp_path / "cirkd.pth"), str(dst), "--config-file", config]) == 1
    err = capsys.readouterr().err
    assert "head.aspp.project.0.weight" in err and "--backbone-only" in err and not dst.exists()

    assert tool.main([str(tmp_path / "cirkd.pth"), str(dst), "--config-file", config, "--backbone-only"]) == 0
    out = capsys.readouterr().out
    assert "Dropped 3 source keys" in out and "  sem_seg_head.merge.0.weight" in out
    converted = torch.load(dst, weights_only=True)["model"]
    assert converted.keys() == {"backbone." + k for k in backbone}
    # --prefix student. for a distiller: a plain Segmentor config then rejects every key by name
    assert tool.main([str(tmp_path / "cirkd.pth"), str(dst), "--config-file", config, "--backbone-only",
                      "--prefix", "student."]) == 1
    assert "unexpected keys" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["convert_official_apd", "convert_cirkd_deeplabv3"])
def test_help_documents_the_options(name):
    help_text = load_tool(name).argument_parser().format_help()
    for option in ("--config-file", "--model-key", "--prefix", "--opts", "--allow-pickle", "SRC", "DST"):
        assert option in help_text


def test_build_model_from_config_picks_the_teacher_and_skips_teacher_weights(tmp_path):
    from apd.checkpoint.cli import build_model_from_config

    distiller = tmp_path / "tiny_distiller.py"
    distiller.write_text(textwrap.dedent(CONFIG.format(deep_stem=True, K=K)) + textwrap.dedent("""
        from apd.modeling.meta_arch.semantic_seg_distiller import SemanticSegDistiller

        student = model
        model = L(SemanticSegDistiller)(student=student, teacher=student, teacher_weights="/does/not/exist.pth")
        """))
    teacher, key = build_model_from_config(str(distiller))
    assert key == "model.teacher" and type(teacher).__name__ == "Segmentor"
    # the whole distiller builds without reading teacher_weights (its state_dict leaves the teacher out)
    model, key = build_model_from_config(str(distiller), "model")
    assert key == "model" and model.teacher_weights is None
    assert {k.split(".")[0] for k in model.state_dict()} == {"student"}
    with pytest.raises(KeyError, match="model.nothing"):
        build_model_from_config(str(distiller), "model.nothing")

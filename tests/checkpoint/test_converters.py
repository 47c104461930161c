"""Checkpoint converters: each source layout is built here by a reference module that mimics the original
code's module names *and* forward; after conversion the weights must load strictly into our modules and
give the same outputs (eval mode, random BatchNorm statistics so that every tensor matters)."""
import pickle
import re

import pytest
import torch
import torchvision
from torch import nn
from torch.nn import functional as F
from torchvision.models.resnet import BasicBlock as TVBasicBlock
from torchvision.models.resnet import Bottleneck as TVBottleneck

from apd.checkpoint.cli import build_model_from_config
from apd.checkpoint.converters import (
    ConversionError,
    convert_cirkd_deeplabv3,
    convert_official_apd,
    convert_official_apd_deeplabv3,
    convert_official_apd_pspnet,
    convert_torchvision_mobilenet_v2,
    convert_torchvision_resnet,
)
from apd.checkpoint.io import unwrap_state_dict
from apd.checkpoint.keys import compare_state_dicts
from apd.modeling.backbone import DilatedMobileNetV2, DilatedResNet
from apd.modeling.heads import ASPPHead, PSPHead
from apd.modeling.meta_arch.segmentor import Segmentor
from apd.modeling.meta_arch.teacher import TeacherWeightsError, load_teacher_weights

STEM, BASE, K = 8, 8, 5  # tiny widths: stem 8 -> 16 channels, layer1 planes 8


def randomize(module: nn.Module, seed: int) -> nn.Module:
    """Random weights and BN statistics/affines (so that a wrong or missing tensor changes the output)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            elif isinstance(m, nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / m.weight[0].numel()) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return module.eval()


def strip(state, prefix="backbone."):
    assert all(k.startswith(prefix) for k in state), sorted(state)[:5]
    return {k[len(prefix):]: v for k, v in state.items()}


def torchvision_trunk(model, x):
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    x3 = model.layer3(model.layer2(model.layer1(x)))
    return x3, model.layer4(x3)


# ------------------------------------------------------------------------------------------ torchvision
def test_torchvision_resnet18_equals_dilated_resnet_at_stride_32():
    tv = randomize(torchvision.models.resnet18(weights=None), seed=0)
    state = convert_torchvision_resnet(tv.state_dict()).state
    assert len(state) == len(tv.state_dict()) - 2 and all(k.startswith("backbone.") for k in state)
    ours = DilatedResNet(depth=18, output_stride=32, deep_stem=False, norm="BN").eval()
    ours.load_state_dict(strip(state), strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        res4, res5 = torchvision_trunk(tv, x)
        out = ours(x)
    torch.testing.assert_close(out["res4"], res4)
    torch.testing.assert_close(out["res5"], res5)


def test_torchvision_resnet50_dilated_equals_replace_stride_with_dilation():
    # torchvision's replace_stride_with_dilation=[False, True, True] is our output_stride=8 with the
    # torchvision dilation placement (layer3: 1, 2, 2, ...; layer4: 2, 4, 4)
    tv = randomize(
        torchvision.models.resnet50(weights=None, replace_stride_with_dilation=[False, True, True]), seed=1
    )
    ours = DilatedResNet(depth=50, output_stride=8, deep_stem=False, torchvision_dilation=True, norm="BN")
    ours.load_state_dict(strip(convert_torchvision_resnet(tv.state_dict()).state), strict=True)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        _, res5 = torchvision_trunk(tv, x)
        out = ours.eval()(x)
    assert res5.shape[-2:] == (4, 4)  # stride 8
    torch.testing.assert_close(out["res5"], res5)


def semseg_resnet18_v2_state():
    """The semseg / APD ``initmodel/resnet18_v2.pth`` layout written by hand: a deep 3×3 stem
    (3→64→64→128), so layer1.0 has a 128→64 downsample, and a 512→1000 fc."""
    state = {}

    def conv(name, o, i, k):
        state[f"{name}.weight"] = torch.randn(o, i, k, k)

    def bn(name, c):
        state.update({f"{name}.weight": torch.rand(c) + 0.5, f"{name}.bias": torch.randn(c),
                      f"{name}.running_mean": torch.randn(c), f"{name}.running_var": torch.rand(c) + 0.5,
                      f"{name}.num_batches_tracked": torch.tensor(7)})

    conv("conv1", 64, 3, 3), bn("bn1", 64), conv("conv2", 64, 64, 3), bn("bn2", 64)
    conv("conv3", 128, 64, 3), bn("bn3", 128)
    inplanes = 128
    for stage, planes in enumerate((64, 128, 256, 512), start=1):
        for i in range(2):
            p = f"layer{stage}.{i}"
            conv(f"{p}.conv1", planes, inplanes if i == 0 else planes, 3), bn(f"{p}.bn1", planes)
            conv(f"{p}.conv2", planes, planes, 3), bn(f"{p}.bn2", planes)
            if i == 0:  # stride 2 (stages 2-4) or 128 -> 64 channels (stage 1)
                conv(f"{p}.downsample.0", planes, inplanes, 1), bn(f"{p}.downsample.1", planes)
        inplanes = planes
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, 512), torch.randn(1000)
    return state


def test_semseg_deep_stem_resnet_loads_strictly():
    source = semseg_resnet18_v2_state()
    state = convert_torchvision_resnet(source).state  # deep stem detected from conv2.weight
    assert len(state) == len(source) - 2  # everything but fc.weight / fc.bias
    ours = DilatedResNet(depth=18, deep_stem=True, norm="BN")
    ours.load_state_dict(strip(state), strict=True)
    torch.testing.assert_close(ours.conv3.weight, source["conv3.weight"])
    torch.testing.assert_close(ours.layer1[0].downsample[1].running_var, source["layer1.0.downsample.1.running_var"])
    # asking for the torchvision stem: conv2/conv3/bn2/bn3 are not in its layout
    with pytest.raises(ConversionError, match=r"conv2\.weight.*deep_stem=True"):
        convert_torchvision_resnet(source, deep_stem=False)


def test_torchvision_mobilenet_v2_equals_dilated_mobilenet_v2():
    tv = randomize(torchvision.models.mobilenet_v2(weights=None), seed=2)
    result = convert_torchvision_mobilenet_v2(tv.state_dict())
    assert sorted(result.dropped) == sorted(
        k for k in tv.state_dict() if k.startswith(("features.18.", "classifier."))
    )
    ours = DilatedMobileNetV2(output_stride=32, norm="BN").eval()
    ours.load_state_dict(strip(result.state), strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = tv.features[:18](x)
        out = ours(x)
    torch.testing.assert_close(out["res5"], expected)


def test_unmapped_keys_are_errors_that_list_them():
    state = torchvision.models.resnet18(weights=None).state_dict()
    state["layer1.0.se.fc.weight"] = torch.zeros(1)
    state["head.weight"] = torch.zeros(1)
    with pytest.raises(ConversionError) as info:
        convert_torchvision_resnet(state)
    message = str(info.value)
    assert "2 checkpoint keys match no rule" in message
    assert "layer1.0.se.fc.weight" in message and "head.weight" in message
    mv2 = torchvision.models.mobilenet_v2(weights=None).state_dict()
    mv2["features.19.0.weight"] = torch.zeros(1)
    with pytest.raises(ConversionError, match=r"features\.19\.0\.weight"):
        convert_torchvision_mobilenet_v2(mv2)


# ------------------------------------------------------------------------- official APD / semseg PSPNet
def official_resnet_layers(model: nn.Module, depth: int) -> int:
    """layer0 (deep stem) and layer1..4 as the official code builds them (its model/resnet.py blocks have
    torchvision's names), then dilated by patching conv attributes like model/pspnet.py (non-60-class
    branch: every block of layer3/4 gets dilation 2/4 on conv1 (BasicBlock) or conv2 (Bottleneck)).
    Returns the channels of layer4."""
    block, counts = {18: (TVBasicBlock, (2, 2, 2, 2)), 50: (TVBottleneck, (3, 4, 6, 3))}[depth]
    conv3x3 = lambda i, o, s=1: nn.Conv2d(i, o, 3, s, 1, bias=False)  # noqa: E731
    model.layer0 = nn.Sequential(
        conv3x3(3, STEM, 2), nn.BatchNorm2d(STEM), nn.ReLU(inplace=True),
        conv3x3(STEM, STEM), nn.BatchNorm2d(STEM), nn.ReLU(inplace=True),
        conv3x3(STEM, 2 * STEM), nn.BatchNorm2d(2 * STEM), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
    )
    inplanes = 2 * STEM
    for idx, n in enumerate(counts):
        planes, stride = BASE * 2**idx, 1 if idx == 0 else 2
        out = planes * block.expansion
        downsample = None
        if stride != 1 or inplanes != out:
            downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out))
        blocks = [block(inplanes, planes, stride, downsample)] + [block(out, planes) for _ in range(n - 1)]
        setattr(model, f"layer{idx + 1}", nn.Sequential(*blocks))
        inplanes = out
    key_conv = "conv1" if depth == 18 else "conv2"
    for layer, d in ((model.layer3, 2), (model.layer4, 4)):
        for name, m in layer.named_modules():
            if key_conv in name:
                m.dilation, m.padding, m.stride = (d, d), (d, d), (1, 1)
            elif "downsample.0" in name:
                m.stride = (1, 1)
    return inplanes


class OfficialPSPNet(nn.Module):
    """Key layout and forward of the APD repo's model/pspnet.py (layout "apd": the PPM owns the 3×3
    merge conv, ``cls`` is the 1×1 classifier) or semseg's PSPNet (layout "semseg": ``cls`` = 3×3 conv,
    BN, ReLU, Dropout2d, 1×1 conv), with tiny widths."""

    def __init__(self, depth, layout, merge=16, aux=8, bins=(1, 2, 3, 6)):
        super().__init__()
        fea = official_resnet_layers(self, depth)
        red = fea // len(bins)
        self.ppm = nn.Module()
        self.ppm.features = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(fea, red, 1, bias=False), nn.BatchNorm2d(red),
                          nn.ReLU(inplace=True))
            for b in bins
        )
        merge_layers = [nn.Conv2d(2 * fea, merge, 3, padding=1, bias=False), nn.BatchNorm2d(merge),
                        nn.ReLU(inplace=True), nn.Dropout2d(0.1)]
        if layout == "apd":
            self.ppm.merge = nn.Sequential(*merge_layers)
            self.cls = nn.Sequential(nn.Conv2d(merge, K, 1))
        else:
            self.cls = nn.Sequential(*merge_layers, nn.Conv2d(merge, K, 1))
        self.aux = nn.Sequential(nn.Conv2d(fea // 2, aux, 3, padding=1, bias=False), nn.BatchNorm2d(aux),
                                 nn.ReLU(inplace=True), nn.Dropout2d(0.1), nn.Conv2d(aux, K, 1))

    def head(self, x4):
        out = [x4] + [
            F.interpolate(f(x4), x4.shape[2:], mode="bilinear", align_corners=True) for f in self.ppm.features
        ]
        x = torch.cat(out, 1)
        return self.cls(self.ppm.merge(x) if hasattr(self.ppm, "merge") else x)

    def forward(self, x):
        h, w = (x.shape[2] - 1) // 8 * 8 + 1, (x.shape[3] - 1) // 8 * 8 + 1
        x3 = self.layer3(self.layer2(self.layer1(self.layer0(x))))
        logits = self.head(self.layer4(x3))
        return F.interpolate(logits, (h, w), mode="bilinear", align_corners=True), self.aux(x3)


def tiny_segmentor(depth, head="psp", merge=16, aux=8, torchvision_dilation=False, dilations=(2, 3, 4),
                   **aspp_options):
    backbone = DilatedResNet(depth=depth, output_stride=8, deep_stem=True, stem_width=STEM, base_channels=BASE,
                             norm="BN", out_features=["res4", "res5"], torchvision_dilation=torchvision_dilation)
    common = dict(input_shape=backbone.output_shape(), num_classes=K, channels=merge, norm="BN",
                  align_corners=True, aux_in_feature="res4", aux_channels=aux)
    if head == "psp":
        sem_seg_head = PSPHead(bins=(1, 2, 3, 6), **common)
    else:
        sem_seg_head = ASPPHead(dilations=dilations, aspp_channels=merge, **common, **aspp_options)
    return Segmentor(backbone=backbone, sem_seg_head=sem_seg_head, pixel_mean=[0.0] * 3, pixel_std=[1.0] * 3)


def official_file(tmp_path, model: nn.Module):
    """What the official train.py writes: DDP keys under "state_dict", with epoch and optimizer."""
    path = tmp_path / "official.pth"
    state = {"module." + k: v for k, v in model.state_dict().items()}
    torch.save({"epoch": 200, "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}, path)
    return torch.load(path, weights_only=True)


def assert_same_outputs(ours: Segmentor, reference: nn.Module, x: torch.Tensor):
    ours.eval()
    with torch.no_grad():
        expected, expected_aux = reference(x)
        # 33 = 8·4 + 1: the feature grid is 5×5 and the official upsampling lands exactly on 33×33
        logits = ours.predict_logits(x)
        aux = ours.sem_seg_head.aux_head(ours.backbone(x)["res4"])
    assert logits.shape == expected.shape == (1, K, 33, 33)
    torch.testing.assert_close(logits, expected)
    torch.testing.assert_close(aux, expected_aux)


@pytest.mark.parametrize("layout,depth", [("apd", 18), ("semseg", 18), ("apd", 50)])
def test_official_pspnet_converts_to_identical_segmentor(tmp_path, layout, depth):
    torch.manual_seed(0)
    reference = randomize(OfficialPSPNet(depth, layout), seed=3)
    checkpoint = official_file(tmp_path, reference)
    result = convert_official_apd(checkpoint)
    assert result.source == f"official_apd_pspnet ({layout} layout)" and result.dropped == []
    assert result.renamed["layer0.6.weight"] == "backbone.conv3.weight"
    ours = tiny_segmentor(depth)
    ours.load_state_dict(result.state, strict=True)
    assert_same_outputs(ours, reference, torch.randn(1, 3, 33, 33))
    # the explicit-layout entry point agrees with detection
    assert convert_official_apd_pspnet(checkpoint, layout=layout).state.keys() == result.state.keys()


def test_official_pspnet_model_state_dict_container_and_errors():
    reference = OfficialPSPNet(18, "apd")
    state = reference.state_dict()
    converted = convert_official_apd_pspnet({"model_state_dict": state}).state
    assert set(converted) == set(tiny_segmentor(18).state_dict())
    # an unknown module is listed, not dropped
    with pytest.raises(ConversionError, match=r"1 checkpoint keys match no rule: ppm\.extra\.weight"):
        convert_official_apd_pspnet({**state, "ppm.extra.weight": torch.zeros(1)})
    # a DDP-prefixed key next to unprefixed ones is not silently renamed
    with pytest.raises(ConversionError, match=r"module\.aux\.4\.bias"):
        convert_official_apd_pspnet({**state, "module.aux.4.bias": torch.zeros(K)})
    no_cls = {k: v for k, v in state.items() if not k.startswith(("ppm.merge", "cls"))}
    with pytest.raises(ConversionError, match="cannot tell the PSPNet layout"):
        convert_official_apd_pspnet(no_cls)


class ConvModule(nn.Module):
    """mmcv ``ConvModule`` names: ``conv`` and ``bn`` (then ReLU)."""

    def __init__(self, i, o, k, dilation=1):
        super().__init__()
        self.conv = nn.Conv2d(i, o, k, padding=0 if k == 1 else dilation, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(o)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class OfficialDeepLabV3(OfficialPSPNet):
    """APD model/deeplabv3.py: ``ppm`` is an mmseg-style ASPPHead (image_pool, aspp_modules with rates
    (1, d1, d2, d3), 3×3 bottleneck, Dropout2d), ``cls`` the 1×1 classifier."""

    def __init__(self, depth, channels=16, aux=8, dilations=(2, 3, 4)):
        super().__init__(depth, "apd", merge=channels, aux=aux)
        fea = self.aux[0].in_channels * 2
        self.ppm = nn.Module()
        self.ppm.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvModule(fea, channels, 1))
        self.ppm.aspp_modules = nn.ModuleList(
            ConvModule(fea, channels, 1 if d == 1 else 3, dilation=d) for d in (1,) + tuple(dilations)
        )
        self.ppm.bottleneck = ConvModule((len(dilations) + 2) * channels, channels, 3)

    def head(self, x4):
        outs = [F.interpolate(self.ppm.image_pool(x4), x4.shape[2:], mode="bilinear", align_corners=True)]
        outs += [m(x4) for m in self.ppm.aspp_modules]
        return self.cls(self.ppm.bottleneck(torch.cat(outs, 1)))


def test_official_deeplabv3_converts_to_identical_segmentor(tmp_path):
    torch.manual_seed(0)
    reference = randomize(OfficialDeepLabV3(18), seed=4)
    checkpoint = official_file(tmp_path, reference)
    state = convert_official_apd(checkpoint).state
    assert state.keys() == convert_official_apd_deeplabv3(checkpoint).state.keys()
    assert "sem_seg_head.aspp.branches.3.norm.running_var" in state
    ours = tiny_segmentor(18, head="aspp")
    ours.load_state_dict(state, strict=True)
    assert_same_outputs(ours, reference, torch.randn(1, 3, 33, 33))


# ---------------------------------------------------------------------------------------- CIRKD DeepLabV3
class CIRKDBasicBlock(nn.Module):
    """CIRKD ResNetV1b BasicBlockV1b: conv1 carries ``dilation`` (and the stride), conv2 ``previous_dilation``."""

    expansion = 1

    def __init__(self, inplanes, planes, stride, dilation, previous_dilation, downsample):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, dilation, dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, previous_dilation, previous_dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class CIRKDBottleneck(nn.Module):
    """CIRKD ResNetV1b BottleneckV1b: 1×1, 3×3 (stride and ``dilation``), 1×1 (×4); ``previous_dilation`` unused."""

    expansion = 4

    def __init__(self, inplanes, planes, stride, dilation, previous_dilation, downsample):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(inplanes, planes, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = nn.Conv2d(planes, 4 * planes, 1, bias=False), nn.BatchNorm2d(4 * planes)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class CIRKDDeepLabV3(nn.Module):
    """CIRKD models/deeplabv3.py: key layout and forward (``pretrained`` = ResNetV1b "v1s" with
    ``dilated=True``; ``head`` = _DeepLabHead; ``auxlayer`` = _FCNHead(res4 channels), eval-mode outputs).

    Tiny widths by default; ``stem=64, base=64, channels=512, num_classes=19`` is CIRKD's real model.
    """

    def __init__(self, depth=18, stem=STEM, base=BASE, channels=16, num_classes=K, rates=(2, 3, 4)):
        super().__init__()
        block, counts = {18: (CIRKDBasicBlock, (2, 2, 2, 2)), 50: (CIRKDBottleneck, (3, 4, 6, 3)),
                         101: (CIRKDBottleneck, (3, 4, 23, 3))}[depth]
        p = self.pretrained = nn.Module()
        p.conv1, p.bn1 = nn.Conv2d(3, stem, 3, 2, 1, bias=False), nn.BatchNorm2d(stem)
        p.conv2, p.bn2 = nn.Conv2d(stem, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem)
        p.conv3, p.bn3 = nn.Conv2d(stem, 2 * stem, 3, 1, 1, bias=False), nn.BatchNorm2d(2 * stem)
        inplanes = 2 * stem
        # (stride, dilation) per stage; the first block of a dilated stage gets dilation 1 (stage dilation 2)
        # or 2 (stage dilation 4) and previous_dilation = the stage dilation (ResNetV1b._make_layer)
        for idx, (stride, dilation) in enumerate(((1, 1), (2, 1), (1, 2), (1, 4))):
            planes = base * 2**idx
            out = planes * block.expansion
            downsample = None
            if stride != 1 or inplanes != out:
                downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out))
            first = 2 if dilation == 4 else 1
            blocks = [block(inplanes, planes, stride, first, dilation, downsample)]
            blocks += [block(out, planes, 1, dilation, dilation, None) for _ in range(counts[idx] - 1)]
            setattr(p, f"layer{idx + 1}", nn.Sequential(*blocks))
            inplanes = out
        fea, c = inplanes, channels
        cbr = lambda i, o, k, d=1: [nn.Conv2d(i, o, k, padding=0 if k == 1 else d, dilation=d, bias=False),  # noqa
                                    nn.BatchNorm2d(o), nn.ReLU(True)]
        aspp = nn.Module()
        aspp.b0 = nn.Sequential(*cbr(fea, c, 1))
        for j, d in enumerate(rates, start=1):  # _ASPPConv: .block
            branch = nn.Module()
            branch.block = nn.Sequential(*cbr(fea, c, 3, d))
            setattr(aspp, f"b{j}", branch)
        aspp.b4 = nn.Module()  # _AsppPooling: .gap
        aspp.b4.gap = nn.Sequential(nn.AdaptiveAvgPool2d(1), *cbr(fea, c, 1))
        aspp.project = nn.Sequential(*cbr(5 * c, c, 1), nn.Dropout(0.5))
        self.head = nn.Module()
        self.head.aspp = aspp
        self.head.block = nn.Sequential(*cbr(c, c, 3), nn.Dropout(0.1), nn.Conv2d(c, num_classes, 1))
        self.auxlayer = nn.Module()  # _FCNHead(fea // 2): inter_channels = in // 4
        self.auxlayer.block = nn.Sequential(*cbr(fea // 2, fea // 8, 3), nn.Dropout(0.1),
                                            nn.Conv2d(fea // 8, num_classes, 1))

    def backbone(self, x):
        p = self.pretrained
        x = F.relu(p.bn1(p.conv1(x)))
        x = F.relu(p.bn2(p.conv2(x)))
        x = F.max_pool2d(F.relu(p.bn3(p.conv3(x))), 3, 2, 1)
        x3 = p.layer3(p.layer2(p.layer1(x)))
        return x3, p.layer4(x3)

    def forward(self, x):
        """eval.py's predict_whole: head logits resized to the input with align_corners=True; aux logits."""
        c3, c4 = self.backbone(x)
        a = self.head.aspp
        pool = F.interpolate(a.b4.gap(c4), c4.shape[2:], mode="bilinear", align_corners=True)
        feats = torch.cat((a.b0(c4), a.b1.block(c4), a.b2.block(c4), a.b3.block(c4), pool), dim=1)
        logits = self.head.block(a.project(feats))
        logits = F.interpolate(logits, x.shape[2:], mode="bilinear", align_corners=True)
        return logits, self.auxlayer.block(c3)


@pytest.mark.parametrize("depth", [18, 50])
def test_cirkd_deeplabv3_converts_to_identical_segmentor(tmp_path, depth):
    reference = randomize(CIRKDDeepLabV3(depth), seed=5)
    # CIRKD's save_checkpoint: torch.save(model.state_dict()) of the unwrapped model, no container
    torch.save(reference.state_dict(), tmp_path / "deeplabv3_cirkd.pth")
    checkpoint = torch.load(tmp_path / "deeplabv3_cirkd.pth", weights_only=True)
    result = convert_cirkd_deeplabv3(checkpoint)
    assert result.dropped == [] and len(result.state) == len(checkpoint)
    assert result.renamed["head.aspp.project.1.running_var"] == "sem_seg_head.project.0.norm.running_var"
    assert list(result.changed) == ["sem_seg_head.project.0.weight"]
    # the projection's input blocks (16 channels each) move from (b0, b1, b2, b3, pool) to (pool, b0, ..., b3)
    source = checkpoint["head.aspp.project.0.weight"]
    projected = result.state["sem_seg_head.project.0.weight"]
    torch.testing.assert_close(projected[:, :16], source[:, 64:80])
    torch.testing.assert_close(projected[:, 16:], source[:, :64])

    # CIRKD: ResNetV1b dilated like torchvision, an ASPP projection, aux width = res4 channels / 4:
    # res4 = 4·BASE = 32 (BasicBlock) → 8, 4·BASE·4 = 128 (Bottleneck) → 32
    aux = {18: 8, 50: 32}[depth]
    ours = tiny_segmentor(depth, head="aspp", aux=aux, torchvision_dilation=True, project_channels=16)
    ours.load_state_dict(result.state, strict=True)
    ours.eval()
    x = torch.randn(1, 3, 33, 33)
    with torch.no_grad():
        expected, expected_aux = reference(x)
        logits = ours.predict_logits(x)
        aux = ours.sem_seg_head.aux_head(ours.backbone(x)["res4"])
    assert logits.shape == (1, K, 33, 33)
    # random BN statistics make deep residual stacks grow (|logits| ~ 3e3 at depth 50, where float32
    # summation order alone moves the last digits): compare at atol 1e-5 relative to the largest logit
    scale = max(1.0, expected.abs().max().item())
    torch.testing.assert_close(logits / scale, expected / scale, atol=1e-5, rtol=0)
    torch.testing.assert_close(aux, expected_aux, atol=1e-5, rtol=1e-5)
    # the function entry point gives the same tensors
    state = convert_cirkd_deeplabv3({"module." + k: v for k, v in checkpoint.items()}).state  # DDP keys unwrapped
    assert state.keys() == result.state.keys()
    torch.testing.assert_close(state["sem_seg_head.project.0.weight"], projected)


def test_cirkd_without_reordering_the_projection_gives_other_outputs():
    """The reorder matters: with the projection copied as is, the logits differ (the pooled branch is
    spatially constant, the others are not)."""
    reference = randomize(CIRKDDeepLabV3(), seed=6)
    state = convert_cirkd_deeplabv3(reference.state_dict()).state
    state["sem_seg_head.project.0.weight"] = reference.head.aspp.project[0].weight.detach().clone()
    ours = tiny_segmentor(18, head="aspp", torchvision_dilation=True, project_channels=16)
    ours.load_state_dict(state, strict=True)
    x = torch.randn(1, 3, 33, 33)
    with torch.no_grad():
        assert not torch.allclose(ours.eval().predict_logits(x), reference(x)[0], atol=1e-3)


@pytest.mark.parametrize("depth,config", [(18, "configs/cityscapes/deeplabv3_r18_cirkd.py"),
                                          (101, "configs/cityscapes/deeplabv3_r101_cirkd.py")])
def test_cirkd_real_layout_fits_the_cirkd_configs(depth, config):
    """CIRKD's real widths (deep stem 64-64-128, 512-channel ASPP and projection, 19 classes), keys and
    shapes only (meta tensors): every converted key fits the config's model, none is missing."""
    with torch.device("meta"):
        state = CIRKDDeepLabV3(depth, stem=64, base=64, channels=512, num_classes=19,
                               rates=(12, 24, 36)).state_dict()
        model, _ = build_model_from_config(config)
        converted = convert_cirkd_deeplabv3(state).state
    comparison = compare_state_dicts(model.state_dict(), converted)
    assert comparison.lines() == [] and comparison.extra_buffers == []
    assert converted["sem_seg_head.project.0.weight"].shape == (512, 2560, 1, 1)
    assert model.input_format == "BGR" and model.sem_seg_head.dilations == (12, 24, 36)
    # the APD-layout config (no projection) does not fit: the projection is unexpected, the bottleneck
    # reads 5·512 there
    with torch.device("meta"):
        apd_layout, _ = build_model_from_config(config.replace("_cirkd", ""))
    comparison = compare_state_dicts(apd_layout.state_dict(), converted)
    assert "sem_seg_head.project.0.weight" in comparison.unexpected
    assert "sem_seg_head.bottleneck.0.weight (checkpoint (512, 512, 3, 3) vs model (512, 2560, 3, 3))" in (
        comparison.mismatched)


def test_cirkd_backbone_only_and_layout_errors():
    reference = randomize(CIRKDDeepLabV3(), seed=7)
    state = reference.state_dict()
    result = convert_cirkd_deeplabv3(state, backbone_only=True)
    assert {k.split(".")[0] for k in result.dropped} == {"head", "auxlayer"} and result.changed == {}
    # CIRKD's ResNetV1b dilation placement is our torchvision_dilation=True (for BasicBlocks too)
    ours = DilatedResNet(depth=18, deep_stem=True, stem_width=STEM, base_channels=BASE, norm="BN",
                         torchvision_dilation=True).eval()
    ours.load_state_dict(strip(result.state), strict=True)
    x = torch.randn(1, 3, 33, 33)
    with torch.no_grad():
        torch.testing.assert_close(ours(x)["res5"], reference.backbone(x)[1])

    # an unknown module is listed, not dropped
    with pytest.raises(ConversionError, match=r"1 checkpoint keys match no rule: head\.aspp\.b5\.0\.weight"):
        convert_cirkd_deeplabv3({**state, "head.aspp.b5.0.weight": torch.zeros(16, 64, 1, 1)})
    # a projection that does not read 5 branches of b0's width cannot be reordered
    bad = {**state, "head.aspp.project.0.weight": torch.zeros(16, 64, 1, 1)}
    with pytest.raises(ConversionError, match=r"project\.0\.weight has shape \(16, 64, 1, 1\).*5·16"):
        convert_cirkd_deeplabv3(bad)
    no_b0 = {k: v for k, v in state.items() if not k.startswith("head.aspp.b0.")}
    with pytest.raises(ConversionError, match=r"head\.aspp\.b0\.0\.weight is not"):
        convert_cirkd_deeplabv3(no_b0)


# --------------------------------------------------------------------------------------- model checks
def test_key_mismatch_reports_missing_unexpected_shapes_and_a_prefix_hint():
    # apd.checkpoint.keys.compare_state_dicts: the one reporter of teacher loading, export and the converters
    model = tiny_segmentor(18)
    state = dict(model.state_dict())
    del state["sem_seg_head.classifier.bias"]
    state["sem_seg_head.extra.weight"] = torch.zeros(1)
    state["sem_seg_head.classifier.weight"] = torch.zeros(K + 1, 16, 1, 1)
    state["backbone.frozen.num_batches_tracked"] = torch.tensor(0)
    comparison = compare_state_dicts(model.state_dict(), state)
    assert comparison.missing == ["sem_seg_head.classifier.bias"]
    assert comparison.unexpected == ["sem_seg_head.extra.weight"]
    assert comparison.mismatched == [
        "sem_seg_head.classifier.weight (checkpoint (6, 16, 1, 1) vs model (5, 16, 1, 1))"
    ]
    assert comparison.extra_buffers == ["backbone.frozen.num_batches_tracked"]
    errors = comparison.lines()
    assert len(errors) == 3 and "sem_seg_head.classifier.bias" in errors[0]
    assert len(comparison.lines(allow_missing=lambda k: k.startswith("sem_seg_head."))) == 2
    # Segmentor keys checked against a distiller-like wrapper: the missing prefix is named
    wrapper = nn.Module()
    wrapper.student = model
    errors = compare_state_dicts(wrapper.state_dict(), model.state_dict()).lines()
    n = sum(not k.endswith("num_batches_tracked") for k in model.state_dict())  # buffers are not compared
    assert errors[-1] == (
        f"hint: {n} unexpected keys are missing keys without the prefix 'student.': "
        "pass --prefix student."
    )


# ------------------------------------------------------------------------------- Detectron2 model zoo
def write_model_zoo_pkl(path, arrays):
    with open(path, "wb") as f:
        pickle.dump({"model": arrays, "__author__": "Detectron2 Model Zoo"}, f)


def test_detectron2_model_zoo_pkl_loads_strictly_with_load_teacher_weights(tmp_path):
    """Model-zoo ``.pkl`` teachers need no converter: ``load_teacher_weights`` reads numpy arrays. (Zoo
    R-CNNs use FrozenBN: no ``num_batches_tracked``, whose absence is benign.)"""
    torch.manual_seed(0)
    source = randomize(tiny_segmentor(18), seed=6)
    arrays = {k: v.numpy() for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "model_final.pkl"
    write_model_zoo_pkl(path, arrays)
    torch.manual_seed(1)
    teacher = tiny_segmentor(18)
    load_teacher_weights(teacher, str(path))
    for k, v in arrays.items():
        torch.testing.assert_close(teacher.state_dict()[k], torch.from_numpy(v), msg=k)

    del arrays["sem_seg_head.ppm.stages.2.1.norm.running_mean"]
    write_model_zoo_pkl(path, arrays)
    message = "missing keys (1): sem_seg_head.ppm.stages.2.1.norm.running_mean"
    with pytest.raises(TeacherWeightsError, match=re.escape(message)):
        load_teacher_weights(tiny_segmentor(18), str(path))


def test_detectron2_model_zoo_pkl_with_zero_dim_bn_buffers(tmp_path):
    """A zoo model trained with (Sync)BN stores ``num_batches_tracked`` as 0-d arrays; they must stay 0-d
    (``np.ascontiguousarray`` alone turns them into shape (1,))."""
    source = randomize(tiny_segmentor(18), seed=7)
    arrays = {k: v.numpy() for k, v in source.state_dict().items()}
    assert arrays["backbone.bn1.num_batches_tracked"].shape == ()
    path = tmp_path / "model_final.pkl"
    write_model_zoo_pkl(path, arrays)
    teacher = tiny_segmentor(18)
    load_teacher_weights(teacher, str(path))
    torch.testing.assert_close(teacher.backbone.bn1.running_var, source.backbone.bn1.running_var)
    # the converters' reader keeps them 0-d too
    assert unwrap_state_dict({"model": arrays})["backbone.bn1.num_batches_tracked"].shape == ()

import math

import pytest
import torch
import torchvision
from torch import nn

from detectron2.config import LazyCall as L
from detectron2.config import instantiate
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.modeling import FPN

from apd.modeling.backbone import DilatedResNet

torch.set_num_threads(1)

# tiny widths keep forward passes cheap: stem 2*8=16 channels, stages 8/16/32/64 (×4 for Bottleneck)
TINY = dict(stem_width=8, base_channels=8)


def _torchvision_resnet(depth, **kwargs):
    return getattr(torchvision.models, f"resnet{depth}")(weights=None, **kwargs)


def _n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("depth,channels", [(18, (8, 16, 32, 64)), (50, (32, 64, 128, 256))])
@pytest.mark.parametrize(
    "output_stride,strides", [(8, (4, 8, 8, 8)), (16, (4, 8, 16, 16)), (32, (4, 8, 16, 32))]
)
@pytest.mark.parametrize("height,width", [(65, 97), (64, 64)])
def test_feature_sizes_and_channels_match_output_shape(
    depth, channels, output_stride, strides, height, width
):
    model = DilatedResNet(depth=depth, output_stride=output_stride, **TINY).eval()
    shapes = model.output_shape()
    names = ("res2", "res3", "res4", "res5")
    assert [shapes[n].stride for n in names] == list(strides)
    # base_channels=8 is 1/8 of standard: R18 64..512 / 8, R50 256..2048 / 8
    assert [shapes[n].channels for n in names] == list(channels)
    with torch.no_grad():
        out = model(torch.randn(2, 3, height, width))
    assert list(out) == list(names)
    for name in names:
        s = strides[names.index(name)]
        # every stride-2 op (3x3 pad 1, 7x7 pad 3, 1x1 pad 0, maxpool 3 pad 1) maps n -> ceil(n/2),
        # e.g. 65 -> 33 -> 17 (res2) -> 9 (res3): ceil(65/8) = 9 = (65-1)/8+1
        assert tuple(out[name].shape) == (
            2,
            shapes[name].channels,
            math.ceil(height / s),
            math.ceil(width / s),
        )
    assert model.size_divisibility == (32 if output_stride == 32 else 0)


@pytest.mark.parametrize("depth", [18, 50, 101])
def test_torchvision_stem_state_dict_is_torchvision_minus_fc(depth):
    # Trunk parameter counts (torchvision resnetX minus fc): R18 11,176,512; R50 23,508,032;
    # R101 42,500,160. Names must map 1:1 so converters are a pure prefix rename.
    ours = DilatedResNet(depth=depth, deep_stem=False)
    ref = _torchvision_resnet(depth)
    ref_sd = {k: v for k, v in ref.state_dict().items() if not k.startswith("fc.")}
    ours_sd = ours.state_dict()
    assert set(ours_sd) == set(ref_sd)
    for k, v in ref_sd.items():
        assert ours_sd[k].shape == v.shape, k
    assert _n_params(ours) == _n_params(ref) - _n_params(ref.fc)


def test_deep_stem_r18_layout_and_parameter_count():
    ours = DilatedResNet(depth=18)
    ref = _torchvision_resnet(18)
    # Deep stem: conv 3->64 (1,728) + 64->64 (36,864) + 64->128 (73,728) + 3 BN (128+128+256)
    #   = 112,832 vs torchvision's 7x7 conv (9,408) + BN (128) = 9,536  -> +103,296.
    # layer1.0 now sees 128 channels: conv1 3x3 128->64 (+36,864 vs 64->64) and a new
    #   downsample 1x1 128->64 + BN (8,192 + 128 = 8,320).
    # Total +148,480: 11,176,512 + 148,480 = 11,324,992 parameters.
    assert _n_params(ours) == _n_params(ref) - _n_params(ref.fc) + 148_480
    assert ours.conv1.weight.shape == (64, 3, 3, 3) and ours.conv1.stride == (2, 2)
    assert ours.conv2.weight.shape == (64, 64, 3, 3) and ours.conv2.stride == (1, 1)
    assert ours.conv3.weight.shape == (128, 64, 3, 3)
    assert ours.layer1[0].downsample[0].weight.shape == (64, 128, 1, 1)
    assert ours.output_shape()["res2"].channels == 64


@pytest.mark.parametrize("depth", [18, 50])
def test_torchvision_weights_load_strictly_and_give_identical_features(depth):
    ref = _torchvision_resnet(depth).eval()
    ours = DilatedResNet(depth=depth, deep_stem=False, output_stride=32).eval()
    ours.load_state_dict({k: v for k, v in ref.state_dict().items() if not k.startswith("fc.")})
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        y = ref.maxpool(ref.relu(ref.bn1(ref.conv1(x))))
        expected = {}
        for i, name in enumerate(("res2", "res3", "res4", "res5")):
            y = getattr(ref, f"layer{i + 1}")(y)
            expected[name] = y
        out = ours(x)
    for name in expected:
        torch.testing.assert_close(out[name], expected[name])


def _conv_geometry(model, prefix):
    """{name: (stride, dilation, padding)} of every conv under ``prefix`` (layer3/layer4)."""
    return {
        n: (m.stride, m.dilation, m.padding)
        for n, m in model.named_modules()
        if isinstance(m, nn.Conv2d) and n.startswith(prefix)
    }


def _patch_like_official(model, depth, classes_60):
    """Reference: dilate a torchvision ResNet the way the official APD ``model/pspnet.py`` does
    (re-stated from docs/METHOD.md §4): the PSPNet branch dilates ``conv1`` (R18) / ``conv2`` (R50+) of
    every block (layer3 2, layer4 4); the 60-class branch gives strided 3x3 convs the previous
    dilation (1 / 2) and every other 3x3 conv the stage dilation."""
    key = "conv1" if depth < 50 else "conv2"
    for layer, prev, dil in (("layer3", 1, 2), ("layer4", 2, 4)):
        for n, m in getattr(model, layer).named_modules():
            if not isinstance(m, nn.Conv2d):
                continue
            if "downsample" in n:
                m.stride = (1, 1)
            elif classes_60:
                if m.kernel_size == (3, 3):
                    d = prev if m.stride == (2, 2) else dil
                    m.dilation, m.padding = (d, d), (d, d)
                m.stride = (1, 1)
            elif n.endswith(key):
                m.dilation, m.padding, m.stride = (dil, dil), (dil, dil), (1, 1)
    return model


@pytest.mark.parametrize("depth", [18, 50])
@pytest.mark.parametrize("torchvision_dilation", [False, True])
def test_dilation_placement_matches_official_code(depth, torchvision_dilation):
    ours = DilatedResNet(depth=depth, deep_stem=False, torchvision_dilation=torchvision_dilation)
    ref = _patch_like_official(_torchvision_resnet(depth), depth, torchvision_dilation)
    for layer in ("layer3", "layer4"):
        assert _conv_geometry(ours, layer) == _conv_geometry(ref, layer)


def test_pspnet_dilation_r18_dilates_only_conv1():
    model = DilatedResNet(depth=18, **TINY)
    for layer, dil in (("layer3", 2), ("layer4", 4)):
        for block in getattr(model, layer):
            assert block.conv1.dilation == (dil, dil) and block.conv1.padding == (dil, dil)
            assert block.conv1.stride == (1, 1)
            assert block.conv2.dilation == (1, 1)
        assert getattr(model, layer)[0].downsample[0].stride == (1, 1)
    for layer in ("layer1", "layer2"):
        for block in getattr(model, layer):
            assert block.conv1.dilation == (1, 1) and block.conv2.dilation == (1, 1)


def test_torchvision_dilation_r50_matches_torchvision_replace_stride_with_dilation():
    ref = _torchvision_resnet(50, replace_stride_with_dilation=[False, True, True]).eval()
    ours = DilatedResNet(
        depth=50, deep_stem=False, output_stride=8, torchvision_dilation=True
    ).eval()
    assert _conv_geometry(ours, "") == _conv_geometry(ref, "")
    # first block of layer3 keeps dilation 1, then 2; layer4: 2 then 4
    assert [b.conv2.dilation[0] for b in ours.layer3] == [1, 2, 2, 2, 2, 2]
    assert [b.conv2.dilation[0] for b in ours.layer4] == [2, 4, 4]
    ours.load_state_dict({k: v for k, v in ref.state_dict().items() if not k.startswith("fc.")})
    x = torch.randn(1, 3, 33, 33)
    with torch.no_grad():
        y = ref.maxpool(ref.relu(ref.bn1(ref.conv1(x))))
        y = ref.layer4(ref.layer3(ref.layer2(ref.layer1(y))))
        torch.testing.assert_close(ours(x)["res5"], y)


def test_output_stride_16_dilates_layer4_only():
    model = DilatedResNet(depth=50, output_stride=16, **TINY)
    assert model.layer3[0].conv2.stride == (2, 2)
    assert {b.conv2.dilation for b in model.layer3} == {(1, 1)}
    assert model.layer4[0].conv2.stride == (1, 1)
    assert {b.conv2.dilation for b in model.layer4} == {(2, 2)}


@pytest.mark.parametrize(
    "norm,norm_type", [("BN", nn.BatchNorm2d), ("SyncBN", nn.SyncBatchNorm), ("GN", nn.GroupNorm)]
)
def test_norm_switch(norm, norm_type):
    # GN uses 32 groups: widths 32 (stem 32/64, stages 32..256) are divisible by 32
    model = DilatedResNet(depth=18, norm=norm, stem_width=32, base_channels=32)
    norms = [m for n, m in model.named_modules() if n.split(".")[-1].startswith("bn")]
    norms += [b.downsample[1] for layer in (model.layer1, model.layer2, model.layer3, model.layer4)
              for b in layer if b.downsample is not None]
    # 3 stem + 2 per block * 8 blocks + 4 downsamples (layer1 128->64 included) = 23
    assert len(norms) == 23
    assert all(type(m) is norm_type for m in norms)


def test_frozen_bn_norm_has_no_trainable_norm_parameters():
    model = DilatedResNet(depth=18, norm="FrozenBN", **TINY)
    assert isinstance(model.bn1, FrozenBatchNorm2d)
    assert not any("bn" in n for n, _ in model.named_parameters())


def test_freeze_at_freezes_stem_and_res2_only():
    model = DilatedResNet(depth=18, freeze_at=2, **TINY)
    for name, p in model.named_parameters():
        frozen = name.split(".")[0] in ("conv1", "conv2", "conv3", "layer1")
        assert p.requires_grad is not frozen, name
    assert all(isinstance(getattr(model, f"bn{i}"), FrozenBatchNorm2d) for i in (1, 2, 3))
    assert isinstance(model.layer1[0].bn1, FrozenBatchNorm2d)
    assert isinstance(model.layer1[0].downsample[1], FrozenBatchNorm2d)
    assert type(model.layer2[0].bn1) is nn.BatchNorm2d
    # in train mode frozen stats stay put, trainable BN stats move
    model.train()
    before_frozen = model.layer1[0].bn1.running_mean.clone()
    before_train = model.layer2[0].bn1.running_mean.clone()
    model(torch.randn(2, 3, 32, 32))["res5"].sum().backward()
    torch.testing.assert_close(model.layer1[0].bn1.running_mean, before_frozen)
    assert not torch.equal(model.layer2[0].bn1.running_mean, before_train)
    assert model.conv1.weight.grad is None and model.layer2[0].conv1.weight.grad is not None


def test_freeze_at_zero_trains_everything():
    model = DilatedResNet(depth=18, freeze_at=0, **TINY)
    assert all(p.requires_grad for p in model.parameters())


def test_stages_after_last_out_feature_are_not_built():
    model = DilatedResNet(depth=18, out_features=("stem", "res4"), **TINY).eval()
    assert not hasattr(model, "layer4")
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32))
    assert list(out) == ["stem", "res4"]
    # stem: 2*stem_width = 16 channels at stride 4 -> 32/4 = 8; res4 (os 8): 4*8 = 32 ch, 32/8 = 4
    assert tuple(out["stem"].shape) == (1, 16, 8, 8)
    assert tuple(out["res4"].shape) == (1, 32, 4, 4)
    assert model.output_shape() == {
        "stem": ShapeSpec(channels=16, stride=4),
        "res4": ShapeSpec(channels=32, stride=8),
    }


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        (dict(depth=20), "depth=20"),
        (dict(depth=18, output_stride=4), "output_stride=4"),
        (dict(depth=18, out_features=("res6",)), "res6"),
        (dict(depth=18, freeze_at=7), "freeze_at=7"),
    ],
)
def test_invalid_arguments_name_the_value(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        DilatedResNet(**kwargs)


def test_r34_at_stride_16_with_torchvision_dilation_and_a_frozen_stem():
    model = DilatedResNet(depth=34, output_stride=16, stem_width=8, base_channels=8, out_features=("res4", "res5"),
                          torchvision_dilation=True, freeze_at=1)
    assert [len(getattr(model, f"layer{i}")) for i in (1, 2, 3, 4)] == [3, 4, 6, 3]
    # R34 widths 8*(4, 8) = 32, 64 at strides 16, 16
    assert model.output_shape() == {
        "res4": ShapeSpec(channels=32, stride=16),
        "res5": ShapeSpec(channels=64, stride=16),
    }
    assert not model.conv1.weight.requires_grad and model.layer1[0].conv1.weight.requires_grad
    # torchvision dilation at os 16: layer4 first block conv1 keeps dilation 1, the rest 2
    assert model.layer4[0].conv1.dilation == (1, 1) and model.layer4[0].conv2.dilation == (2, 2)
    assert model.layer4[1].conv1.dilation == (2, 2)


def test_lazyconfig_instantiate():
    cfg = L(DilatedResNet)(depth=18)
    cfg.base_channels = 8
    cfg.stem_width = 8
    model = instantiate(cfg)
    assert isinstance(model, DilatedResNet) and model.deep_stem and model.output_stride == 8
    assert model.output_shape()["res5"] == ShapeSpec(channels=64, stride=8)


def test_output_stride_32_feeds_detectron2_fpn():
    bottom_up = DilatedResNet(depth=18, output_stride=32, deep_stem=False, **TINY)
    fpn = FPN(
        bottom_up=bottom_up, in_features=["res2", "res3", "res4", "res5"], out_channels=8
    ).eval()
    assert fpn.size_divisibility == 32
    with torch.no_grad():
        out = fpn(torch.randn(1, 3, 64, 64))
    # p2..p5 at strides 4..32 of 64: 16, 8, 4, 2
    assert {k: tuple(v.shape[-2:]) for k, v in out.items()} == {
        "p2": (16, 16),
        "p3": (8, 8),
        "p4": (4, 4),
        "p5": (2, 2),
    }


@pytest.mark.parametrize("depth,output_stride,deep_stem", [(18, 8, True), (34, 16, False), (50, 32, True)])
def test_output_shape_function_matches_the_built_network(depth, output_stride, deep_stem):
    from apd.modeling.backbone.dilated_resnet import dilated_resnet_output_shape

    kwargs = dict(depth=depth, output_stride=output_stride, deep_stem=deep_stem, stem_width=4, base_channels=4,
                  out_features=("stem", "res2", "res3", "res4", "res5"))
    model = DilatedResNet(**kwargs).eval()
    shapes = dilated_resnet_output_shape(**kwargs)
    assert shapes == model.output_shape()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 96))
    for name, shape in shapes.items():
        assert out[name].shape[1:] == (shape.channels, math.ceil(64 / shape.stride), math.ceil(96 / shape.stride)), name

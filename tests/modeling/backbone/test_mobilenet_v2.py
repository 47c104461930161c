import math

import pytest
import torch
import torchvision
from torch import nn

from detectron2.config import LazyCall as L
from detectron2.config import instantiate
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec

from apd.modeling.backbone import DilatedMobileNetV2

torch.set_num_threads(1)

NAMES = ("res2", "res3", "res4", "res5")


def _n_params(module):
    return sum(p.numel() for p in module.parameters())


def _reference_trunk(width_mult=1.0):
    """torchvision mobilenet_v2 features without the last 1x1 conv to 1280 (features[18])."""
    return torchvision.models.mobilenet_v2(weights=None, width_mult=width_mult).features[:-1]


@pytest.mark.parametrize(
    "width_mult,channels",
    # make_divisible(c * 0.5, 8): 24 -> 12 -> 16 (int(12 + 4) // 8 * 8), 32 -> 16, 96 -> 48,
    # 320 -> 160
    [(1.0, (24, 32, 96, 320)), (0.5, (16, 16, 48, 160))],
)
@pytest.mark.parametrize(
    "output_stride,strides", [(8, (4, 8, 8, 8)), (16, (4, 8, 16, 16)), (32, (4, 8, 16, 32))]
)
@pytest.mark.parametrize("height,width", [(65, 97), (64, 64)])
def test_feature_sizes_and_channels_match_output_shape(
    width_mult, channels, output_stride, strides, height, width
):
    model = DilatedMobileNetV2(output_stride=output_stride, width_mult=width_mult).eval()
    shapes = model.output_shape()
    assert [shapes[n].stride for n in NAMES] == list(strides)
    assert [shapes[n].channels for n in NAMES] == list(channels)
    with torch.no_grad():
        out = model(torch.randn(1, 3, height, width))
    assert list(out) == list(NAMES)
    for name, s in zip(NAMES, strides):
        # each stride-2 3x3 pad-1 conv maps n -> ceil(n/2): 65 -> 33 -> 17 -> 9 -> 5 -> 3
        assert tuple(out[name].shape) == (
            1,
            shapes[name].channels,
            math.ceil(height / s),
            math.ceil(width / s),
        )
    assert model.size_divisibility == (32 if output_stride == 32 else 0)


@pytest.mark.parametrize("width_mult", [1.0, 0.5])
def test_state_dict_is_torchvision_features_without_last_conv(width_mult):
    # width 1.0: torchvision mobilenet_v2 has 3,504,872 parameters = features[:-1] 1,811,712
    # + features[18] (1x1 320->1280: 409,600, BN 2,560) + classifier (1280*1000 + 1000 = 1,281,000).
    ours = DilatedMobileNetV2(width_mult=width_mult)
    ref = _reference_trunk(width_mult)
    ref_sd = {f"features.{k}": v for k, v in ref.state_dict().items()}
    ours_sd = ours.state_dict()
    assert set(ours_sd) == set(ref_sd)
    for k, v in ref_sd.items():
        assert ours_sd[k].shape == v.shape, k
    assert _n_params(ours) == _n_params(ref)


def test_full_torchvision_model_minus_head_parameter_count():
    full = torchvision.models.mobilenet_v2(weights=None)
    ours = DilatedMobileNetV2()
    head = 320 * 1280 + 2 * 1280 + 1280 * 1000 + 1000  # last conv + its BN + classifier
    assert _n_params(ours) == _n_params(full) - head


def test_torchvision_weights_give_identical_features_at_stride_32():
    ref = _reference_trunk().eval()
    ours = DilatedMobileNetV2(output_stride=32).eval()
    ours.load_state_dict({f"features.{k}": v for k, v in ref.state_dict().items()})
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = ours(x)
        y, expected = x, {}
        ends = {3: "res2", 6: "res3", 13: "res4", 17: "res5"}
        for i, module in enumerate(ref):
            y = module(y)
            if i in ends:
                expected[ends[i]] = y
    for name in NAMES:
        torch.testing.assert_close(out[name], expected[name])


def _depthwise_geometry(model):
    """[(stride, dilation, padding)] of the depthwise 3x3 conv of features.1..17."""
    return [
        (b.depthwise.stride[0], b.depthwise.dilation[0], b.depthwise.padding[0])
        for b in list(model.features)[1:]
    ]


def test_output_stride_8_official_dilation_first_block_only():
    # Official APD/mmseg: group strides (1,2,2,1,1,1,1), dilations (1,1,1,2,2,4,4) on the FIRST
    # block of each group only. Groups -> features: 16:[1] 24:[2,3] 32:[4,5,6] 64:[7..10]
    # 96:[11..13] 160:[14..16] 320:[17]. Stride 2 remains at features 2 and 4.
    model = DilatedMobileNetV2(output_stride=8)
    expected_strides = [1, 2, 1, 2, 1, 1] + [1] * 11
    expected_dilations = [1] * 6 + [2, 1, 1, 1] + [2, 1, 1] + [4, 1, 1] + [4]
    geometry = _depthwise_geometry(model)
    assert [g[0] for g in geometry] == expected_strides
    assert [g[1] for g in geometry] == expected_dilations
    assert [g[2] for g in geometry] == expected_dilations  # padding = dilation keeps the size


def test_output_stride_8_dilate_every_block_of_the_group():
    model = DilatedMobileNetV2(output_stride=8, dilate_first_block_only=False)
    expected_dilations = [1] * 6 + [2] * 7 + [4] * 4
    assert [g[1] for g in _depthwise_geometry(model)] == expected_dilations


def test_output_stride_16_dilates_res5_only():
    model = DilatedMobileNetV2(output_stride=16)
    geometry = _depthwise_geometry(model)
    # features 7 (64 ch) keeps stride 2; features 14 (160 ch) loses it and gets dilation 2,
    # as does 17
    assert geometry[7 - 1][:2] == (2, 1)
    assert geometry[14 - 1][:2] == (1, 2)
    assert geometry[17 - 1][:2] == (1, 2)
    assert [g[1] for g in geometry[:13]] == [1] * 13


def test_residual_connections_follow_stride_and_channels():
    model = DilatedMobileNetV2(output_stride=8)
    # residual iff stride 1 and in == out: second+ blocks of every group. With dilation instead of
    # stride, features 7 (32->64) and 14 (96->160) still change channels, so no residual there.
    with_residual = [i for i, b in enumerate(model.features) if i > 0 and b.use_residual]
    assert with_residual == [3, 5, 6, 8, 9, 10, 12, 13, 15, 16]


def test_norm_switch_and_frozen_bn():
    model = DilatedMobileNetV2(norm="SyncBN", out_features=("res2",))
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase)]
    assert norms and all(type(m) is nn.SyncBatchNorm for m in norms)
    frozen = DilatedMobileNetV2(norm="FrozenBN", out_features=("res2",))
    assert isinstance(frozen.features[0][1], FrozenBatchNorm2d)
    # only conv weights remain parameters: stem conv + convs of features 1..3
    assert all(n.endswith("weight") and p.dim() == 4 for n, p in frozen.named_parameters())


def test_freeze_at_two_freezes_stem_and_res2():
    model = DilatedMobileNetV2(freeze_at=2, out_features=("res2", "res3"))
    for name, p in model.named_parameters():
        index = int(name.split(".")[1])
        assert p.requires_grad is (index > 3), name
    assert isinstance(model.features[3].conv[0][1], FrozenBatchNorm2d)
    assert type(model.features[4].conv[0][1]) is nn.BatchNorm2d


def test_blocks_after_last_out_feature_are_not_built():
    model = DilatedMobileNetV2(out_features=("res3",)).eval()
    assert len(model.features) == 7  # stem + features 1..6
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32))
    assert list(out) == ["res3"] and tuple(out["res3"].shape) == (1, 32, 4, 4)


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        (dict(output_stride=4), "output_stride=4"),
        (dict(out_features=("res6",)), "res6"),
        (dict(width_mult=0.0), "width_mult=0.0"),
    ],
)
def test_invalid_arguments_name_the_value(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        DilatedMobileNetV2(**kwargs)


def test_half_width_two_features_nothing_frozen():
    model = DilatedMobileNetV2(width_mult=0.5, out_features=("res4", "res5"), freeze_at=0)
    assert model.output_shape() == {
        "res4": ShapeSpec(channels=48, stride=8),
        "res5": ShapeSpec(channels=160, stride=8),
    }
    assert all(p.requires_grad for p in model.parameters())


def test_lazyconfig_instantiate():
    model = instantiate(L(DilatedMobileNetV2)(output_stride=16))
    assert isinstance(model, DilatedMobileNetV2)
    assert model.output_shape()["res5"] == ShapeSpec(channels=320, stride=16)


@pytest.mark.parametrize("output_stride,width_mult", [(8, 0.5), (16, 1.0), (32, 0.25)])
def test_output_shape_function_matches_the_built_network(output_stride, width_mult):
    from apd.modeling.backbone.mobilenet_v2 import dilated_mobilenet_v2_output_shape

    model = DilatedMobileNetV2(output_stride=output_stride, width_mult=width_mult).eval()
    shapes = dilated_mobilenet_v2_output_shape(output_stride=output_stride, width_mult=width_mult)
    assert shapes == model.output_shape()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 96))
    for name, shape in shapes.items():
        assert out[name].shape[1] == shape.channels and out[name].shape[2] == -(-64 // shape.stride), name

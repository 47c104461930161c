"""Tests of the APD adapters (docs/METHOD.md §2.1: 1×1 conv → ReLU → 1×1 conv, biases, no BN)."""
import pytest
import torch
from torch import nn

from apd.modeling.distill import ConvAdapter, MLPAdapter


def test_conv_adapter_layout_matches_official_sequential():
    adapter = ConvAdapter(512, 256, 128)
    assert [type(m) for m in adapter] == [nn.Conv2d, nn.ReLU, nn.Conv2d]
    assert adapter[0].kernel_size == (1, 1) and adapter[2].kernel_size == (1, 1)
    assert (adapter[0].in_channels, adapter[0].out_channels, adapter[2].out_channels) == (512, 256, 128)
    assert set(adapter.state_dict()) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in adapter.modules())
    assert adapter(torch.randn(2, 512, 3, 4)).shape == (2, 128, 3, 4)


def test_mlp_adapter_is_the_per_point_conv_adapter():
    conv, mlp = ConvAdapter(6, 5, 4), MLPAdapter(6, 5, 4)
    with torch.no_grad():
        for i in (0, 2):
            mlp[i].weight.copy_(conv[i].weight.flatten(1))
            mlp[i].bias.copy_(conv[i].bias)
    x = torch.randn(2, 6, 3, 3)
    dense = conv(x).permute(0, 2, 3, 1).reshape(-1, 4)
    torch.testing.assert_close(mlp(x.permute(0, 2, 3, 1).reshape(-1, 6)), dense)


def test_bad_channels_are_named():
    with pytest.raises(ValueError, match="hidden_dim.*0"):
        ConvAdapter(4, 0, 4)

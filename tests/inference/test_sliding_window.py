import pytest
import torch
from torch import nn

from apd.inference import (
    check_sliding_window,
    default_stride,
    sliding_window_inference,
    sliding_window_starts,
)

K = 3


def _conv(kernel_size):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, K, kernel_size, padding=kernel_size // 2)
    return conv.requires_grad_(False)


def _image(h, w):
    torch.manual_seed(1)
    return torch.randn(1, 3, h, w)


def test_window_starts_and_default_stride():
    assert sliding_window_starts(10, 4, 3) == [0, 3, 6]
    assert sliding_window_starts(11, 4, 3) == [0, 3, 6, 7]  # ceil(7/3)+1 = 4 crops, last flush
    assert sliding_window_starts(4, 4, 3) == [0]
    with pytest.raises(ValueError, match="smaller than the crop"):
        sliding_window_starts(3, 4, 3)
    # ceil(2/3 · 713) = ceil(475.33) = 476; ceil(2/3 · 473) = ceil(315.33) = 316; 2/3 · 6 = 4.
    assert default_stride(713) == (476, 476)
    assert default_stride((473, 6)) == (316, 4)


def test_single_window_covering_image_equals_whole_image():
    model, image = _conv(3), _image(9, 11)  # 3×3 conv: border-sensitive, so any padding would show
    out = sliding_window_inference(model, image, K, crop_size=(9, 11))
    torch.testing.assert_close(out, model(image), rtol=0, atol=1e-5)


def test_overlapping_windows_of_pointwise_model_equal_whole_image():
    model, image = _conv(1), _image(11, 13)
    out = sliding_window_inference(model, image, K, crop_size=(4, 5), stride=(3, 2))
    torch.testing.assert_close(out, model(image), rtol=0, atol=1e-5)
    # Crop larger than the image: padding is added and cut off again.
    out = sliding_window_inference(model, image, K, crop_size=(16, 20))
    torch.testing.assert_close(out, model(image), rtol=0, atol=1e-5)


def test_overlaps_are_averaged():
    # predict_fn returns the call number everywhere: windows [0,4), [3,7), [6,10) along the width.
    calls = []

    def predict(x):
        calls.append(1)
        return torch.full((x.shape[0], 1, *x.shape[-2:]), float(len(calls)))

    out = sliding_window_inference(predict, torch.zeros(1, 3, 4, 10), 1, crop_size=4, stride=3)
    # columns 0-2: call 1; 3: (1+2)/2; 4-5: 2; 6: (2+3)/2; 7-9: 3.
    expected = torch.tensor([1, 1, 1, 1.5, 2, 2, 2.5, 3, 3, 3]).expand(1, 1, 4, 10)
    torch.testing.assert_close(out, expected)


def test_padding_is_centred_zero():
    seen = []

    def predict(x):
        seen.append(x.clone())
        return x

    image = torch.ones(1, 3, 2, 5)
    out = sliding_window_inference(predict, image, 3, crop_size=(2, 8))
    # pad 3 columns: 1 left (floor(3/2)), 2 right, as the APD test script.
    assert seen[0][0, 0, 0].tolist() == [0, 1, 1, 1, 1, 1, 0, 0]
    torch.testing.assert_close(out, image)


def test_flip_averaging_matches_definition_and_is_equivariant():
    model, image = _conv(3), _image(7, 10)
    with torch.no_grad():
        nn.init.normal_(model.weight)  # a random kernel: not left-right symmetric
    out = sliding_window_inference(model, image, K, crop_size=(7, 10), flip=True)
    torch.testing.assert_close(out, (model(image) + model(image.flip(-1)).flip(-1)) / 2)
    assert not torch.allclose(model(image.flip(-1)), model(image).flip(-1), atol=1e-3)

    # Flipping the input flips the output, also with overlapping windows whose grid is mirror
    # symmetric (width 10, crop 4, stride 3 → starts 0, 3, 6).
    for crop in [(7, 10), (4, 4)]:
        a = sliding_window_inference(model, image, K, crop_size=crop, stride=3, flip=True)
        b = sliding_window_inference(model, image.flip(-1), K, crop_size=crop, stride=3, flip=True)
        torch.testing.assert_close(b, a.flip(-1), rtol=0, atol=1e-5)


def test_bad_predict_fn_shape_is_reported():
    with pytest.raises(ValueError, match="predict_fn must map"):
        sliding_window_inference(lambda x: x[:, :2], _image(4, 4), K, crop_size=4)


def test_check_sliding_window():
    assert check_sliding_window(None) is None
    assert check_sliding_window({"crop_size": [713, 713], "flip": True}) == {
        "crop_size": (713, 713),
        "stride": (476, 476),
        "flip": True,
    }
    assert check_sliding_window({"crop_size": 8, "stride": (2, 3)})["stride"] == (2, 3)
    with pytest.raises(ValueError, match="unknown keys"):
        check_sliding_window({"crop_size": 8, "size": 3})
    with pytest.raises(ValueError, match="crop_size is required"):
        check_sliding_window({"flip": True})
    with pytest.raises(ValueError, match="crop_size"):
        check_sliding_window({"crop_size": (0, 4)})

import cv2
import numpy as np
import pytest
import torch
from detectron2.data import transforms as T
from fvcore.transforms.transform import NoOpTransform

from apd.data.transforms import (
    IMAGENET_MEAN_RGB,
    ColorPadTransform,
    GaussianBlurTransform,
    PadToCrop,
    RandomGaussianBlur,
    RandomRotationWithIgnore,
    RandomScale,
    RecipeAugmentations,
    ResizeLongestEdge,
    RotationWithPadTransform,
    build_test_augmentations,
    build_train_augmentations,
)

# IMAGENET_MEAN_RGB = (123.675, 116.28, 103.53) rounded to uint8 → (124, 116, 104).
MEAN_U8 = np.array([124, 116, 104], dtype=np.uint8)


def _blocks_label(h, w, ids=(0, 5, 17, 255)):
    """Label made of vertical stripes with the given ids (4-px wide), so every id is present."""
    cols = np.arange(w) // 4
    return np.broadcast_to(np.asarray(ids, dtype=np.uint8)[cols % len(ids)], (h, w)).copy()


def _random_image(h, w, seed=0):
    return np.random.RandomState(seed).randint(0, 256, size=(h, w, 3), dtype=np.uint8)


def _apply(augs, image, sem_seg):
    aug_input = T.AugInput(image, sem_seg=sem_seg)
    T.AugmentationList(augs)(aug_input)
    return aug_input.image, aug_input.sem_seg


def _assert_equal(actual, expected):
    actual, expected = torch.as_tensor(np.array(actual)), torch.as_tensor(np.array(expected))
    torch.testing.assert_close(actual, expected)


def test_rotation_pads_label_with_ignore_and_image_with_mean():
    image = np.full((100, 100, 3), 200, dtype=np.uint8)
    label = np.full((100, 100), 3, dtype=np.uint8)
    tfm = RotationWithPadTransform(100, 100, 45.0)
    out_img, out_lbl = tfm.apply_image(image), tfm.apply_segmentation(label)
    assert out_img.shape == (100, 100, 3) and out_lbl.shape == (100, 100)
    # A 45° rotation about the centre uncovers the corners (distance 70.7 > 50 from the centre)
    # and keeps the centre pixel covered.
    _assert_equal(out_img[0, 0], MEAN_U8)
    _assert_equal(out_lbl[0, 0], np.uint8(255))  # d2's RotationTransform would put 0 (a class) here
    _assert_equal(out_img[50, 50], np.full(3, 200, dtype=np.uint8))
    _assert_equal(out_lbl[50, 50], np.uint8(3))
    # Nearest interpolation: only the input id and the ignore id appear.
    assert set(np.unique(out_lbl).tolist()) == {3, 255}


def test_rotation_augmentation_probability_and_range():
    image = np.full((40, 40, 3), 10, dtype=np.uint8)
    never = RandomRotationWithIgnore(angle=(-10, 10), prob=0.0)
    assert all(isinstance(never.get_transform(image), NoOpTransform) for _ in range(20))
    always = RandomRotationWithIgnore(angle=(-10, 10), prob=1.0)
    angles = [always.get_transform(image).angle for _ in range(50)]
    assert all(-10 <= a <= 10 for a in angles)
    assert min(angles) < 0 < max(angles)
    with pytest.raises(ValueError, match=r"\(10, -10\)"):
        RandomRotationWithIgnore(angle=(10, -10))


def test_rotation_keeps_single_channel_axis():
    image = np.full((20, 30, 1), 50, dtype=np.uint8)
    out = RotationWithPadTransform(20, 30, 30.0, image_pad=(0.0, 0.0, 3.0)).apply_image(image)
    assert out.shape == (20, 30, 1)
    # A 3-colour pad on a 1-channel image uses the colours' mean, (0 + 0 + 3) / 3 = 1.
    assert out[0, 0, 0] == 1


def test_random_scale_range_and_aspect():
    np.random.seed(0)
    image = _random_image(40, 60)
    aug = RandomScale(0.5, 2.0)
    ratios = []
    for _ in range(50):
        tfm = aug.get_transform(image)
        # Same factor on both sides up to rounding (≤ 0.5 px each side).
        assert abs(tfm.new_h / 40 - tfm.new_w / 60) <= 0.5 / 40 + 0.5 / 60
        ratios.append(tfm.new_h / 40)
    assert 0.5 <= min(ratios) and max(ratios) <= 2.0
    assert min(ratios) < 0.8 and max(ratios) > 1.6  # uniform over the range, not stuck at one end


def test_random_scale_is_nearest_for_labels():
    image = _random_image(6, 8)
    label = np.random.RandomState(1).choice(np.array([0, 7, 255], dtype=np.uint8), size=(6, 8))
    out_img, out_lbl = _apply([RandomScale(2.0, 2.0)], image, label)
    assert out_img.shape == (12, 16, 3)
    # Exact ×2 nearest: output pixel i reads source pixel floor((i + 0.5) / 2) = i // 2.
    _assert_equal(out_lbl, np.repeat(np.repeat(label, 2, axis=0), 2, axis=1))


def test_gaussian_blur_changes_image_only():
    image = np.zeros((20, 20, 3), dtype=np.uint8)
    image[:, 10:] = 255  # vertical step edge
    label = _blocks_label(20, 20)
    out_img, out_lbl = _apply([RandomGaussianBlur(prob=1.0, kernel_size=5)], image, label)
    _assert_equal(out_lbl, label)
    _assert_equal(out_img, cv2.GaussianBlur(image, (5, 5), 0))
    assert 0 < out_img[0, 9, 0] < 255  # the edge is smoothed
    _assert_equal(out_img[:, :7], image[:, :7])  # 5×5 kernel: columns ≥ 3 px from the edge stay 0
    gray = np.full((8, 8, 1), 9, dtype=np.uint8)
    assert GaussianBlurTransform(5).apply_image(gray).shape == (8, 8, 1)
    never = RandomGaussianBlur(prob=0.0)
    assert all(isinstance(never.get_transform(image), NoOpTransform) for _ in range(10))
    with pytest.raises(ValueError, match="4"):
        RandomGaussianBlur(kernel_size=4)


def test_pad_to_crop_sizes_and_fill():
    image = _random_image(30, 50)
    label = _blocks_label(30, 50, ids=(1, 2))
    out_img, out_lbl = _apply([PadToCrop((40, 45), center=False)], image, label)
    # Height 30 → 40 (pad 10 at the bottom); width 50 ≥ 45 stays.
    assert out_img.shape == (40, 50, 3) and out_lbl.shape == (40, 50)
    _assert_equal(out_img[:30], image)
    _assert_equal(out_lbl[:30], label)
    _assert_equal(out_img[30:], np.broadcast_to(MEAN_U8, (10, 50, 3)))
    _assert_equal(out_lbl[30:], np.full((10, 50), 255, dtype=np.uint8))
    assert isinstance(PadToCrop((30, 50)).get_transform(image), NoOpTransform)


def test_pad_to_crop_center_and_inverse():
    image = _random_image(30, 50)
    tfm = PadToCrop((41, 60), image_pad=(1, 2, 3), seg_pad=9, center=True).get_transform(image)
    # Pads 11 rows → 5 top, 6 bottom; 10 columns → 5 left, 5 right.
    assert isinstance(tfm, ColorPadTransform)
    assert (tfm.x0, tfm.y0, tfm.x1, tfm.y1) == (5, 5, 5, 6)
    out = tfm.apply_image(image)
    assert out.shape == (41, 60, 3)
    _assert_equal(out[5:35, 5:55], image)
    _assert_equal(out[0, 0], np.array([1, 2, 3], dtype=np.uint8))
    _assert_equal(tfm.inverse().apply_image(out), image)


@pytest.mark.parametrize("cat_max_area", [1.0, 0.75])
@pytest.mark.parametrize("size", [(10, 12), (100, 90)])
def test_train_pipeline_output_is_crop_size_and_keeps_ids(size, cat_max_area):
    np.random.seed(3)
    ids = (0, 5, 17, 255)
    image = _random_image(*size)
    label = _blocks_label(*size, ids=ids)
    augs = build_train_augmentations(crop_size=(33, 47), cat_max_area=cat_max_area)
    for _ in range(5):
        out_img, out_lbl = _apply(augs, image, label)
        assert out_img.shape == (33, 47, 3) and out_img.dtype == np.uint8
        assert out_lbl.shape == (33, 47)
        # Nearest everywhere: no new class ids (only the ignore id can be added by pads).
        assert set(np.unique(out_lbl).tolist()) <= set(ids)


def test_builder_order_and_switches():
    (recipe,) = build_train_augmentations(crop_size=(8, 8))
    assert isinstance(recipe, RecipeAugmentations) and recipe.shape_only
    augs = recipe.augs
    assert [type(a) for a in augs] == [
        RandomScale,
        RandomRotationWithIgnore,
        RandomGaussianBlur,
        T.RandomFlip,
        PadToCrop,
        T.RandomCrop,
    ]
    assert (augs[0].min_scale, augs[0].max_scale) == (0.5, 2.0)
    assert augs[1].angle == (-10.0, 10.0) and augs[1].seg_pad == 255 and augs[1].prob == 0.5
    assert augs[4].image_pad == IMAGENET_MEAN_RGB and augs[5].crop_size == (8, 8)
    (constrained_list,) = build_train_augmentations(crop_size=(8, 8), cat_max_area=0.75, ignore_value=254)
    constrained = constrained_list.augs[-1]
    assert isinstance(constrained, T.RandomCrop_CategoryAreaConstraint)
    assert not constrained_list.shape_only  # the constrained crop reads the label: applied step by step
    assert constrained.single_category_max_area == 0.75 and constrained.ignored_category == 254
    (bare,) = build_train_augmentations(
        crop_size=(8, 8), scale=None, rotate=None, blur_prob=0, flip=False
    )
    assert [type(a) for a in bare.augs] == [PadToCrop, T.RandomCrop]


def test_builder_flip_mirrors_image_and_label_together():
    np.random.seed(5)
    image = _random_image(16, 20)
    label = _blocks_label(16, 20, ids=(1, 2, 3))
    augs = build_train_augmentations(crop_size=(16, 20), scale=None, rotate=None, blur_prob=0)
    seen = set()
    for _ in range(20):
        out_img, out_lbl = _apply(augs, image, label)
        flipped = bool(np.array_equal(out_img, image[:, ::-1]))
        assert flipped or np.array_equal(out_img, image)
        _assert_equal(out_lbl, label[:, ::-1] if flipped else label)
        seen.add(flipped)
    assert seen == {True, False}  # p = 0.5, 20 draws


def test_resize_longest_edge():
    image = _random_image(100, 50)
    (aug,) = build_test_augmentations(base_size=512)
    tfm = aug.get_transform(image)
    assert (tfm.new_h, tfm.new_w) == (512, 256)
    assert isinstance(ResizeLongestEdge(100).get_transform(image), NoOpTransform)
    assert build_test_augmentations() == []

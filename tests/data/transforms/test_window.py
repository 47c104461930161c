"""RecipeWindowTransform: the crop window computed alone equals the transforms applied one at a time
(labels bit for bit, images within their rounding), whatever the window's place, and the cases it
does not compute (other lists, other dtypes, draws that need pixels) go one transform at a time."""
import cv2
import numpy as np
import pytest
from detectron2.data import transforms as T
from fvcore.transforms.transform import NoOpTransform, TransformList

from apd.data.transforms import (
    ColorPadTransform,
    GaussianBlurTransform,
    LinearResizeTransform,
    RecipeAugmentations,
    RecipeWindowTransform,
    RotationWithPadTransform,
    build_train_augmentations,
)
from apd.data.transforms.common import nearest_exact_index


def _photo(h, w, seed=0, channels=3):
    coarse = np.random.RandomState(seed).randint(0, 256, (h // 5 + 2, w // 5 + 2, channels)).astype(np.uint8)
    out = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    return out if channels > 1 else out[:, :, None]


def _label(h, w, seed=1):
    ids = np.random.RandomState(seed).randint(0, 19, (h // 4 + 1, w // 4 + 1)).astype(np.uint8)
    return cv2.resize(ids, (w, h), interpolation=cv2.INTER_NEAREST)


def _both(tfms, image, label):
    fused = RecipeWindowTransform(tfms)
    assert fused.plan is not None  # the window path, not the list's loop
    steps = TransformList(tfms)
    return (fused.apply_image(image), fused.apply_segmentation(label)), (
        steps.apply_image(image), steps.apply_segmentation(label))


@pytest.mark.parametrize("h,w", [(1, 1), (2, 7), (37, 29), (512, 683), (97, 131)])
@pytest.mark.parametrize("scale", [0.5, 0.73, 1.0, 1.4999, 2.0])
def test_nearest_exact_indices_are_cv2_resize(h, w, scale):
    """Gathering rows and columns with the index vectors gives cv2's whole INTER_NEAREST_EXACT resize."""
    label = np.random.RandomState(0).randint(0, 255, (h, w)).astype(np.uint8)
    resize = LinearResizeTransform.by_factor(h, w, scale)
    expected = resize.apply_segmentation(label)
    rows = nearest_exact_index(h, resize.new_h)
    cols = nearest_exact_index(w, resize.new_w)
    np.testing.assert_array_equal(label[rows][:, cols], expected)


@pytest.mark.parametrize("corner", ["top-left", "bottom-right", "middle"])
@pytest.mark.parametrize("angle", [None, 9.0, -7.5])
@pytest.mark.parametrize("blur", [(5, 0.0), (7, 1.5)])
def test_window_anywhere_equals_the_steps(corner, angle, blur):
    """Windows at the image's edges (the blur's reflected border, the rotation's mean border) and inside."""
    h, w, crop = 60, 80, 24
    image, label = _photo(h, w), _label(h, w)
    resize = LinearResizeTransform.by_factor(h, w, 1.3)
    sh, sw = resize.new_h, resize.new_w
    y0, x0 = {"top-left": (0, 0), "bottom-right": (sh - crop, sw - crop), "middle": (30, 41)}[corner]
    rotation = RotationWithPadTransform(sh, sw, angle) if angle is not None else NoOpTransform()
    tfms = [resize, rotation, GaussianBlurTransform(*blur), T.HFlipTransform(sw), T.CropTransform(x0, y0, crop, crop)]
    (image_w, label_w), (image_s, label_s) = _both(tfms, image, label)
    np.testing.assert_array_equal(label_w, label_s)
    assert np.abs(image_w.astype(int) - image_s.astype(int)).max() <= 1  # uint8 rounding of each step


def test_window_that_reads_no_image_pixel_is_the_rotation_border():
    """A corner window rotated by 10° about the centre of a large image reads only the border."""
    image, label = _photo(200, 200), _label(200, 200)
    tfms = [RotationWithPadTransform(200, 200, 10.0, image_pad=(1, 2, 3), seg_pad=254), T.CropTransform(0, 0, 2, 2)]
    (image_w, label_w), (image_s, label_s) = _both(tfms, image, label)
    np.testing.assert_array_equal(image_w, np.broadcast_to(np.uint8([1, 2, 3]), (2, 2, 3)))
    np.testing.assert_array_equal(image_w, image_s)
    np.testing.assert_array_equal(label_w, np.full((2, 2), 254, np.uint8))
    np.testing.assert_array_equal(label_s, label_w)


def test_single_channel_and_pad_colours_are_kept():
    image, label = _photo(20, 30, channels=1), _label(20, 30)
    pad = ColorPadTransform(3, 5, 4, 6, 30, 20, (10.0, 20.0, 30.0), 250)  # a colour pad on 1 channel: its mean
    tfms = [pad, T.CropTransform(0, 0, 37, 31)]
    (image_w, label_w), (image_s, label_s) = _both(tfms, image, label)
    assert image_w.shape == (31, 37, 1)
    np.testing.assert_array_equal(image_w, image_s)
    np.testing.assert_array_equal(label_w, label_s)
    assert image_w[0, 0, 0] == 20 and label_w[0, 0] == 250


def test_other_lists_and_dtypes_go_one_transform_at_a_time():
    image, label = _photo(30, 40), _label(30, 40)
    crop = T.CropTransform(2, 3, 10, 12)
    # Not the recipe's order (flip after the crop): the list's own loop.
    odd = RecipeWindowTransform([crop, T.HFlipTransform(10)])
    assert odd.plan is None
    np.testing.assert_array_equal(odd.apply_image(image), image[3:15, 2:12][:, ::-1])
    # A float image: the transforms' own apply_image, dtype kept.
    fused = RecipeWindowTransform([LinearResizeTransform.by_factor(30, 40, 1.5), crop])
    as_float = fused.apply_image(image.astype(np.float32))
    assert as_float.dtype == np.float32
    np.testing.assert_array_equal(as_float, TransformList(fused.transforms).apply_image(image.astype(np.float32)))
    # Coordinates and inverse are the transforms', in order.
    points = np.array([[1.0, 2.0], [30.0, 20.0]])
    expected = TransformList(fused.transforms).apply_coords(points.copy())
    np.testing.assert_allclose(fused.apply_coords(points.copy()), expected)
    with pytest.raises(ValueError, match=r"\(30, 40\)"):
        fused.apply_image(_photo(31, 40))


def test_draws_needing_pixels_fall_back_to_the_augmentation_list():
    """The category-area crop reads the transformed label: the list is applied one augmentation at a
    time, with the same result as Detectron2's AugmentationList for the same seed."""
    (constrained,) = build_train_augmentations((24, 24), cat_max_area=0.5)
    assert isinstance(constrained, RecipeAugmentations) and not constrained.shape_only
    image, label = _photo(40, 50), _label(40, 50)
    outputs = []
    for augs in (constrained, T.AugmentationList(constrained.augs)):
        np.random.seed(4)
        aug_input = T.AugInput(image, sem_seg=label)
        augs(aug_input)
        outputs.append((aug_input.image, aug_input.sem_seg))
    np.testing.assert_array_equal(outputs[0][0], outputs[1][0])
    np.testing.assert_array_equal(outputs[0][1], outputs[1][1])


def test_random_small_cases_equal_the_augmentations_one_at_a_time():
    """Images of 1–40 pixels a side, crops larger and smaller, 1 or 3 channels, uint8 or float32 labels,
    both pad placements, the recipe's random draws: the same shapes and labels as one at a time, images
    within one grey level (one rounding against one per step). Such sizes reach the edge cases: a scale
    whose output size is the input's (cv2.resize copies), one-pixel sides, windows inside the pad."""
    rng = np.random.RandomState(0)
    for case in range(300):
        h, w, crop_h, crop_w = rng.randint(1, 41), rng.randint(1, 41), rng.randint(1, 51), rng.randint(1, 51)
        image = rng.randint(0, 256, (h, w, int(rng.choice([1, 3])))).astype(np.uint8)
        label = rng.randint(0, 5, (h, w)).astype(np.uint8 if rng.rand() < 0.8 else np.float32)
        (recipe,) = build_train_augmentations((crop_h, crop_w), pad_center=bool(rng.rand() < 0.7))
        seed = rng.randint(1 << 30)
        outputs = []
        for augs in (recipe, T.AugmentationList(recipe.augs)):
            np.random.seed(seed)
            aug_input = T.AugInput(image.copy(), sem_seg=label.copy())
            augs(aug_input)
            outputs.append((aug_input.image, aug_input.sem_seg))
        (image_w, label_w), (image_s, label_s) = outputs
        assert image_w.shape == image_s.shape == (crop_h, crop_w, image.shape[2]), case
        assert label_w.dtype == label.dtype, case
        np.testing.assert_array_equal(label_w, label_s, err_msg=str(case))
        assert np.abs(image_w.astype(int) - image_s.astype(int)).max() <= 1, case

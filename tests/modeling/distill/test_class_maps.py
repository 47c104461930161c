"""Ground-truth class maps for dense APD on FPN features: masks, boxes, overlaps, background, padding."""
import pytest
import torch
from detectron2.structures import BitMasks, Boxes, Instances, PolygonMasks

from apd.modeling.distill.class_maps import IGNORE_CLASS, batch_class_maps, box_pixel_ranges, class_map

K = 5


def instances(boxes, classes, size=(6, 8), masks=None):
    inst = Instances(size)
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.gt_classes = torch.tensor(classes, dtype=torch.long)
    if masks is not None:
        inst.gt_masks = masks
    return inst


def test_filled_boxes_smaller_over_larger_background_and_padding():
    # A large box of class 1 and a small box of class 3 inside it, listed small first.
    inst = instances([[2.0, 1.0, 4.0, 3.0], [0.0, 0.0, 6.0, 5.0]], [3, 1])
    out = class_map(inst, (8, 10), K)
    expected = torch.full((8, 10), IGNORE_CLASS)
    expected[:6, :8] = K  # in-image pixels without an object: background K
    expected[0:5, 0:6] = 1
    expected[1:3, 2:4] = 3  # the smaller object is drawn over the larger one
    assert torch.equal(out, expected)


def test_instance_masks_are_used_when_present_and_boxes_otherwise():
    masks = torch.zeros(2, 6, 8, dtype=torch.bool)
    masks[0, 0:4, 0:4] = True  # class 0, 16 px
    masks[1, 2:3, 1:7] = True  # class 2, 6 px, crosses mask 0
    inst = instances([[0.0, 0.0, 8.0, 6.0], [0.0, 0.0, 8.0, 6.0]], [0, 2], masks=BitMasks(masks))
    out = class_map(inst, (6, 8), K)
    expected = torch.full((6, 8), K)
    expected[0:4, 0:4] = 0
    expected[2, 1:7] = 2
    assert torch.equal(out, expected)
    # The same instances read as boxes: both boxes fill the image, ties keep annotation order (last wins).
    assert torch.equal(class_map(inst, (6, 8), K, source="boxes"), torch.full((6, 8), 2))
    with pytest.raises(ValueError, match="source"):
        class_map(inst, (6, 8), K, source="polygons")


def test_polygon_masks_are_rasterised():
    square = [[1.0, 1.0, 5.0, 1.0, 5.0, 4.0, 1.0, 4.0]]
    inst = instances([[1.0, 1.0, 5.0, 4.0]], [4], masks=PolygonMasks([square]))
    out = class_map(inst, (6, 8), K)
    assert (out == 4).sum() > 0 and out[0, 0] == K and out[2, 2] == 4
    assert set(out.unique().tolist()) == {4, K}


def test_image_without_objects_is_all_background_inside_and_ignore_outside():
    out = class_map(instances([], []), (8, 8), K)
    assert torch.equal(out[:6, :8], torch.full((6, 8), K))
    assert torch.equal(out[6:], torch.full((2, 8), IGNORE_CLASS))
    with pytest.raises(ValueError, match="ignore_value"):
        class_map(instances([], []), (8, 8), K, ignore_value=K)


def test_box_pixel_ranges_pixel_centres_minimum_one_pixel_and_clipping():
    boxes = torch.tensor([[0.4, 0.6, 2.5, 3.4], [3.2, 3.2, 3.3, 3.3], [-5.0, 2.0, 20.0, 9.0], [10.0, 1.0, 12.0, 2.0]])
    ranges = box_pixel_ranges(boxes, height=6, width=8)
    assert ranges.tolist() == [[1, 3, 0, 3], [3, 4, 3, 4], [2, 6, 0, 8], [1, 2, 8, 8]]  # last: outside → empty


def test_batch_class_maps_pad_every_image_to_the_batch_grid():
    batch = [instances([[0.0, 0.0, 2.0, 2.0]], [0], size=(4, 4)), instances([], [], size=(6, 8))]
    maps = batch_class_maps(batch, (6, 8), K)
    assert maps.shape == (2, 6, 8) and maps.dtype == torch.long
    assert (maps[0, 4:] == IGNORE_CLASS).all() and (maps[0, :, 4:] == IGNORE_CLASS).all()
    assert (maps[0, :2, :2] == 0).all() and (maps[1] == K).all()

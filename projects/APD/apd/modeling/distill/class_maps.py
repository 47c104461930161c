"""Ground-truth class maps of detection images: the "labels" of dense APD on FPN features (docs/METHOD.md §6b).

Per image, every pixel of the padded input grid gets one id:

- ``[0, K)``: the class of the object covering it: instance masks when the instances carry
  ``gt_masks`` (Mask R-CNN data), filled boxes otherwise (Faster R-CNN data). Where objects overlap the
  smaller one (by mask or box area) is drawn over the larger one, so small objects keep their pixels;
- ``K``: background, an in-image pixel that no object covers (a class with its own prototype, so an
  image with an object has at least two classes in its perspective);
- ``ignore_value`` (-1): padding added to batch the images.

A box covers the pixels whose centre lies inside it (at least one pixel per dimension for a box inside
the image). Shape letters: B images, N objects, H×W padded input grid (h×w without padding).
"""
from typing import List, Sequence, Tuple

import torch
from detectron2.structures import BitMasks, Instances, PolygonMasks

__all__ = ["IGNORE_CLASS", "CLASS_MAP_SOURCES", "box_pixel_ranges", "object_masks", "class_map", "batch_class_maps"]

IGNORE_CLASS = -1
CLASS_MAP_SOURCES = ("auto", "masks", "boxes")


def box_pixel_ranges(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """N×4 int64 ``(y0, y1, x0, x1)`` half-open pixel ranges covered by N×4 XYXY float boxes.

    Pixel ``j`` is covered when its centre ``j + 0.5`` lies in ``[x0, x1)``, i.e. ``round-half-up``
    of the box edges; a box with no pixel centre inside still covers one pixel, ranges are clipped to
    the h×w image (a box entirely outside covers nothing).
    """
    if boxes.numel() == 0:
        return torch.zeros(0, 4, dtype=torch.long, device=boxes.device)
    x0 = torch.floor(boxes[:, 0] + 0.5).long()
    y0 = torch.floor(boxes[:, 1] + 0.5).long()
    x1 = torch.maximum(torch.floor(boxes[:, 2] + 0.5).long(), x0 + 1)
    y1 = torch.maximum(torch.floor(boxes[:, 3] + 0.5).long(), y0 + 1)
    ranges = torch.stack([y0.clamp(0, height), y1.clamp(0, height), x0.clamp(0, width), x1.clamp(0, width)], 1)
    return ranges


def object_masks(masks, height: int, width: int, device=None) -> torch.Tensor:
    """N×h×w bool masks of ``gt_masks`` (``BitMasks``, ``PolygonMasks`` or an N×h×w tensor)."""
    if isinstance(masks, PolygonMasks):
        masks = BitMasks.from_polygon_masks(masks, height, width)
    tensor = masks.tensor if isinstance(masks, BitMasks) else torch.as_tensor(masks)
    tensor = tensor.to(device=device, dtype=torch.bool)
    if tuple(tensor.shape[-2:]) != (height, width):
        raise ValueError(f"gt_masks are {tuple(tensor.shape[-2:])} but the image is {(height, width)}")
    return tensor


def class_map(
    instances: Instances,
    padded_size: Tuple[int, int],
    num_classes: int,
    source: str = "auto",
    ignore_value: int = IGNORE_CLASS,
) -> torch.Tensor:
    """The H×W int64 class map of one image (see the module docstring).

    Args:
        instances: the image's ground truth: ``gt_classes`` (N in [0, K)), ``gt_boxes`` and, for
            ``source`` "masks" (or "auto" when present), ``gt_masks``; ``image_size`` = (h, w).
        padded_size: (H, W) of the batched input tensor, H ≥ h and W ≥ w.
        num_classes: K; the background id is K.
        source: "auto" (masks when ``gt_masks`` exists, else boxes), "masks" or "boxes".
        ignore_value: id of padding pixels (must not be a class id in [0, K]).
    """
    if source not in CLASS_MAP_SOURCES:
        raise ValueError(f"source must be one of {CLASS_MAP_SOURCES}, got {source!r}")
    if 0 <= ignore_value <= num_classes:
        raise ValueError(f"ignore_value={ignore_value} is a class id of the class map (0..{num_classes})")
    height, width = (int(s) for s in instances.image_size)
    padded_h, padded_w = (int(s) for s in padded_size)
    if height > padded_h or width > padded_w:
        raise ValueError(f"image {(height, width)} is larger than the padded size {(padded_h, padded_w)}")
    classes = instances.gt_classes
    device = classes.device
    out = torch.full((padded_h, padded_w), ignore_value, dtype=torch.long, device=device)
    inside = out[:height, :width]
    inside.fill_(num_classes)
    if len(instances) == 0:
        return out
    use_masks = source == "masks" or (source == "auto" and instances.has("gt_masks"))
    if use_masks:
        masks = object_masks(instances.gt_masks, height, width, device)
        areas = masks.flatten(1).sum(1)
    else:
        ranges = box_pixel_ranges(instances.gt_boxes.tensor, height, width)
        areas = (ranges[:, 1] - ranges[:, 0]) * (ranges[:, 3] - ranges[:, 2])
    # Largest first, so that smaller objects are drawn over larger ones (ties: annotation order).
    order = torch.argsort(areas, descending=True, stable=True).tolist()
    labels = classes.tolist()
    if use_masks:
        for i in order:
            inside[masks[i]] = labels[i]
    else:
        for i, (y0, y1, x0, x1) in zip(order, ranges[order].tolist()):
            inside[y0:y1, x0:x1] = labels[i]
    return out


def batch_class_maps(
    instances: Sequence[Instances],
    padded_size: Tuple[int, int],
    num_classes: int,
    source: str = "auto",
    ignore_value: int = IGNORE_CLASS,
) -> torch.Tensor:
    """B×H×W int64: :func:`class_map` of every image of a batch."""
    maps: List[torch.Tensor] = [class_map(x, padded_size, num_classes, source, ignore_value) for x in instances]
    return torch.stack(maps)

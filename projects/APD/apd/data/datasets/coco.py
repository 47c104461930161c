"""COCO-format instance annotations, checked: what the models cannot use is dropped and named.

Detectron2's ``load_coco_json`` keeps boxes with zero or negative width/height and NaN coordinates.
Its XYWH→XYXY conversion turns a negative width into a box mirrored to the left of ``x``, the
mapper's ``filter_empty_instances`` then drops zero-area boxes without a word, and NaN coordinates
reach the losses. It drops objects whose polygons all have fewer than 3 points with one anonymous
count, while ``COCOEvaluator`` keeps them in its ground truth and pycocotools fails on them with a
``TypeError``.

Here one rule (:func:`find_unusable_annotations`) decides, for training (the registered loader) and
for evaluation (:class:`apd.evaluation.COCOEvaluator`) alike:

- an annotation without a box, or whose box is not 4 finite numbers with width > 0 and height > 0,
  or whose box lies entirely outside its image (Detectron2 clips it to nothing and drops it), is
  dropped;
- polygons with fewer than 3 points (< 6 coordinates), an odd number of coordinates, non-finite
  coordinates or an area of 0 (e.g. three identical or collinear points: rasterised, an empty mask)
  are removed from an object; an object left with no polygon (including
  ``"segmentation": []``) is dropped. RLE masks and a missing ``segmentation`` key are kept.

Each load logs one warning naming the json file, the number dropped and the first annotation ids
with their reasons. An image left without usable annotations counts as empty: Detectron2's
``filter_empty=True`` then leaves it out of training.
"""
import json
import logging
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json
from detectron2.utils.file_io import PathManager

__all__ = [
    "find_unusable_annotations",
    "load_coco_json_checked",
    "register_coco_instances_checked",
    "use_checked_coco_loader",
    "warn_unusable_annotations",
]

logger = logging.getLogger(__name__)


def _box_problem(anno: Mapping[str, Any], image_hw: Optional[Tuple[float, float]] = None) -> Optional[str]:
    box = anno.get("bbox")
    if box is None:
        return "no bbox"
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        return f"bbox {box!r} is not [x, y, w, h]"
    try:
        x, y, w, h = (float(v) for v in box)
    except (TypeError, ValueError):
        return f"bbox {box!r} is not numeric"
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        return f"bbox {list(box)} is not finite"
    if w <= 0 or h <= 0:
        return f"bbox width/height {w:g}×{h:g} not > 0"
    if image_hw is not None:
        height, width = image_hw
        if x >= width or y >= height or x + w <= 0 or y + h <= 0:
            return f"bbox {[x, y, w, h]} lies outside the {width:g}×{height:g} image"
    return None


def _valid_polygon(poly: Any) -> bool:
    if not isinstance(poly, (list, tuple)) or len(poly) < 6 or len(poly) % 2:
        return False
    try:
        xs, ys = [float(v) for v in poly[0::2]], [float(v) for v in poly[1::2]]
    except (TypeError, ValueError):
        return False
    if not all(math.isfinite(v) for v in xs + ys):
        return False
    # Shoelace formula: twice the signed area.
    return sum(xs[i - 1] * ys[i] - xs[i] * ys[i - 1] for i in range(len(xs))) != 0


def find_unusable_annotations(
    annotations: Sequence[Mapping[str, Any]],
    images: Optional[Sequence[Mapping[str, Any]]] = None,
) -> Tuple[Dict[Any, str], Dict[Any, List[List[float]]]]:
    """Apply the module's rule to COCO json annotations.

    Args:
        annotations: the ``"annotations"`` list of a COCO json (dicts with ``id``, ``bbox`` in
            XYWH pixels, optional ``segmentation``).
        images: the ``"images"`` list (``id``, ``height``, ``width``); without it boxes are not
            checked against their image.

    Returns:
        ``(dropped, trimmed)``: ``dropped`` maps the id of every annotation to drop to its reason;
        ``trimmed`` maps the id of every kept annotation that lost some (not all) polygons to its
        remaining polygons.
    """
    dropped, trimmed = {}, {}
    sizes = {}
    for image in images or ():
        try:
            sizes[image["id"]] = (float(image["height"]), float(image["width"]))
        except (KeyError, TypeError, ValueError):
            continue
    for anno in annotations:
        ann_id = anno.get("id")
        problem = _box_problem(anno, sizes.get(anno.get("image_id")))
        if problem is None:
            segm = anno.get("segmentation", None)
            if isinstance(segm, (list, tuple)):
                valid = [poly for poly in segm if _valid_polygon(poly)]
                if not valid:
                    points = ", ".join(str(len(p) // 2 if isinstance(p, (list, tuple)) else "?") for p in segm)
                    problem = f"no polygon with ≥ 3 points and an area > 0 (points: {points or 'none'})"
                elif len(valid) < len(segm):
                    trimmed[ann_id] = valid
        if problem is not None:
            dropped[ann_id] = problem
    return dropped, trimmed


def warn_unusable_annotations(json_file: str, dropped: Mapping[Any, str], where: str,
                              num_empty_images: Optional[int] = None, shown: int = 10) -> None:
    """One warning naming ``json_file``, the count and the first ``shown`` ids with reasons."""
    if not dropped:
        return
    items = list(dropped.items())
    listed = "; ".join(f"id {ann_id}: {reason}" for ann_id, reason in items[:shown])
    more = f"; and {len(items) - shown} more" if len(items) > shown else ""
    empty = (f" {num_empty_images} image(s) are left without usable annotations and count as empty."
             if num_empty_images else "")
    logger.warning(f"{json_file}: dropped {len(items)} unusable annotation(s) {where} ({listed}{more}).{empty}")


def load_coco_json_checked(json_file: str, image_root: str, dataset_name: Optional[str] = None,
                           extra_annotation_keys: Optional[List[str]] = None) -> List[dict]:
    """Detectron2's ``load_coco_json`` with unusable annotations dropped and named.

    Args / returns: as ``detectron2.data.datasets.load_coco_json``; every annotation also keeps
    its json ``id``.

    Raises:
        ValueError: naming ``json_file``, when it is not JSON, has no ``images`` list, or has
            annotations whose ``category_id`` is not in ``categories`` (Detectron2's KeyError does
            not name the file).

    The json is read once more to find the unusable annotations (Detectron2's loader does not
    report which objects it drops), then those are removed from the records.
    """
    with PathManager.open(json_file, "r") as f:
        try:
            raw = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{json_file}: not valid JSON ({e})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("images"), list):
        raise ValueError(f"{json_file}: not a COCO annotation file (no 'images' list)")
    annotations = raw.get("annotations", [])
    categories = {c.get("id") for c in raw.get("categories", [])}
    unknown = [a.get("id") for a in annotations if a.get("category_id") not in categories]
    if unknown and "annotations" in raw:
        shown = ", ".join(str(i) for i in unknown[:10]) + (", ..." if len(unknown) > 10 else "")
        raise ValueError(f"{json_file}: {len(unknown)} annotation(s) (ids {shown}) have a category_id "
                         "that is not in 'categories'")
    dropped, _ = find_unusable_annotations(annotations, raw.get("images"))
    del raw, annotations
    keys = list(extra_annotation_keys or [])
    if "id" not in keys:
        keys.append("id")
    records = load_coco_json(json_file, image_root, dataset_name, extra_annotation_keys=keys)
    num_empty = 0
    if dropped:
        for record in records:
            annos = record.get("annotations", [])
            kept = [a for a in annos if a.get("id") not in dropped]
            if len(kept) < len(annos):
                record["annotations"] = kept
                if not any(a.get("iscrowd", 0) == 0 for a in kept):
                    num_empty += 1
    warn_unusable_annotations(json_file, dropped, "for training and evaluation", num_empty)
    return records


def register_coco_instances_checked(name: str, metadata: dict, json_file: str, image_root: str) -> None:
    """``register_coco_instances`` with :func:`load_coco_json_checked` as the loader (same metadata)."""
    DatasetCatalog.register(name, lambda: load_coco_json_checked(json_file, image_root, name))
    MetadataCatalog.get(name).set(json_file=json_file, image_root=image_root, evaluator_type="coco",
                                  **metadata)


def use_checked_coco_loader(names: Sequence[str]) -> List[str]:
    """Swap the loader of already registered COCO-json datasets for :func:`load_coco_json_checked`.

    Detectron2 registers ``coco_2017_train`` etc. at import; their metadata (``json_file``,
    ``image_root``, classes) is kept. Names that are not registered or have no ``json_file`` are
    left alone.

    Returns:
        The names whose loader was swapped.
    """
    swapped = []
    registered = set(DatasetCatalog.list())
    for name in names:
        if name not in registered:
            continue
        meta = MetadataCatalog.get(name)
        json_file, image_root = meta.get("json_file", None), meta.get("image_root", None)
        if json_file is None or image_root is None:
            continue
        DatasetCatalog.remove(name)
        DatasetCatalog.register(
            name, lambda j=json_file, i=image_root, n=name: load_coco_json_checked(j, i, n)
        )
        swapped.append(name)
    return swapped

"""COCO box / mask AP: Detectron2's ``COCOEvaluator`` with three faults handled at the boundary.

1. Tasks. Detectron2 infers them from the predictions, so a Mask R-CNN run with zero detections
   reports no ``segm`` entry at all. Here they come from the config: ``tasks`` explicitly, or
   ``use_instance_mask`` (the configs pass ``dataloader.train.mapper.use_instance_mask``).
2. Zero detections. Detectron2 skips pycocotools and reports NaN; pycocotools itself gives AP 0
   for every category that has ground truth. Here the zero-detection case runs pycocotools on an
   empty result set, so AP/AP50/AP75 are 0 (an area range without ground truth stays NaN, as
   pycocotools reports it).
3. Unusable ground truth. The evaluator's ground truth is the json file, which may hold boxes
   with width/height ≤ 0 and polygons with < 3 points that training drops; pycocotools fails on
   the latter with a ``TypeError``. Here the same rule as the training loader
   (:func:`apd.data.datasets.coco.find_unusable_annotations`) is applied to the ground truth, with
   one warning naming the file and the annotation ids.
"""
import contextlib
import copy
import io
import itertools
from typing import Optional, Sequence

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detectron2.evaluation import COCOEvaluator as _D2COCOEvaluator

from apd.data.datasets.coco import find_unusable_annotations, warn_unusable_annotations

__all__ = ["COCOEvaluator"]


class COCOEvaluator(_D2COCOEvaluator):
    """Detectron2's ``COCOEvaluator`` (same results: ``bbox``/``segm`` → ``AP``, ``AP50``, ``AP75``,
    ``APs``, ``APm``, ``APl``, ``AP-<class>``, in percent), with the fixes of the module docstring.

    Args:
        dataset_name: a registered COCO-format dataset.
        tasks: e.g. ``("bbox", "segm")``. When None, ``("bbox", "segm")`` if ``use_instance_mask``
            else ``("bbox",)``.
        use_instance_mask: whether the model predicts masks; only read when ``tasks`` is None.
        Other arguments: as Detectron2's.

    Raises:
        ValueError (on ``evaluate``): ``segm`` is requested but the predictions carry no masks.
    """

    def __init__(self, dataset_name: str, tasks: Optional[Sequence[str]] = None, distributed: bool = True,
                 output_dir: Optional[str] = None, *, use_instance_mask: bool = False, **kwargs):
        if tasks is None:
            tasks = ("bbox", "segm") if use_instance_mask else ("bbox",)
        super().__init__(dataset_name, tuple(tasks), distributed, output_dir, **kwargs)
        self._drop_unusable_ground_truth()

    def _drop_unusable_ground_truth(self) -> None:
        api = getattr(self, "_coco_api", None)
        if api is None or "annotations" not in api.dataset:
            return
        dropped, trimmed = find_unusable_annotations(api.dataset["annotations"], api.dataset.get("images"))
        if not dropped and not trimmed:
            return
        kept = []
        for anno in api.dataset["annotations"]:
            ann_id = anno.get("id")
            if ann_id in dropped:
                continue
            if ann_id in trimmed:
                anno = dict(anno, segmentation=trimmed[ann_id])
            kept.append(anno)
        api.dataset["annotations"] = kept
        with contextlib.redirect_stdout(io.StringIO()):
            api.createIndex()
        warn_unusable_annotations(self._metadata.get("json_file", self._metadata.name), dropped,
                                  "from the evaluation ground truth")

    def _eval_predictions(self, predictions, img_ids=None):
        coco_results = list(itertools.chain(*[x["instances"] for x in predictions]))
        if "segm" in self._tasks and coco_results and not any("segmentation" in r for r in coco_results):
            raise ValueError(
                f"COCOEvaluator('{self._metadata.name}') evaluates 'segm' but the predictions have no "
                "masks: set tasks=('bbox',) (or dataloader.train.mapper.use_instance_mask=False) for a "
                "model without a mask head."
            )
        if coco_results or not self._do_evaluation:  # (no ground truth, e.g. test-dev: d2 only saves)
            return super()._eval_predictions(predictions, img_ids)
        self._logger.warning(f"COCOEvaluator('{self._metadata.name}'): no detections; every AP is 0.")
        for task in sorted(self._tasks):
            coco_eval = self._evaluate_without_detections(task, img_ids)
            self._results[task] = self._derive_coco_results(
                coco_eval, task, class_names=self._metadata.get("thing_classes")
            )
        return None

    def _evaluate_without_detections(self, iou_type: str, img_ids=None) -> COCOeval:
        """pycocotools on an empty result set (its ``loadRes`` cannot take an empty list)."""
        gt = self._coco_api
        dt = COCO()
        dt.dataset = {"images": copy.deepcopy(gt.dataset.get("images", [])),
                      "categories": copy.deepcopy(gt.dataset.get("categories", [])),
                      "annotations": []}
        with contextlib.redirect_stdout(io.StringIO()):
            dt.createIndex()
            coco_eval = COCOeval(gt, dt, iou_type)
            coco_eval.params.maxDets = list(self._max_dets_per_image)
            if img_ids is not None:
                coco_eval.params.imgIds = list(img_ids)
            coco_eval.evaluate()
            coco_eval.accumulate()
        coco_eval.summarize()
        return coco_eval

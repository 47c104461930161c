"""DetectionDatasetMapper: Detectron2's ``DatasetMapper`` reading with the project's checked reader."""
import copy
from typing import Any, Dict, Optional

import numpy as np
import torch

from detectron2.config import configurable
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from .dataset_mapper import record_skipped_sample
from .image_io import BadSampleError, read_image

__all__ = ["DetectionDatasetMapper"]


class DetectionDatasetMapper(DatasetMapper):
    """Detectron2's ``DatasetMapper`` (same arguments, same steps, same output) for the COCO configs,
    reading the image with :func:`apd.data.image_io.read_image` instead of Detectron2's reader.

    Raises:
        BadSampleError: the message names the file. The image is truncated or corrupt, is stored
            with more than 8 bits per sample (``I;16``, ``I``, ``F``) or has transparent pixels
            (Detectron2's ``read_image`` would clip such an image to 0..255 or drop its alpha
            without a word), or its size differs from the record's ``height``/``width``. Also an
            image with an EXIF rotation/flip tag when the record has annotations: Detectron2
            applies the tag, and whether the boxes were drawn on the stored or on the displayed
            pixels cannot be told (a flip or a 180° turn, or any turn of a square image, keeps the
            size, so nothing else would catch the misalignment).
            ``exif_with_annotations="apply"`` accepts such images with the tag applied
            (Detectron2's behaviour), for annotations made on the displayed image.

    With ``skip_bad_samples=True`` and ``is_train=True`` a bad sample is logged (a warning naming
    the file), counted in ``num_skipped`` (and in the event-storage scalar
    ``data/skipped_samples`` where a storage is active) and the mapper returns None, so the loader
    draws another sample, as :class:`apd.data.dataset_mapper.SemSegDatasetMapper` does. At test
    time errors always raise.
    """

    @configurable
    def __init__(
        self,
        is_train: bool,
        *,
        exif_with_annotations: str = "refuse",
        skip_bad_samples: bool = False,
        **kwargs,
    ):
        """
        Args:
            is_train, **kwargs: as Detectron2's ``DatasetMapper``.
            exif_with_annotations: "refuse" (default) or "apply", see the class docstring.
            skip_bad_samples: in training, return None for a bad sample instead of raising.
        """
        if exif_with_annotations not in ("refuse", "apply"):
            raise ValueError(f"exif_with_annotations must be 'refuse' or 'apply', got {exif_with_annotations!r}")
        super().__init__(is_train, **kwargs)
        self.exif_with_annotations = exif_with_annotations
        self.skip_bad_samples = skip_bad_samples
        self.num_skipped = 0

    def __call__(self, dataset_dict: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """
        Args:
            dataset_dict: one record in Detectron2's dataset format (not modified).

        Returns:
            Detectron2's ``DatasetMapper`` output, or None for a skipped sample.
        """
        try:
            return self._map(dataset_dict)
        except BadSampleError as err:
            if not (self.skip_bad_samples and self.is_train):
                raise
            self.num_skipped += 1
            record_skipped_sample(self.num_skipped, err)
            return None

    def _map(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        # The steps of Detectron2's DatasetMapper.__call__, with the checked reader.
        dataset_dict = copy.deepcopy(dataset_dict)
        file_name = dataset_dict["file_name"]
        image, orientation = read_image(file_name, self.image_format, return_orientation=True)
        if (
            dataset_dict.get("annotations")
            and self.exif_with_annotations == "refuse"
            and orientation not in (None, 1)
        ):
            raise BadSampleError(
                f"Image {file_name} has EXIF orientation {orientation}, which rotates or mirrors it "
                "when read, and it has annotations: whether they follow the stored or the displayed "
                "pixels cannot be told. Store the image upright without the tag (e.g. "
                "PIL.ImageOps.exif_transpose) with annotations in that frame, or set "
                "dataloader.{train,test}.mapper.exif_with_annotations=apply if the annotations "
                "follow the displayed image."
            )
        try:
            utils.check_image_size(dataset_dict, image)
        except utils.SizeMismatchError as err:
            raise BadSampleError(str(err)) from err

        sem_seg_gt = None
        if "sem_seg_file_name" in dataset_dict:
            sem_seg_gt = read_image(dataset_dict.pop("sem_seg_file_name"), "L", what="label")[:, :, 0]

        aug_input = T.AugInput(image, sem_seg=sem_seg_gt)
        transforms = self.augmentations(aug_input)
        image, sem_seg_gt = aug_input.image, aug_input.sem_seg
        image_shape = image.shape[:2]
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if sem_seg_gt is not None:
            dataset_dict["sem_seg"] = torch.as_tensor(sem_seg_gt.astype("long"))
        if self.proposal_topk is not None:
            utils.transform_proposals(dataset_dict, image_shape, transforms, proposal_topk=self.proposal_topk)
        if not self.is_train:
            dataset_dict.pop("annotations", None)
            dataset_dict.pop("sem_seg_file_name", None)
            return dataset_dict
        if "annotations" in dataset_dict:
            self._transform_annotations(dataset_dict, transforms, image_shape)
        return dataset_dict

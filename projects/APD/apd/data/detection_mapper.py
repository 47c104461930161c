"""DetectionDatasetMapper: Detectron2's ``DatasetMapper`` that refuses images it would convert wrongly."""
from typing import Any, Dict

from detectron2.config import configurable
from detectron2.data import DatasetMapper

from .dataset_mapper import BadSampleError
from .image_io import UnsupportedImageError, check_image_mode, exif_orientation

__all__ = ["DetectionDatasetMapper"]


class DetectionDatasetMapper(DatasetMapper):
    """Detectron2's ``DatasetMapper`` (same arguments and output) for the COCO configs, with the
    image mode checked first (:func:`apd.data.image_io.check_image_mode`).

    Raises:
        BadSampleError: the image is stored with more than 8 bits per sample (``I;16``, ``I``,
            ``F``) or has transparent pixels; the message names the file and the mode. Detectron2's
            ``read_image`` would clip such an image to 0..255 or drop its alpha without a word.
            Also an image with an EXIF rotation/flip tag when the record has annotations:
            Detectron2 applies the tag, and whether the boxes were drawn on the stored or on the
            displayed pixels cannot be told (a flip or a 180° turn, or any turn of a square image,
            keeps the size, so nothing else would catch the misalignment).
            ``exif_with_annotations="apply"`` accepts such images with the tag applied
            (Detectron2's behaviour), for annotations made on the displayed image.
    """

    @configurable
    def __init__(self, is_train: bool, *, exif_with_annotations: str = "refuse", **kwargs):
        """
        Args:
            is_train, **kwargs: as Detectron2's ``DatasetMapper``.
            exif_with_annotations: "refuse" (default) or "apply", see the class docstring.
        """
        if exif_with_annotations not in ("refuse", "apply"):
            raise ValueError(f"exif_with_annotations must be 'refuse' or 'apply', got {exif_with_annotations!r}")
        super().__init__(is_train, **kwargs)
        self.exif_with_annotations = exif_with_annotations

    def __call__(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        file_name = dataset_dict["file_name"]
        try:
            check_image_mode(file_name)
        except UnsupportedImageError as err:
            raise BadSampleError(str(err)) from err
        if dataset_dict.get("annotations") and self.exif_with_annotations == "refuse":
            orientation = exif_orientation(file_name)
            if orientation not in (None, 1):
                raise BadSampleError(
                    f"Image {file_name} has EXIF orientation {orientation}, which rotates or mirrors it "
                    "when read, and it has annotations: whether they follow the stored or the displayed "
                    "pixels cannot be told. Store the image upright without the tag (e.g. "
                    "PIL.ImageOps.exif_transpose) with annotations in that frame, or set "
                    "dataloader.{train,test}.mapper.exif_with_annotations=apply if the annotations "
                    "follow the displayed image."
                )
        return super().__call__(dataset_dict)

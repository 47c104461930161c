"""DetectionDatasetMapper: Detectron2's ``DatasetMapper`` that refuses images it would convert wrongly."""
from typing import Any, Dict

from detectron2.data import DatasetMapper

from .dataset_mapper import BadSampleError
from .image_io import UnsupportedImageError, check_image_mode

__all__ = ["DetectionDatasetMapper"]


class DetectionDatasetMapper(DatasetMapper):
    """Detectron2's ``DatasetMapper`` (same arguments and output) for the COCO configs, with the
    image mode checked first (:func:`apd.data.image_io.check_image_mode`).

    Raises:
        BadSampleError: the image is stored with more than 8 bits per sample (``I;16``, ``I``,
            ``F``) or has transparent pixels; the message names the file and the mode. Detectron2's
            ``read_image`` would clip such an image to 0..255 or drop its alpha without a word.
    """

    def __call__(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        try:
            check_image_mode(dataset_dict["file_name"])
        except UnsupportedImageError as err:
            raise BadSampleError(str(err)) from err
        return super().__call__(dataset_dict)

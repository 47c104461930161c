"""SemSegDatasetMapper: reads and validates an image and its label map, applies augmentations.

A semantic-segmentation counterpart of Detectron2's ``DatasetMapper`` that checks its inputs:
every error names the offending file, and broken training samples can be skipped instead of
stopping a run.
"""
import copy
import functools
import logging
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from detectron2.data import transforms as T
from detectron2.utils.events import get_event_storage, has_event_storage

from .image_io import BadSampleError, read_image

__all__ = ["BadSampleError", "SemSegDatasetMapper", "has_valid_label", "record_skipped_sample", "to_chw"]

logger = logging.getLogger(__name__)


class SemSegDatasetMapper:
    """Map a Detectron2 dataset dict (``file_name``, optional ``sem_seg_file_name``) to inputs.

    Steps: read the image in ``image_format`` and the label map as stored (both with
    :func:`apd.data.image_io.read_image`) (``L`` or palette ``P``
    PNGs give their class ids directly; Detectron2's ``DatasetMapper`` converts labels to ``L``,
    which would turn palette colours into grey levels) → validate → apply ``augmentations``
    jointly (``AugInput`` with ``sem_seg``) → convert to tensors.

    Output dict (the input dict's other keys are kept, as in Detectron2):
        - ``image``: uint8 tensor 3×H×W (C×H×W), 0–255, channels in ``image_format``, contiguous;
        - ``sem_seg``: int64 tensor H×W in [0, num_classes) ∪ {ignore_value}, when a label exists
          (kept at test time too, as Detectron2 does; ``SemSegEvaluator`` reads label files
          itself);
        - ``height``, ``width``: the *original* image size (the evaluator's output size);
        - ``file_name``.

    Validation (each failure raises :class:`BadSampleError`, a ``ValueError`` naming the file):
    unreadable / truncated image or label, label with several channels, label size ≠ image size,
    image size ≠ the dict's ``height``/``width``, label ids outside
    [0, num_classes) ∪ {ignore_value} (the message lists the bad ids; non-integral values of a
    float label count as outside), an image stored with more than 8 bits per sample (``I;16``,
    ``I``, ``F``) or with transparent pixels (see :mod:`apd.data.image_io`), and an image with an
    EXIF rotation when it has a label map, and a label stored as JPEG (lossy: ids change at edges).
    A label map that is entirely ``ignore_value`` is valid.

    With ``skip_bad_samples=True`` and ``is_train=True`` a bad sample is logged (a warning with the
    file), counted in ``num_skipped`` and in the event-storage scalar ``data/skipped_samples`` when
    a storage is active in this process, and the mapper returns None: Detectron2's ``MapDataset``
    then maps another random index. At test time errors always raise, because a substituted
    sample would be evaluated in place of the broken one. With ``num_workers > 0`` each worker
    process keeps its own count and the scalar is not recorded (worker processes have no active
    storage); the warnings are.

    With ``redraw_crops_without_label=True`` (the recipe configs) a training sample whose augmented
    label holds no valid class is dropped the same way (None, another sample is drawn) without a
    warning, as the official dataset reloads another image: the test is the official one, the
    label resized to 60×60 bilinearly (``align_corners=True``), rounded to integers, and no value
    other than ``ignore_value`` left (:func:`has_valid_label`). Counted in ``num_redrawn``.
    """

    def __init__(
        self,
        *,
        is_train: bool,
        augmentations: Sequence[Union[T.Augmentation, T.Transform]],
        num_classes: int,
        image_format: str = "RGB",
        ignore_value: int = 255,
        skip_bad_samples: bool = False,
        redraw_crops_without_label: bool = False,
    ):
        """
        Args:
            is_train: training mode (enables skipping bad samples); augmentations are whatever is
                passed, so test configs pass none or a resize only.
            augmentations: Detectron2 augmentations/transforms applied in order to image and label,
                e.g. :func:`apd.data.transforms.build_train_augmentations` (a list holding one
                ``AugmentationList``, which becomes ``self.augmentations`` itself).
            num_classes: K; valid label ids are 0..K−1 plus ``ignore_value``.
            image_format: any format of :func:`apd.data.image_io.read_image`
                ("RGB", "BGR", ...); must match the model's ``input_format``.
            ignore_value: label id that marks unlabelled pixels (and padding).
            skip_bad_samples: in training, return None for a bad sample instead of raising.
            redraw_crops_without_label: in training, return None for a sample whose augmented
                label fails the official validity test (class docstring).
        """
        if num_classes < 1:
            raise ValueError(f"SemSegDatasetMapper needs num_classes >= 1, got {num_classes}.")
        self.is_train = is_train
        augmentations = list(augmentations)
        if len(augmentations) == 1 and isinstance(augmentations[0], T.AugmentationList):
            # e.g. the recipe's RecipeAugmentations: used as it is (its own __call__), ``.augs`` its list
            self.augmentations = augmentations[0]
        else:
            self.augmentations = T.AugmentationList(augmentations)
        self.num_classes = int(num_classes)
        self.image_format = image_format
        self.ignore_value = int(ignore_value)
        self.skip_bad_samples = skip_bad_samples
        self.num_skipped = 0
        self.redraw_crops_without_label = redraw_crops_without_label
        self.num_redrawn = 0
        mode = "training" if is_train else "inference"
        logger.info(f"[SemSegDatasetMapper] Augmentations used in {mode}: {list(augmentations)}")

    def __call__(self, dataset_dict: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """
        Args:
            dataset_dict: one record in Detectron2's dataset format (not modified).

        Returns:
            The model input dict described in the class docstring, or None for a skipped sample.
        """
        try:
            out, label = self._map(dataset_dict)
        except BadSampleError as err:
            if not (self.skip_bad_samples and self.is_train):
                raise
            self.num_skipped += 1
            record_skipped_sample(self.num_skipped, err)
            return None
        if (
            self.redraw_crops_without_label
            and self.is_train
            and label is not None
            # on the augmented label before its int64 copy (reading 1 byte per pixel, not 8)
            and not has_valid_label(torch.from_numpy(label), self.ignore_value)
        ):
            self.num_redrawn += 1
            logger.debug(f"Redrawing: the crop of {out['file_name']} has no valid label ({self.num_redrawn} so far).")
            return None
        return out

    def _map(self, dataset_dict: Dict[str, Any]) -> Tuple[Dict[str, Any], Optional[np.ndarray]]:
        """The output dict and the augmented label array (None without a label)."""
        dataset_dict = copy.deepcopy(dataset_dict)
        file_name = dataset_dict["file_name"]
        image, orientation = read_image(file_name, self.image_format, return_orientation=True)
        self._check_image_size(dataset_dict, image)

        label_file = dataset_dict.pop("sem_seg_file_name", None)
        if label_file is not None:
            _check_no_exif_rotation(file_name, orientation, label_file)
        sem_seg = None
        if label_file is not None:
            sem_seg = self._load_label(label_file, image.shape[:2], file_name)

        aug_input = T.AugInput(image, sem_seg=sem_seg)
        self.augmentations(aug_input)
        image, sem_seg = aug_input.image, aug_input.sem_seg

        dataset_dict["image"] = torch.as_tensor(to_chw(image))
        if sem_seg is not None:
            if sem_seg.shape != image.shape[:2]:
                raise AssertionError(
                    f"Augmentations {self.augmentations} produced a label of shape {sem_seg.shape} "
                    f"for an image of shape {image.shape[:2]} ({file_name})."
                )
            sem_seg = np.ascontiguousarray(sem_seg)
            dataset_dict["sem_seg"] = torch.as_tensor(sem_seg.astype(np.int64))
        return dataset_dict, sem_seg

    @staticmethod
    def _check_image_size(dataset_dict: Dict[str, Any], image: np.ndarray) -> None:
        h, w = image.shape[:2]
        if "height" in dataset_dict or "width" in dataset_dict:
            expected = (dataset_dict.get("height"), dataset_dict.get("width"))
            if expected != (h, w):
                raise BadSampleError(
                    f"Image {dataset_dict['file_name']} is {h}×{w} (h×w) but its dataset dict says "
                    f"{expected[0]}×{expected[1]}."
                )
        dataset_dict["height"], dataset_dict["width"] = h, w

    def _load_label(self, label_file: str, image_hw: Tuple[int, int], file_name: str) -> np.ndarray:
        if label_file.lower().endswith((".jpg", ".jpeg")):
            # JPEG is lossy: ids blur into their neighbours at every edge, often into valid ids.
            raise BadSampleError(
                f"Label {label_file} is a JPEG; label maps must be stored losslessly (PNG), since JPEG "
                "compression changes class ids at every edge."
            )
        label = read_image(label_file, None, what="label")
        if label.ndim == 3:
            if label.shape[2] != 1:
                raise BadSampleError(
                    f"Label {label_file} has {label.shape[2]} channels; expected a single-channel "
                    "map of class ids (PNG mode 'L' or 'P')."
                )
            label = label[:, :, 0]
        if label.ndim != 2:
            raise BadSampleError(f"Label {label_file} has shape {label.shape}; expected H×W.")
        if label.shape != tuple(image_hw):
            raise BadSampleError(
                f"Label {label_file} is {label.shape[0]}×{label.shape[1]} (h×w) but image "
                f"{file_name} is {image_hw[0]}×{image_hw[1]}."
            )
        bad = self._invalid_ids(label)
        if bad.size:
            shown = ", ".join(str(v) for v in bad[:10].tolist())
            shown += ", ..." if bad.size > 10 else ""
            raise BadSampleError(
                f"Label {label_file} has ids [{shown}] outside [0, {self.num_classes}) ∪ "
                f"{{{self.ignore_value}}} (num_classes={self.num_classes}, "
                f"ignore_value={self.ignore_value})."
            )
        return self._to_working_dtype(label)

    def _invalid_ids(self, label: np.ndarray) -> np.ndarray:
        """Sorted distinct ids of ``label`` that are neither a class nor the ignore id."""
        if label.dtype == np.uint8:
            label = np.ascontiguousarray(label)
            # The usual case, no bad id: one cv2.inRange count per range of bad ids (~8× faster than
            # the histogram below on a 512×683 label).
            ranges = _bad_uint8_ranges(self.num_classes, self.ignore_value)
            if not any(cv2.countNonZero(cv2.inRange(label, lo, hi)) for lo, hi in ranges):
                return np.empty(0, dtype=np.intp)
            # a 256-bin histogram (OpenCV: ~10× numpy's bincount)
            hist = cv2.calcHist([label], [0], None, [256], [0, 256])
            present = np.flatnonzero(hist.ravel())
        else:
            present = np.unique(label)
        valid = ((present >= 0) & (present < self.num_classes)) | (present == self.ignore_value)
        if present.dtype.kind == "f":  # a float label ('F' TIFF): 0.5 is not a class id
            valid &= np.isfinite(present) & (present == np.round(present))
        return present[~valid]

    def _to_working_dtype(self, label: np.ndarray) -> np.ndarray:
        """uint8 when every valid id fits (PIL/cv2 fast paths); otherwise float32, which every d2
        geometric transform handles with nearest interpolation and which holds ids < 2**24
        exactly."""
        if 0 <= self.ignore_value <= 255 and self.num_classes <= 256:
            return label.astype(np.uint8, copy=False)
        return label.astype(np.float32)


@functools.lru_cache(maxsize=16)
def _bad_uint8_ranges(num_classes: int, ignore_value: int) -> Tuple[Tuple[int, int], ...]:
    """The ranges (inclusive) of uint8 values that are neither a class id (< ``num_classes``) nor
    ``ignore_value``."""
    bad = np.ones(256, dtype=bool)
    bad[: min(num_classes, 256)] = False
    if 0 <= ignore_value <= 255:
        bad[ignore_value] = False
    edges = np.flatnonzero(np.diff(np.concatenate([[0], bad.astype(np.int8), [0]])))
    return tuple((int(lo), int(hi) - 1) for lo, hi in zip(edges[0::2], edges[1::2]))


def to_chw(image: np.ndarray) -> np.ndarray:
    """A contiguous C×H×W copy of an H×W×C image. uint8 with 1–4 channels goes through ``cv2.split``
    (one plane per channel, then stacked: about 2.5× faster than numpy's strided copy of
    ``transpose(2, 0, 1)`` for a 473×473×3 crop, the same values)."""
    if image.dtype == np.uint8 and image.ndim == 3 and 1 < image.shape[2] <= 4:
        return np.stack(cv2.split(image))
    return np.ascontiguousarray(image.transpose(2, 0, 1))


def has_valid_label(sem_seg: torch.Tensor, ignore_value: int = 255, size: int = 60) -> bool:
    """The official training data's validity test of a crop's label (``util/dataset_fix.py``).

    Args:
        sem_seg: H×W label tensor (any integer or float dtype).
        ignore_value: the ignore id.
        size: side of the check grid (60 in the official code).

    Returns:
        Whether the label, resized to ``size``×``size`` bilinearly with ``align_corners=True`` and
        rounded to integers, holds a value other than ``ignore_value``. (Interpolated values between
        two ids count as valid, as they do there.) The official code truncates instead of rounding,
        and float32 interpolation of a constant 255 gives 254.99998 at some grid points for most crop
        sizes (713 among them), so there an all-ignore crop passes as "valid" (docs/METHOD.md §4a).
    """
    small = F.interpolate(sem_seg[None, None].float(), size=(size, size), mode="bilinear", align_corners=True)
    return bool((small.round().long() != ignore_value).any())


def record_skipped_sample(count: int, err: BadSampleError) -> None:
    """Log a skipped training sample (a warning naming the file) and, when an event storage is
    active in this process, record the running count as the scalar ``data/skipped_samples``."""
    logger.warning(f"Skipping bad training sample ({count} so far): {err}")
    if has_event_storage():
        get_event_storage().put_scalar("data/skipped_samples", count, smoothing_hint=False)


def _check_no_exif_rotation(file_name: str, orientation: Optional[int], label_file: str) -> None:
    """Refuse an image whose EXIF tag rotates or mirrors it when it comes with a label map.

    The reader applies the tag, as Detectron2's ``read_image`` does; label PNGs have none, so the two
    would be read in different orientations (silently misaligned when the image is square). Which
    orientation the label was drawn in cannot be told from the files.
    """
    if orientation not in (None, 1):
        raise BadSampleError(
            f"Image {file_name} has EXIF orientation {orientation}, which rotates or mirrors it when read, "
            f"but its label {label_file} has none. Store the image in the orientation its label was drawn "
            "in and remove the tag (e.g. PIL.ImageOps.exif_transpose, then save without EXIF)."
        )

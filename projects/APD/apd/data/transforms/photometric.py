"""Photometric transforms of the recipe: the 5×5 Gaussian blur (docs/METHOD.md §4a). Labels are unchanged."""
import cv2
import numpy as np
from fvcore.transforms.transform import NoOpTransform, Transform

from detectron2.data import transforms as T

from .common import keep_channel_axis

__all__ = ["GaussianBlurTransform", "RandomGaussianBlur"]


class GaussianBlurTransform(Transform):
    """Photometric Gaussian blur (``cv2.GaussianBlur``) of the image; geometry, labels unchanged."""

    def __init__(self, kernel_size: int = 5, sigma: float = 0.0):
        """
        Args:
            kernel_size: odd side of the square kernel.
            sigma: Gaussian std in pixels; 0 lets OpenCV derive it from ``kernel_size``
                (0.3·((k−1)·0.5 − 1) + 0.8 = 1.1 for k = 5).
        """
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f"GaussianBlurTransform needs an odd positive kernel_size, got {kernel_size}."
            )
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        k = int(self.kernel_size)
        out = cv2.GaussianBlur(img, (k, k), self.sigma)
        return keep_channel_axis(out, img)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def inverse(self) -> Transform:
        # Like Detectron2's ColorTransform: photometric changes are not undone geometrically.
        return NoOpTransform()


class RandomGaussianBlur(T.Augmentation):
    """With probability ``prob``, blur the image with a ``kernel_size``² Gaussian (labels kept)."""

    def __init__(self, prob: float = 0.5, kernel_size: int = 5, sigma: float = 0.0):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f"RandomGaussianBlur needs an odd positive kernel_size, got {kernel_size}."
            )
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> Transform:
        if self._rand_range() < self.prob:
            return GaussianBlurTransform(self.kernel_size, self.sigma)
        return NoOpTransform()

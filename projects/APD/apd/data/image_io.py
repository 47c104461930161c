"""Which stored images the models can take, checked before Detectron2's ``read_image`` converts them.

Detectron2's ``read_image(path, format="RGB")`` calls Pillow's ``convert("RGB")`` on whatever mode the
file has. For 8-bit modes that is right. For the others it is silently wrong:

- ``I;16`` / ``I;16B`` / ``I;16L`` / ``I;16N`` (16-bit), ``I`` (32-bit) and ``F`` (float): Pillow clips
  every value to 0..255, so a 16-bit image with values 0..4095 becomes almost all white;
- ``LA``, ``PA``, ``RGBA``, ``RGBa``, ``La`` with transparent pixels: the alpha channel is dropped, and the
  colour under a transparent pixel is whatever the file stores there.

:func:`check_image_mode` refuses those by name. 8-bit modes (``1``, ``L``, ``P``, ``RGB``, ``RGBX``,
``CMYK``, ``YCbCr``, ``LAB``, ``HSV``, and alpha modes whose alpha is 255 everywhere) are left to
Pillow's conversion, which is exact for them.
"""
from typing import Optional

import numpy as np
from PIL import Image

from detectron2.utils.file_io import PathManager

__all__ = ["UnsupportedImageError", "check_image_mode", "exif_orientation", "HIGH_BIT_DEPTH_MODES",
           "ALPHA_MODES"]

HIGH_BIT_DEPTH_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})
_EXIF_ORIENTATION = 0x0112


class UnsupportedImageError(ValueError):
    """An image whose stored mode has no faithful 8-bit RGB/BGR conversion; the message names the file."""


def check_image_mode(path: str) -> str:
    """Check that ``path`` holds an image Detectron2's ``read_image`` converts faithfully.

    Args:
        path: image file (any Pillow format).

    Returns:
        The file's Pillow mode, e.g. ``"RGB"``.

    Raises:
        UnsupportedImageError: for high-bit-depth modes (``HIGH_BIT_DEPTH_MODES``) and for alpha
            modes with a pixel whose alpha is below 255. The message names the file and the mode.
        OSError / SyntaxError / ValueError: what Pillow raises for a file it cannot identify or
            decode (the callers turn these into their own errors naming the file).
    """
    with PathManager.open(path, "rb") as f:
        image = Image.open(f)
        mode = image.mode
        if mode in HIGH_BIT_DEPTH_MODES:
            raise UnsupportedImageError(
                f"Image {path} has mode '{mode}' (more than 8 bits per sample). The models take 8-bit "
                "images, and Pillow's conversion would clip every value above 255; convert it to 8-bit "
                "RGB with the scaling your data needs."
            )
        if mode in ALPHA_MODES:
            alpha = np.asarray(image.getchannel(image.getbands()[-1]))
            if alpha.size and int(alpha.min()) < 255:
                raise UnsupportedImageError(
                    f"Image {path} has mode '{mode}' with transparent pixels ({int((alpha < 255).sum())} "
                    "with alpha < 255). Their colour is undefined once alpha is dropped; composite the "
                    "image on a background of your choice and save it as RGB."
                )
    return mode


def exif_orientation(path: str) -> Optional[int]:
    """The EXIF orientation tag (1..8) of ``path``, or None when it has none."""
    with PathManager.open(path, "rb") as f:
        image = Image.open(f)
        try:
            value = image.getexif().get(_EXIF_ORIENTATION)
        except Exception:  # broken EXIF blocks: Detectron2's read_image ignores them too
            return None
    return int(value) if value is not None else None

"""The project's one image reader (training, evaluation, prediction; segmentation and COCO).

:func:`read_image` returns what Detectron2's ``detection_utils.read_image`` returns for the images it
converts faithfully, and refuses the others by name with :class:`BadSampleError`:

- ``I;16`` / ``I;16B`` / ``I;16L`` / ``I;16N`` (16-bit), ``I`` (32-bit) and ``F`` (float): Pillow's
  ``convert("RGB")`` clips every value to 0..255, so a 16-bit image with values 0..4095 becomes almost
  all white;
- ``LA``, ``PA``, ``RGBA``, ``RGBa``, ``La`` with transparent pixels: the alpha channel is dropped, and
  the colour under a transparent pixel is whatever the file stores there;
- truncated or corrupt files (Pillow's and OpenCV's decode errors).

8-bit modes (``1``, ``L``, ``P``, ``RGB``, ``RGBX``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``, and alpha modes
whose alpha is 255 everywhere) are converted as Pillow converts them; the EXIF orientation is applied
as Detectron2 applies it.

Speed: 8-bit RGB / grey / palette PNGs and baseline RGB / grey JPEGs without an EXIF rotation, read in
``"RGB"`` or ``"BGR"`` (and 8-bit grey PNG label maps read as stored), are decoded by OpenCV
(``cv2.imdecode``), about twice as fast as Pillow on a 1024×2048 PNG and bit-identical to Pillow's
result (both use libpng / libjpeg-turbo with the same settings; tests/data/test_image_io.py compares
them). A file that does not end with its format's end marker (a truncated download) goes to Pillow,
whose error names the damage; one that OpenCV's decoders reject otherwise (e.g. a bad checksum in
the pixel data, which Pillow does not verify and decodes to garbage) is refused.
"""
import io
import struct
from typing import Optional, Tuple

import cv2
import numpy as np
from PIL import Image

from detectron2.data import detection_utils as d2_utils
from detectron2.utils.file_io import PathManager

from ..errors import UserError

__all__ = [
    "BadSampleError",
    "UnsupportedImageError",
    "read_image",
    "HIGH_BIT_DEPTH_MODES",
    "ALPHA_MODES",
]

HIGH_BIT_DEPTH_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})
_EXIF_ORIENTATION = 0x0112
# What Pillow / numpy / OpenCV raise for corrupt or truncated files (UnidentifiedImageError is an OSError).
_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError, cv2.error)
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"
_IMREAD_COLOR_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)  # OpenCV >= 4.10


class BadSampleError(UserError, ValueError):
    """A sample that cannot be used (unreadable or truncated file, unsupported mode, size mismatch,
    invalid label ids). The message always names the file.

    The training mappers skip these when ``skip_bad_samples=True``; other errors (e.g. a missing
    file, which usually means a wrong dataset root) always propagate.
    """


class UnsupportedImageError(BadSampleError):
    """An image whose stored mode has no faithful 8-bit RGB/BGR conversion; the message names the file."""


def _check_mode(image: Image.Image, path: str) -> str:
    """Raise :class:`UnsupportedImageError` for the modes described in the module docstring."""
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


def _orientation(image: Image.Image) -> Optional[int]:
    try:
        value = image.getexif().get(_EXIF_ORIENTATION)
    except Exception:  # broken EXIF blocks: Detectron2's read_image ignores them too
        return None
    return int(value) if value is not None else None


def _png_has_exif(data: bytes) -> bool:
    """Whether a PNG holds an EXIF block (an ``eXIf`` chunk or ImageMagick's "Raw profile type exif"
    text), found by walking the chunk headers (the pixel data is skipped, never searched)."""
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"eXIf":
            return True
        if kind in (b"tEXt", b"zTXt", b"iTXt") and data.startswith(b"Raw profile type exif", pos + 8):
            return True
        if kind == b"IEND":
            return False
        pos += 12 + length
    return False


def _png_orientation(data: bytes, image: Image.Image) -> Optional[int]:
    """A PNG's EXIF orientation without decoding the pixels when it has no EXIF block at all
    (Pillow's ``getexif`` on a PNG loads the whole image to find one after the pixel data)."""
    return _orientation(image) if _png_has_exif(data) else None


def _cv2_decodable(data: bytes, image: Image.Image, fmt: Optional[str]) -> bool:
    """Whether OpenCV decodes ``data`` to exactly what Pillow's conversion to ``fmt`` gives."""
    if "transparency" in image.info:
        return False
    if image.format == "PNG":
        # IHDR: bit depth at byte 24; 1/2/4-bit grey and 16-bit files are scaled differently.
        if len(data) < 33 or data[24] != 8 or not data.endswith(_PNG_END):
            return False
        modes = ("L",) if fmt is None else ("RGB", "L", "P")
        return image.mode in modes and _png_orientation(data, image) in (None, 1)
    if image.format == "JPEG":
        return (
            fmt is not None
            and image.mode in ("RGB", "L")
            and data.endswith(_JPEG_END)
            and _orientation(image) in (None, 1)
        )
    return False


def _decode(data: bytes, path: str, fmt: Optional[str], what: str) -> Tuple[np.ndarray, Optional[int]]:
    image = Image.open(io.BytesIO(data))
    if fmt is not None:  # a label map read as stored keeps its values; there is nothing to convert
        _check_mode(image, path)
    if fmt in ("RGB", "BGR", None) and _cv2_decodable(data, image, fmt):
        if fmt is None:
            flags = cv2.IMREAD_UNCHANGED
        elif fmt == "RGB" and _IMREAD_COLOR_RGB is not None:  # decoded in RGB order: no channel swap after
            flags = _IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
        else:
            flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
        array = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
        expected = (image.height, image.width) + (() if fmt is None else (3,))
        if array is None or array.shape != expected:
            # libpng / libjpeg reject the data (e.g. a bad checksum inside the pixel data, which
            # Pillow does not verify and would decode to garbage).
            raise BadSampleError(
                f"Cannot read {what} {path}: corrupt {image.format} data (OpenCV's decoder rejects it)."
            )
        if fmt == "RGB" and _IMREAD_COLOR_RGB is None:
            array = cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
        return array, None
    orientation = _orientation(image)
    image = d2_utils._apply_exif_orientation(image)
    return d2_utils.convert_PIL_to_numpy(image, fmt), orientation


def read_image(
    path: str, format: Optional[str] = "RGB", *, what: str = "image", return_orientation: bool = False
):
    """Read ``path`` as Detectron2's ``detection_utils.read_image(path, format)`` does, with checks.

    Args:
        path: image file (any Pillow format; a Detectron2 ``PathManager`` path).
        format: ``"RGB"``, ``"BGR"``, any Pillow mode (``"L"``, ...) or None (as stored, for label
            maps), as in Detectron2.
        what: the word the error messages use for the file ("image", "label").
        return_orientation: also return the file's EXIF orientation (1..8, or None when it has
            none or when it does not rotate: the fast path only takes files without a rotation).

    Returns:
        H×W×C uint8 array (H×W for a single-channel file read with ``format=None``), channels in
        ``format``, EXIF orientation applied; with ``return_orientation``, ``(array, orientation)``.

    Raises:
        BadSampleError: unreadable, truncated or corrupt file, or a file that decodes to no H×W
            array ("Cannot read {what} {path}: ..."); :class:`UnsupportedImageError` (a
            ``BadSampleError``) for high-bit-depth modes and transparent pixels when ``format`` is
            not None (read as stored, a 16-bit or float label map keeps its values).
        FileNotFoundError: the file does not exist (usually a wrong dataset root, never skipped).
    """
    with PathManager.open(path, "rb") as f:
        data = f.read()
    try:
        array, orientation = _decode(data, path, format, what)
    except BadSampleError:
        raise
    except _READ_ERRORS as err:
        raise BadSampleError(f"Cannot read {what} {path}: {err}") from err
    if array.dtype == object or array.ndim < 2:
        raise BadSampleError(f"Cannot read {what} {path}: decoded to an array of shape {array.shape}.")
    return (array, orientation) if return_orientation else array

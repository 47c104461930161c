"""The one image reader: Detectron2's result wherever Detectron2 is right, errors naming the file."""
import io

import numpy as np
import pytest
from detectron2.data import detection_utils as d2_utils
from PIL import Image

from apd.data import image_io
from apd.data.image_io import BadSampleError, UnsupportedImageError, read_image


def _photo(h=37, w=53, seed=0):
    """Smooth content, as photos are (JPEG of white noise is not a realistic decode test)."""
    rng = np.random.RandomState(seed)
    small = rng.randint(0, 256, (h // 4 + 2, w // 4 + 2, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))


def _files(tmp_path):
    rgb = _photo()
    out = {}
    for name, image, kwargs in [
        ("rgb.png", Image.fromarray(rgb), {}),
        ("grey.png", Image.fromarray(rgb[:, :, 0]), {}),
        ("palette.png", Image.fromarray(rgb).quantize(64), {}),
        ("interlaced.png", Image.fromarray(rgb), {"interlace": 1}),
        ("q75.jpg", Image.fromarray(rgb), {"quality": 75}),
        ("q95_444.jpg", Image.fromarray(rgb), {"quality": 95, "subsampling": 0}),
        ("progressive.jpg", Image.fromarray(rgb), {"progressive": True}),
        ("grey.jpg", Image.fromarray(rgb[:, :, 1]), {}),
    ]:
        path = tmp_path / name
        image.save(path, **kwargs)
        out[name] = str(path)
    return out


@pytest.mark.parametrize("fmt", ["RGB", "BGR", "L", None])
def test_reader_gives_detectron2s_pixels(tmp_path, fmt):
    for name, path in _files(tmp_path).items():
        expected = d2_utils.read_image(path, format=fmt)
        got = read_image(path, fmt)
        assert got.dtype == np.uint8 and got.shape == expected.shape, (name, fmt)
        np.testing.assert_array_equal(got, expected, err_msg=f"{name} {fmt}")


def test_the_fast_path_is_taken_for_8bit_png_and_jpeg(tmp_path, monkeypatch):
    """The speed of the reader rests on OpenCV decoding these files (Pillow is never asked to)."""
    def no_pillow_decode(*args, **kwargs):
        raise AssertionError("decoded by Pillow")

    monkeypatch.setattr(image_io.d2_utils, "convert_PIL_to_numpy", no_pillow_decode)
    files = _files(tmp_path)
    for name, path in files.items():
        read_image(path, "RGB")
    read_image(files["grey.png"], None)  # a label map, as stored


def _truncate(path):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])


@pytest.mark.parametrize("name", ["rgb.png", "q75.jpg", "progressive.jpg"])
def test_truncated_file_is_named(tmp_path, name):
    path = _files(tmp_path)[name]
    _truncate(path)
    with pytest.raises(BadSampleError, match=f"Cannot read image {path}: "):
        read_image(path, "BGR")
    with pytest.raises(BadSampleError, match=f"Cannot read label {path}: "):
        read_image(path, None, what="label")


def test_corrupt_pixel_data_with_an_intact_end_is_named(tmp_path):
    """Damage in the middle of a PNG (CRC mismatch) keeps the end marker; it is still refused."""
    path = _files(tmp_path)["rgb.png"]
    data = bytearray(open(path, "rb").read())
    start = data.index(b"IDAT") + 8
    data[start : start + 16] = b"\x00" * 16
    open(path, "wb").write(bytes(data))
    with pytest.raises(BadSampleError, match=f"Cannot read image {path}"):
        read_image(path, "RGB")


def test_sixteen_bit_and_transparent_images_are_refused_labels_read_as_stored(tmp_path):
    sixteen = tmp_path / "depth.png"
    Image.fromarray(np.full((4, 5), 3000, np.uint16)).save(sixteen)
    with pytest.raises(UnsupportedImageError, match=r"depth\.png has mode 'I;16'"):
        read_image(str(sixteen), "RGB")
    assert int(read_image(str(sixteen), None)[0, 0]) == 3000  # label maps keep their values
    rgba = np.full((4, 5, 4), 255, np.uint8)
    rgba[1, 1, 3] = 0
    transparent = tmp_path / "alpha.png"
    Image.fromarray(rgba).save(transparent)
    with pytest.raises(BadSampleError, match=r"alpha\.png has mode 'RGBA' with transparent pixels \(1 "):
        read_image(str(transparent), "BGR")


def test_exif_orientation_is_applied_and_reported(tmp_path):
    rgb = _photo(8, 12)
    exif = Image.Exif()
    exif[0x0112] = 6  # 90° clockwise
    path = tmp_path / "rotated.jpg"
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", exif=exif.tobytes(), quality=95)
    path.write_bytes(buffer.getvalue())
    image, orientation = read_image(str(path), "RGB", return_orientation=True)
    assert orientation == 6 and image.shape == (12, 8, 3)
    np.testing.assert_array_equal(image, d2_utils.read_image(str(path), format="RGB"))
    plain = tmp_path / "plain.jpg"
    Image.fromarray(rgb).save(plain, quality=95)
    assert read_image(str(plain), "RGB", return_orientation=True)[1] is None


def test_missing_file_is_not_a_bad_sample(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_image(str(tmp_path / "nope.png"))

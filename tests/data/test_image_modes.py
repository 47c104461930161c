"""Every image mode Pillow can open, through the mappers the configs use (segmentation and COCO).

An image is either converted faithfully (8-bit modes; alpha modes whose alpha is 255 everywhere) or
refused with an error naming the file and the mode. Before, Detectron2's ``read_image`` clipped
16-bit/32-bit/float images to 0..255 and dropped alpha without a word.
"""
import os

import numpy as np
import pytest
from detectron2.config import LazyConfig, instantiate
from PIL import Image

from apd.data.dataset_mapper import BadSampleError, SemSegDatasetMapper
from apd.data.image_io import ALPHA_MODES, HIGH_BIT_DEPTH_MODES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
H, W = 6, 8
WRITERS = ("PNG", "TIFF")


def _content(mode, transparent):
    """An H×W image of ``mode`` with distinct values; high-bit-depth modes use values above 255."""
    rng = np.random.RandomState(0)
    if mode in HIGH_BIT_DEPTH_MODES:
        if mode == "F":
            return Image.fromarray((rng.rand(H, W) * 1000).astype(np.float32))
        if mode == "I":
            return Image.fromarray(rng.randint(-70000, 70000, (H, W)).astype(np.int32))
        sixteen = Image.fromarray(rng.randint(256, 4096, (H, W)).astype(np.uint16))  # mode I;16
        return sixteen if mode == "I;16" else sixteen.convert(mode)
    rgb = Image.fromarray(rng.randint(0, 256, (H, W, 3)).astype(np.uint8))
    if mode == "P":
        return rgb.quantize(16)
    if mode == "PA":
        image = rgb.quantize(16).convert("PA")
    else:
        try:
            image = rgb.convert(mode)
        except ValueError:
            image = Image.new(mode, (W, H))
    if mode in ALPHA_MODES:
        alpha = np.full((H, W), 255, np.uint8)
        if transparent:
            alpha[2, 3] = 0
        image.putalpha(Image.fromarray(alpha))
    return image


def _stored_images(tmp_path):
    """(requested mode, transparent, path, stored mode) for every mode and writer that round-trips."""
    out = []
    for mode in sorted(Image.MODES):
        for transparent in ((False, True) if mode in ALPHA_MODES else (False,)):
            try:
                image = _content(mode, transparent)
            except (ValueError, OSError):
                continue
            for fmt in WRITERS:
                path = tmp_path / f"{mode.replace(';', '_')}_{int(transparent)}.{fmt.lower()}"
                try:
                    image.save(path, fmt)
                    with Image.open(path) as check:
                        stored = check.mode
                        check.load()
                except (ValueError, OSError, KeyError):
                    continue
                out.append((mode, transparent, str(path), stored))
    return out


def _mappers():
    seg = SemSegDatasetMapper(is_train=False, augmentations=[], num_classes=19, image_format="RGB")
    cfg = LazyConfig.load(os.path.join(REPO, "configs/COCO-InstanceSegmentation/mask_rcnn_R_18_FPN_demo.py"))
    cfg.dataloader.test.mapper.augmentations = []
    det = instantiate(cfg.dataloader.test.mapper)  # the COCO configs' mapper, BGR
    assert det.image_format == "BGR"
    return {"segmentation": (seg, False), "coco": (det, True)}


def test_every_pillow_mode_is_converted_faithfully_or_refused_by_name(tmp_path):
    stored = _stored_images(tmp_path)
    stored_modes = {s for *_, s in stored}
    # Every mode that a writer can store was exercised, the risky ones among them.
    assert {"1", "L", "P", "RGB", "RGBA", "LA", "CMYK", "YCbCr", "LAB", "I;16", "I", "F", "PA"} <= stored_modes
    for mapper_name, (mapper, bgr) in _mappers().items():
        for mode, transparent, path, stored_mode in stored:
            record = {"file_name": path, "image_id": 0}
            refuse = stored_mode in HIGH_BIT_DEPTH_MODES or (stored_mode in ALPHA_MODES and transparent)
            if refuse:
                with pytest.raises(BadSampleError) as info:
                    mapper(dict(record))
                assert path in str(info.value) and f"'{stored_mode}'" in str(info.value), (mapper_name, mode)
                continue
            out = mapper(dict(record))
            image = out["image"].permute(1, 2, 0).numpy()
            if bgr:
                image = image[:, :, ::-1]
            with Image.open(path) as source:
                expected = np.asarray(source.convert("RGB"))
                if stored_mode in ("L", "1"):  # independent oracle: grey replicated
                    grey = np.asarray(source.convert("L"))
                    assert (expected == grey[:, :, None]).all()
                if stored_mode in ALPHA_MODES:  # opaque alpha: the colour channels as stored
                    assert (np.asarray(source.convert("RGBA"))[:, :, 3] == 255).all()
            assert image.dtype == np.uint8 and image.shape == (H, W, 3), (mapper_name, mode)
            np.testing.assert_array_equal(image, expected, err_msg=f"{mapper_name} {mode} -> {stored_mode}")


def test_sixteen_bit_image_is_refused_not_clipped(tmp_path):
    """The case that was silently wrong: values 1000..4000 all became 255."""
    path = tmp_path / "depth.png"
    Image.fromarray(np.full((H, W), 3000, np.uint16)).save(path)
    label = tmp_path / "label.png"
    Image.fromarray(np.zeros((H, W), np.uint8)).save(label)
    mapper, _ = _mappers()["segmentation"]
    with pytest.raises(BadSampleError, match=r"depth\.png has mode 'I;16'.*clip"):
        mapper({"file_name": str(path), "sem_seg_file_name": str(label)})


def _exif_rotated_jpeg(path, size, orientation=6):
    image = Image.fromarray(np.random.RandomState(1).randint(0, 256, (size, size, 3)).astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, "JPEG", exif=exif.tobytes())


def test_image_with_exif_rotation_and_a_label_is_refused_by_name(tmp_path):
    # Square, so the sizes agree and the rotated image would silently pair with an unrotated label.
    path = tmp_path / "photo.jpg"
    _exif_rotated_jpeg(path, 8)
    label = tmp_path / "photo_label.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(label)
    mapper, _ = _mappers()["segmentation"]
    with pytest.raises(BadSampleError, match=r"photo\.jpg has EXIF orientation 6"):
        mapper({"file_name": str(path), "sem_seg_file_name": str(label)})
    # Without a label (inference on a folder of photos) the tag is applied as Detectron2 does.
    out = mapper({"file_name": str(path)})
    assert tuple(out["image"].shape) == (3, 8, 8)


def test_float_label_with_non_integral_ids_is_refused(tmp_path):
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(image)
    label = tmp_path / "a_label.tiff"
    values = np.zeros((H, W), np.float32)
    values[0, 0] = 2.5
    Image.fromarray(values).save(label)
    mapper, _ = _mappers()["segmentation"]
    with pytest.raises(BadSampleError, match=r"a_label\.tiff has ids \[2\.5\]"):
        mapper({"file_name": str(image), "sem_seg_file_name": str(label)})
    values[0, 0] = 2.0  # integral float ids are class ids
    Image.fromarray(values).save(label)
    out = mapper({"file_name": str(image), "sem_seg_file_name": str(label)})
    assert int(out["sem_seg"][0, 0]) == 2 and int(out["sem_seg"].sum()) == 2


def test_jpeg_label_is_refused(tmp_path):
    """JPEG compression changes ids at edges, mostly into other valid ids: silently wrong labels."""
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    ids = np.zeros((16, 16), np.uint8)
    ids[:, 5:] = 18  # an edge inside an 8×8 JPEG block
    label = tmp_path / "a_label.jpg"
    Image.fromarray(ids).save(label, quality=75)
    assert set(np.unique(np.asarray(Image.open(label))).tolist()) - {0, 18}  # the edge got other ids
    mapper, _ = _mappers()["segmentation"]
    with pytest.raises(BadSampleError, match=r"a_label\.jpg is a JPEG"):
        mapper({"file_name": str(image), "sem_seg_file_name": str(label)})


def test_coco_mapper_refuses_an_exif_flipped_image_with_annotations(tmp_path):
    """Orientation 3 (180°) keeps the size, so Detectron2's size check passes and the boxes would
    point at the wrong pixels if they were drawn on the stored image."""
    path = tmp_path / "photo.jpg"
    _exif_rotated_jpeg(path, 8, orientation=3)
    mapper, _ = _mappers()["coco"]
    record = {"file_name": str(path), "image_id": 1, "height": 8, "width": 8,
              "annotations": [{"bbox": [0, 0, 4, 4], "bbox_mode": 1, "category_id": 0, "iscrowd": 0}]}
    with pytest.raises(BadSampleError, match=r"photo\.jpg has EXIF orientation 3"):
        mapper(dict(record))
    out = mapper({k: v for k, v in record.items() if k != "annotations"})  # inference: tag applied
    assert tuple(out["image"].shape) == (3, 8, 8)
    cfg = LazyConfig.load(os.path.join(REPO, "configs/COCO-InstanceSegmentation/mask_rcnn_R_18_FPN_demo.py"))
    cfg.dataloader.test.mapper.augmentations = []
    cfg.dataloader.test.mapper.exif_with_annotations = "apply"  # annotations follow the displayed image
    out = instantiate(cfg.dataloader.test.mapper)(dict(record))
    assert tuple(out["image"].shape) == (3, 8, 8)

#!/usr/bin/env python
"""Run a distilled student on your own images or a video and write its predictions.

    python tools/predict.py --config-file configs/apd_pspnet_r18.py \\
        --weights output/apd_psp18/model_final.pth \\
        --input photo.png frames/ "street/*.jpg" --output predictions/
    python tools/predict.py --config-file configs/apd_pspnet_r18.py \\
        --weights exported/student.ts --video-input drive.mp4 --output predictions/

--config-file is the run's config: a distillation config (only its student is built; no teacher is
loaded) or a plain model config. It also gives the test-time resize and the dataset's palette and class
names. --weights is any of:
  - the training checkpoint of a distillation run (the student's keys are taken out of it; teacher,
    distillation heads and adapters are ignored),
  - a student-only checkpoint (``model_student.pth`` of tools/export_student.py, or a plain run's),
  - the TorchScript export of a segmentation student (``student.ts``): it runs the whole image in one
    pass, so a sliding-window test protocol in the config is not applied.

--input takes image files, folders (their images, sorted) and quoted glob patterns. For every image
``NAME`` it writes into --output:
  segmentation students: ``NAME.png`` (the prediction in the dataset's colours blended over the image,
  --opacity), ``NAME_trainIds.png`` (the predicted class per pixel: the model's contiguous training ids,
  0..K−1, 8-bit, or 16-bit when K > 256) and, for Cityscapes models, ``NAME_labelIds.png`` (the same
  prediction in Cityscapes' official label ids, as the Cityscapes benchmark expects them);
  R-CNN students (Faster / Mask R-CNN): ``NAME.png`` with Detectron2's drawing of the detected instances
  scoring at least --confidence-threshold.
An image that cannot be used (truncated or corrupt, 16-bit or float, transparent pixels) is read by the
same reader as training and evaluation (apd.data.image_io): it is reported by name on stderr and
skipped, every other input is processed, and the tool then exits with status 2 listing what it skipped.
--video-input writes ``NAME.mp4`` (codec mp4v) with the drawing of every frame and, with --video-labels,
the label PNGs of frame i as ``NAME/<i:06d>_trainIds.png`` (and ``_labelIds.png``). Names that occur
twice among the inputs get a ``_1``, ``_2``, ... suffix. Extra ``key=value`` arguments override the config.
"""
import argparse
import glob
import os
import sys
import zipfile
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_FOURCC = "mp4v"
DEFAULT_FPS = 30.0  # when the video file does not say


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--config-file", required=True, help="the run's config (distiller or plain model)")
    parser.add_argument("--weights", required=True,
                        help="distillation checkpoint, student-only checkpoint or TorchScript export")
    parser.add_argument("--input", nargs="+", default=[], help="image files, folders or quoted glob patterns")
    parser.add_argument("--video-input", default=None, help="a video file")
    parser.add_argument("--video-labels", action="store_true", help="also write label PNGs of every video frame")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--opacity", type=float, default=0.5, help="weight of the colours over the image")
    parser.add_argument("--confidence-threshold", type=float, default=0.5, help="R-CNN: lowest score drawn")
    parser.add_argument("--device", default="auto", help="cpu, cuda, or auto (cuda when available)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides key=value")
    return parser


# ------------------------------------------------------------------------------------------ inputs
def expand_inputs(items: Iterable[str]) -> List[str]:
    """Image paths of --input: a file as given, a folder's images (sorted), a glob's matches (sorted).

    Raises:
        FileNotFoundError: an item is neither a file nor a folder and matches nothing as a pattern;
            or a folder holds no image.
    """
    paths: List[str] = []
    for item in items:
        item = os.path.expanduser(item)
        if os.path.isfile(item):
            paths.append(item)
        elif os.path.isdir(item):
            found = sorted(
                os.path.join(item, f) for f in os.listdir(item)
                if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(item, f))
            )
            if not found:
                raise FileNotFoundError(f"--input {item}: the folder holds no image ({', '.join(IMAGE_EXTENSIONS)})")
            paths.extend(found)
        else:
            found = sorted(p for p in glob.glob(item) if os.path.isfile(p))
            if not found:
                raise FileNotFoundError(f"--input {item}: no such file or folder, and no file matches it as a pattern")
            paths.extend(found)
    return paths


def split_overrides(items: Iterable[str]) -> Tuple[List[str], List[str]]:
    """(inputs, config overrides): ``--input`` takes every word up to the next flag, so ``key=value``
    overrides written after it land there; a word with ``=`` that names no file and matches no file is
    an override."""
    inputs, overrides = [], []
    for item in items:
        is_path = os.path.exists(os.path.expanduser(item)) or glob.glob(os.path.expanduser(item))
        (overrides if "=" in item and not is_path else inputs).append(item)
    return inputs, overrides


def unique_names(paths: Iterable[str]) -> List[str]:
    """File stems, with ``_1``, ``_2``, ... appended to repeats so no output overwrites another."""
    used = set()
    names = []
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        name, k = stem, 0
        while name in used:
            k += 1
            name = f"{stem}_{k}"
        used.add(name)
        names.append(name)
    return names


# ----------------------------------------------------------------------------------------- weights
def is_torchscript(path: str) -> bool:
    """True for a TorchScript archive (``torch.jit.save``): a zip with a ``code/`` folder, which
    ``torch.save`` checkpoints do not have."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name for name in archive.namelist())


def cityscapes_label_ids(num_classes: int, class_names: Optional[List[str]]) -> Optional[np.ndarray]:
    """A 256-entry trainId → Cityscapes labelId table (cityscapesscripts' label definitions) when the
    model's classes are Cityscapes' 19 training classes in trainId order, else None. Entries that are
    not a trainId map to 0 ("unlabeled")."""
    from cityscapesscripts.helpers.labels import trainId2label

    train_ids = [i for i in sorted(trainId2label) if 0 <= i < 255]
    names = [trainId2label[i].name for i in train_ids]
    if num_classes != len(train_ids) or class_names is None or list(class_names)[:num_classes] != names:
        return None
    table = np.zeros(256, dtype=np.uint8)
    for i in train_ids:
        table[i] = trainId2label[i].id
    return table


@dataclass
class Student:
    """A ready student and what the drawing needs to know about it.

    Attributes:
        predict: RGB H×W×3 uint8 image → H×W int64 class ids (segmentation) or a Detectron2
            ``Instances`` on the CPU at the image's size (R-CNN).
        task: "sem_seg" or "instances".
        weights_kind: "distiller checkpoint", "student checkpoint" or "TorchScript".
        num_classes: K.
    """

    predict: Callable[[np.ndarray], object]
    task: str
    weights_kind: str
    num_classes: int


def _test_transform(cfg, default_format: str):
    """``(augmentations, image_format)`` of the config's test mapper; no augmentation without one."""
    from detectron2.config import instantiate
    from detectron2.data import transforms as T
    from omegaconf import OmegaConf

    node = OmegaConf.select(cfg, "dataloader.test.mapper", default=None)
    if node is None:
        return T.AugmentationList([]), default_format
    mapper = instantiate(node)
    augmentations = getattr(mapper, "augmentations", None) or T.AugmentationList([])
    return augmentations, getattr(mapper, "image_format", default_format)


def _model_input(rgb: np.ndarray, augmentations, image_format: str):
    """The test-time resized image as a 3×h×w float tensor in ``image_format`` (0–255)."""
    import torch
    from detectron2.data import transforms as T

    image = rgb if image_format == "RGB" else rgb[:, :, ::-1]
    aug_input = T.AugInput(np.ascontiguousarray(image))
    augmentations(aug_input)
    return torch.as_tensor(np.ascontiguousarray(aug_input.image.transpose(2, 0, 1))).float()


def load_student(cfg, weights: str, device: str) -> Student:
    """Build the config's student (never the teacher) and load ``weights`` into it (see the module
    docstring for the kinds of weights)."""
    import torch
    import torch.nn.functional as F
    from detectron2.config import instantiate
    from detectron2.modeling import GeneralizedRCNN

    from apd.checkpoint.io import read_state_dict
    from apd.export import DISTILLER_ONLY_PREFIXES, extract_student_state, student_config
    from apd.modeling.meta_arch.segmentor import Segmentor

    if not os.path.isfile(weights):
        raise FileNotFoundError(f"--weights: not found: '{weights}'")
    spec = student_config(cfg.model)
    if is_torchscript(weights):
        target = spec.target
        if not (isinstance(target, type) and issubclass(target, Segmentor)):
            raise ValueError(f"'{weights}' is TorchScript, which tools/export_student.py writes for segmentation "
                             f"students only; this config's student is a {getattr(target, '__name__', target)}")
        module = torch.jit.load(weights, map_location=device).eval()
        input_format = spec.node.get("input_format", "RGB")
        augmentations, image_format = _test_transform(cfg, input_format)
        if image_format != input_format:
            raise ValueError(f"the test mapper reads {image_format} images but the student takes {input_format}")
        num_classes = int(spec.node.sem_seg_head.num_classes)

        def predict_ts(rgb: np.ndarray) -> np.ndarray:
            image = _model_input(rgb, augmentations, image_format).to(device)
            with torch.no_grad():
                logits = module(image[None])
                logits = F.interpolate(logits, size=rgb.shape[:2], mode="bilinear", align_corners=False)
            return logits[0].argmax(0).cpu().numpy()

        return Student(predict_ts, "sem_seg", "TorchScript", num_classes)

    model = instantiate(spec.node)
    state = read_state_dict(weights)
    distiller = any(k.startswith(DISTILLER_ONLY_PREFIXES) for k in state) or (
        bool(spec.prefix) and any(k.startswith(spec.prefix) for k in state))
    kind = "distiller checkpoint" if distiller else "student checkpoint"
    model.load_state_dict(extract_student_state(state, model, spec.prefix, source=weights), strict=True)
    model.to(device).eval()
    augmentations, image_format = _test_transform(cfg, getattr(model, "input_format", "RGB"))
    if image_format != getattr(model, "input_format", image_format):
        raise ValueError(f"the test mapper reads {image_format} images but the student takes {model.input_format}")

    if isinstance(model, Segmentor):
        def predict_seg(rgb: np.ndarray) -> np.ndarray:
            image = _model_input(rgb, augmentations, image_format).to(device)
            with torch.no_grad():
                out = model([{"image": image, "height": rgb.shape[0], "width": rgb.shape[1]}])[0]
            return out["sem_seg"].argmax(0).cpu().numpy()

        return Student(predict_seg, "sem_seg", kind, int(model.sem_seg_head.num_classes))
    if isinstance(model, GeneralizedRCNN):
        def predict_rcnn(rgb: np.ndarray):
            image = _model_input(rgb, augmentations, image_format).to(device)
            with torch.no_grad():
                out = model([{"image": image, "height": rgb.shape[0], "width": rgb.shape[1]}])[0]
            return out["instances"].to("cpu")

        return Student(predict_rcnn, "instances", kind, int(model.roi_heads.num_classes))
    raise ValueError(f"predict.py runs segmentation (Segmentor) and R-CNN students; this one is a "
                     f"{type(model).__name__}")


# ------------------------------------------------------------------------------------------ output
class Writer:
    """Turns a prediction into the output files (see the module docstring)."""

    def __init__(self, student: Student, metadata, opacity: float, threshold: float):
        from apd.visualization import dataset_palette

        self.student = student
        self.metadata = metadata
        self.opacity = opacity
        self.threshold = threshold
        names = metadata.get("stuff_classes", None) if metadata is not None else None
        self.palette = dataset_palette(metadata, student.num_classes)
        self.label_ids = cityscapes_label_ids(student.num_classes, names) if student.task == "sem_seg" else None

    def drawing(self, rgb: np.ndarray, prediction) -> np.ndarray:
        """H×W×3 uint8 RGB picture of ``prediction`` over ``rgb``."""
        if self.student.task == "sem_seg":
            from apd.visualization import colorize, overlay

            return overlay(rgb, colorize(prediction, self.palette), self.opacity)
        from detectron2.utils.visualizer import Visualizer

        instances = prediction[prediction.scores >= self.threshold]
        return Visualizer(rgb, self.metadata).draw_instance_predictions(instances).get_image()

    def write_labels(self, prediction: np.ndarray, stem: str) -> List[str]:
        """``stem_trainIds.png`` and, for Cityscapes, ``stem_labelIds.png``; returns the paths."""
        from PIL import Image

        dtype = np.uint8 if self.student.num_classes <= 256 else np.uint16
        paths = [f"{stem}_trainIds.png"]
        Image.fromarray(prediction.astype(dtype)).save(paths[0])
        if self.label_ids is not None:
            paths.append(f"{stem}_labelIds.png")
            Image.fromarray(self.label_ids[prediction]).save(paths[1])
        return paths


def read_video(path: str) -> Tuple[Iterator[np.ndarray], float, int]:
    """(RGB frames, frames per second, frame count as the file states it, 0 if unknown)."""
    import cv2

    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise ValueError(f"--video-input: OpenCV cannot open '{path}'")
    fps = capture.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)

    def frames():
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield frame[:, :, ::-1]
        finally:
            capture.release()

    return frames(), float(fps), max(count, 0)


# -------------------------------------------------------------------------------------------- main
def test_protocol(cfg) -> str:
    """One line on the config's test-time resize and sliding window, and how to switch them off.

    The evaluation protocols of the Cityscapes recipes (resize to 2048 wide, 713×713 windows with flip)
    cost seconds to minutes per image on a CPU; a user who only wants a quick look can turn them off.
    Returns "" when the config uses neither.
    """
    from omegaconf import OmegaConf

    parts, offs = [], []
    # Segmentation mappers hold a node of augmentations; R-CNN mappers a list, which has no base_size.
    augmentations = OmegaConf.select(cfg, "dataloader.test.mapper.augmentations", default=None)
    base = augmentations.get("base_size") if OmegaConf.is_dict(augmentations) else None
    if base:
        parts.append(f"images resized to {base} wide")
        offs.append("dataloader.test.mapper.augmentations.base_size=null")
    model = "model.student" if OmegaConf.select(cfg, "model.student", default=None) is not None else "model"
    window = OmegaConf.select(cfg, f"{model}.sliding_window", default=None)
    if window:
        crop = tuple(window.get("crop_size", ()))
        parts.append(f"sliding {crop[0]}×{crop[-1]} windows" + (" with flip" if window.get("flip") else "")
                     if crop else "sliding windows")
        offs.append(f"{model}.sliding_window=null")
    if not parts:
        return ""
    return f"{', '.join(parts)}; for a faster, whole-image pass add {' '.join(offs)}"


def run(args) -> Dict[str, List[str]]:
    """Predict as ``args`` asks; returns {input name: written paths}."""
    import torch
    from detectron2.data import MetadataCatalog
    from omegaconf import OmegaConf
    from PIL import Image
    from tqdm import tqdm

    import apd  # noqa: F401  (registers the models and datasets configs use)
    from apd.config import load_config
    from apd.data.image_io import BadSampleError, read_image

    if not split_overrides(args.input)[0] and not args.video_input:
        raise ValueError("nothing to do: give --input and/or --video-input")
    if not 0.0 <= args.opacity <= 1.0:
        raise ValueError(f"--opacity must be in [0, 1], got {args.opacity}")
    if args.video_input and not os.path.isfile(args.video_input):
        raise FileNotFoundError(f"--video-input: not found: '{args.video_input}'")
    inputs, overrides = split_overrides(args.input)
    paths = expand_inputs(inputs)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"

    cfg = load_config(args.config_file, list(args.opts) + overrides)
    student = load_student(cfg, args.weights, device)
    names = OmegaConf.select(cfg, "dataloader.test.dataset.names", default=None)
    if names is not None and not isinstance(names, str):
        names = list(names)[0]
    writer = Writer(student, MetadataCatalog.get(names) if names else None, args.opacity,
                    args.confidence_threshold)
    print(f"[predict] {student.task} student from {args.weights} ({student.weights_kind}), device {device}")
    protocol = test_protocol(cfg)
    if protocol:
        print(f"[predict] test protocol of the config: {protocol}")

    os.makedirs(args.output, exist_ok=True)
    written: Dict[str, List[str]] = {}
    skipped: List[str] = []
    all_names = unique_names(paths + ([args.video_input] if args.video_input else []))
    for path, name in zip(tqdm(paths, desc="predict", unit="image"), all_names):
        try:
            rgb = read_image(path, "RGB")  # the reader training and evaluation use, with the same checks
        except BadSampleError as e:
            print(f"[predict] skipping {path}: {e}", file=sys.stderr, flush=True)
            skipped.append(path)
            continue
        prediction = student.predict(rgb)
        stem = os.path.join(args.output, name)
        Image.fromarray(writer.drawing(rgb, prediction)).save(f"{stem}.png")
        written[name] = [f"{stem}.png"]
        if student.task == "sem_seg":
            written[name] += writer.write_labels(prediction, stem)

    if args.video_input:
        import cv2

        name = all_names[-1]
        frames, fps, count = read_video(args.video_input)
        video_path = os.path.join(args.output, f"{name}.mp4")
        label_dir = os.path.join(args.output, name)
        if args.video_labels and student.task == "sem_seg":
            os.makedirs(label_dir, exist_ok=True)
        out, files = None, [video_path]
        try:
            for i, rgb in enumerate(tqdm(frames, desc="video", unit="frame", total=count or None)):
                prediction = student.predict(np.ascontiguousarray(rgb))
                picture = writer.drawing(rgb, prediction)
                if out is None:
                    height, width = picture.shape[:2]
                    out = cv2.VideoWriter(video_path, cv2.VideoWriter_fourcc(*VIDEO_FOURCC), fps, (width, height))
                    if not out.isOpened():
                        raise ValueError(f"OpenCV cannot write '{video_path}' with codec {VIDEO_FOURCC}")
                out.write(np.ascontiguousarray(picture[:, :, ::-1]))
                if args.video_labels and student.task == "sem_seg":
                    files += writer.write_labels(prediction, os.path.join(label_dir, f"{i:06d}"))
        finally:
            if out is not None:
                out.release()
        if out is None:
            raise ValueError(f"--video-input: no frame could be read from '{args.video_input}'")
        written[name] = files
    print(f"[predict] wrote {sum(len(v) for v in written.values())} files into {args.output}")
    if skipped:
        raise SkippedInputsError(f"skipped {len(skipped)} of {len(paths)} images that cannot be read (the "
                                 f"others were written): {', '.join(skipped)}")
    return written


class SkippedInputsError(ValueError):
    """Some inputs could not be read; every other input was processed. The message lists them."""


def main(argv=None) -> int:
    args = argument_parser().parse_args(argv)
    from apd.utils.cli import run_tool

    return run_tool("predict.py", run, args)


if __name__ == "__main__":
    sys.exit(main())

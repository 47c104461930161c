#!/usr/bin/env python
"""Side-by-side pictures (image | ground truth | teacher | student [| baseline]) and a t-SNE of features.

    DETECTRON2_DATASETS=datasets/demo python tools/visualize.py \\
        --config-file configs/demo/apd_pspnet_r18_demo.py \\
        --student-weights output/demo/apd/model_final.pth \\
        --teacher-weights checkpoints/demo/teacher_pspnet_r18_half.pth \\
        --baseline-config configs/demo/pspnet_r18_demo.py \\
        --baseline-weights output/demo/student/model_final.pth \\
        --num 4 --output-dir output/demo/vis --grid output/demo/vis/grid.png --tsne

--config-file is a distillation config: it gives the teacher and student architectures, the test
dataset (``dataloader.test``; --dataset NAME or --images FILE... instead) and its palette. The student
weights may be the distillation run's checkpoint or a student-only export; the teacher weights
default to the config's ``model.teacher_weights``; a plain (non-distillation) config shows its model
as the student, without a teacher. The baseline is a second student (e.g. trained without
distillation) from its own config. Colours: the dataset's palette (Cityscapes: the official colours),
black for ignored pixels; predictions are the argmax of each model's own inference (its test protocol).

Writes into --output-dir: ``<image name>.png`` per image, ``tsne.png`` with --tsne (teacher, student and
baseline features of the same sampled pixels, --tsne-per-class per class, coloured by ground truth),
and --grid PATH stacks all the rows into one PNG. Extra ``key=value`` arguments override the config.
"""
import argparse
import os
import sys
from typing import Dict, List, Optional, Tuple

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--config-file", required=True, help="distillation config (teacher + student + dataset)")
    parser.add_argument("--student-weights", required=True, help="distillation checkpoint or exported student")
    parser.add_argument("--teacher-weights", default=None, help="teacher checkpoint (default: model.teacher_weights)")
    parser.add_argument("--baseline-config", default=None, help="config of a baseline student")
    parser.add_argument("--baseline-weights", default=None, help="checkpoint of the baseline student")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dataset", default=None, help="registered dataset name (default: the config's test set)")
    source.add_argument("--images", nargs="+", default=None, help="image files (no ground-truth panel)")
    parser.add_argument("--num", type=int, default=4, help="number of dataset images (first N)")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--grid", default=None, help="also write all rows stacked into this PNG")
    parser.add_argument("--panel-width", type=int, default=None, help="resize every panel to this width")
    parser.add_argument("--tsne", action="store_true", help="write tsne.png of per-pixel head features")
    parser.add_argument("--tsne-per-class", type=int, default=200, help="pixels sampled per class for t-SNE")
    parser.add_argument("--tsne-threads", type=int, default=1, help="CPU threads of the t-SNE (scikit-learn)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides key=value")
    return parser


# ----------------------------------------------------------------------------------------- models
def build_student(cfg, weights: str, device: str):
    from detectron2.config import instantiate

    from apd.export import read_student_state, student_config
    from apd.modeling.meta_arch.segmentor import Segmentor

    spec = student_config(cfg.model)
    model = instantiate(spec.node)
    if not isinstance(model, Segmentor):
        raise ValueError(f"visualize.py draws segmentation students; this config's student is a {type(model).__name__}")
    model.load_state_dict(read_student_state(weights, model, spec.prefix), strict=True)
    return model.to(device).eval(), spec


def build_teacher(cfg, weights: Optional[str], device: str):
    from detectron2.config import instantiate

    from apd.modeling.meta_arch.teacher import load_teacher_weights

    weights = weights or cfg.model.get("teacher_weights", None)
    model = instantiate(cfg.model.teacher)
    load_teacher_weights(model, weights)  # strict; a missing/empty path is an error, never a random teacher
    return model.to(device).eval()


def _in_format(image, data_format: str, model_format: str):
    """Reverse the channels when the data and the model disagree on RGB/BGR."""
    if data_format != model_format and {data_format, model_format} == {"RGB", "BGR"}:
        return image.flip(0)
    return image


def predict(model, inputs: Dict, data_format: str) -> np.ndarray:
    """H×W int64 argmax of the model's own inference at the original image size."""
    import torch

    image = _in_format(inputs["image"], data_format, getattr(model, "input_format", data_format))
    with torch.no_grad():
        out = model([{"image": image, "height": inputs["height"], "width": inputs["width"]}])[0]["sem_seg"]
    return out.argmax(0).cpu().numpy()


def pixel_features(model, inputs: Dict, data_format: str, ignore_value: int, size=None):
    """(h·w)×C head features (``SegHeadOutputs.feature``), the (h·w) labels of those pixels (nearest
    downsampling of the padded label map) and (h, w). ``size`` resizes the feature grid (bilinear) first,
    e.g. a teacher with another output stride onto the student's grid."""
    import torch
    import torch.nn.functional as F

    from apd.modeling.losses.prototypes import downsample_labels

    image = _in_format(inputs["image"], data_format, getattr(model, "input_format", data_format))
    with torch.no_grad():
        images = model.preprocess_image([{"image": image}])
        feature = model.sem_seg_head.layers(model.backbone(images.tensor)).feature
        if size is not None and tuple(feature.shape[-2:]) != tuple(size):
            feature = F.interpolate(feature, size=size, mode="bilinear", align_corners=False)
    labels = inputs["sem_seg"].to(feature.device)
    padded = torch.full(images.tensor.shape[-2:], ignore_value, dtype=torch.long, device=feature.device)
    padded[: labels.shape[0], : labels.shape[1]] = labels
    labels = downsample_labels(padded[None], feature.shape[-2:])[0]
    c = feature.shape[1]
    grid = tuple(feature.shape[-2:])
    return feature[0].reshape(c, -1).t().cpu().numpy(), labels.reshape(-1).cpu().numpy(), grid


# ------------------------------------------------------------------------------------------- data
def dataset_records(cfg, args) -> Tuple[List[Dict], Optional[str]]:
    """Dataset dicts to draw (the first --num of the dataset, by file name, or --images) and the dataset
    name whose metadata gives palette and class names."""
    from detectron2.data import DatasetCatalog

    if args.images:
        missing = [f for f in args.images if not os.path.isfile(f)]
        if missing:
            raise FileNotFoundError(f"--images: not found: {missing}")
        return [{"file_name": f} for f in args.images], _config_dataset_name(cfg)
    name = args.dataset or _config_dataset_name(cfg)
    if name is None:
        raise ValueError("No dataset: give --dataset NAME or --images FILES (the config has no dataloader.test)")
    if name not in DatasetCatalog.list():
        raise KeyError(f"Dataset '{name}' is not registered; registered names include "
                       f"{sorted(n for n in DatasetCatalog.list() if 'sem_seg' in n)}")
    records = sorted(DatasetCatalog.get(name), key=lambda r: r["file_name"])[: args.num]
    if not records:
        raise ValueError(f"Dataset '{name}' has no images (check DETECTRON2_DATASETS)")
    return records, name


def _config_dataset_name(cfg) -> Optional[str]:
    from omegaconf import OmegaConf

    names = OmegaConf.select(cfg, "dataloader.test.dataset.names", default=None)
    if names is None:
        return None
    return names if isinstance(names, str) else list(names)[0]


def build_mapper(cfg, num_classes: int, ignore_value: int):
    """The config's test mapper (its resize/format), or a plain SemSegDatasetMapper."""
    from detectron2.config import instantiate
    from omegaconf import OmegaConf

    from apd.data.dataset_mapper import SemSegDatasetMapper

    node = OmegaConf.select(cfg, "dataloader.test.mapper", default=None)
    if node is not None:
        mapper = instantiate(node)
        if isinstance(mapper, SemSegDatasetMapper):
            return mapper
    return SemSegDatasetMapper(is_train=False, augmentations=[], num_classes=num_classes, ignore_value=ignore_value)


# ------------------------------------------------------------------------------------------- main
def run(args) -> Dict[str, str]:
    """Draw what ``args`` asks; returns {name: written PNG path}."""
    import torch
    from detectron2.data import MetadataCatalog
    from PIL import Image

    import apd  # noqa: F401  (registers datasets, models)
    from apd.config import load_config
    from apd.data.image_io import read_image
    from apd.evaluation import load_sem_seg_gt
    from apd.visualization import (
        colorize,
        compose_panels,
        dataset_palette,
        resize_panel,
        sample_pixels_per_class,
        save_tsne_figure,
        stack_rows,
        tsne_embed,
    )

    if (args.baseline_config is None) != (args.baseline_weights is None):
        raise ValueError("--baseline-config and --baseline-weights go together")
    torch.manual_seed(args.seed)
    cfg = load_config(args.config_file, args.opts)
    student, spec = build_student(cfg, args.student_weights, args.device)
    models = []  # (title, model)
    if spec.distiller is not None and "teacher" in cfg.model:
        models.append(("teacher", build_teacher(cfg, args.teacher_weights, args.device)))
    elif args.teacher_weights:
        raise ValueError(f"--teacher-weights given but {args.config_file} is not a distillation config")
    models.append(("student", student))
    if args.baseline_config:
        baseline, _ = build_student(load_config(args.baseline_config), args.baseline_weights, args.device)
        models.append(("baseline", baseline))

    head = student.sem_seg_head
    num_classes, ignore_value = int(head.num_classes), int(head.ignore_value)
    records, dataset_name = dataset_records(cfg, args)
    metadata = MetadataCatalog.get(dataset_name) if dataset_name else None
    palette = dataset_palette(metadata, num_classes)
    class_names = metadata.get("stuff_classes", None) if metadata is not None else None
    mapper = build_mapper(cfg, num_classes, ignore_value)

    os.makedirs(args.output_dir, exist_ok=True)
    written, rows = {}, []
    tsne_feats = {title: [] for title, _ in models}
    tsne_labels = []
    for record in records:
        inputs = mapper(record)
        photo = read_image(record["file_name"], "RGB")
        panels, titles, is_label = [photo], [os.path.basename(record["file_name"])], [False]
        if record.get("sem_seg_file_name"):
            gt = load_sem_seg_gt(record["sem_seg_file_name"])
            panels.append(colorize(gt, palette))
            titles.append("ground truth")
            is_label.append(True)
        for title, model in models:
            panels.append(colorize(predict(model, inputs, mapper.image_format), palette))
            titles.append(title)
            is_label.append(True)
        if args.panel_width:
            panels = [resize_panel(p, args.panel_width, lab) for p, lab in zip(panels, is_label)]
        row = compose_panels(panels, titles)
        rows.append(row)
        stem = os.path.splitext(os.path.basename(record["file_name"]))[0]
        path = os.path.join(args.output_dir, f"{stem}.png")
        Image.fromarray(row).save(path)
        written[stem] = path

        if args.tsne:
            if "sem_seg" not in inputs:
                raise ValueError(f"--tsne needs ground-truth labels; {record['file_name']} has none")
            s_feat, labels, size = pixel_features(student, inputs, mapper.image_format, ignore_value)
            for title, model in models:
                if model is student:
                    tsne_feats[title].append(s_feat)
                else:
                    feat = pixel_features(model, inputs, mapper.image_format, ignore_value, size=size)[0]
                    tsne_feats[title].append(feat)
            tsne_labels.append(labels)

    if args.grid:
        os.makedirs(os.path.dirname(os.path.abspath(args.grid)), exist_ok=True)
        Image.fromarray(stack_rows(rows)).save(args.grid)
        written["grid"] = args.grid
    if args.tsne:
        labels = np.concatenate(tsne_labels)
        keep = sample_pixels_per_class(labels, args.tsne_per_class, num_classes, seed=args.seed)
        embeddings = [
            (f"{title} features", tsne_embed(np.concatenate(tsne_feats[title])[keep], seed=args.seed,
                                              num_threads=args.tsne_threads))
            for title, _ in models
        ]
        path = os.path.join(args.output_dir, "tsne.png")
        save_tsne_figure(path, embeddings, labels[keep], palette, class_names)
        written["tsne"] = path
    for name, path in written.items():
        print(f"[visualize] {name}: {path}")
    return written


def main(argv=None) -> int:
    args = argument_parser().parse_args(argv)
    from apd.utils.cli import run_tool

    return run_tool("visualize.py", run, args, extra_errors=(KeyError,))  # KeyError: unknown dataset name


if __name__ == "__main__":
    sys.exit(main())

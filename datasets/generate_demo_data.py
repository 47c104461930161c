#!/usr/bin/env python
"""Generate small synthetic datasets in the real on-disk formats of Cityscapes, ADE20K,
PASCAL-Context and COCO 2017, then run the real preparation scripts on them.

The scenes are drawn from polygons: street scenes for Cityscapes (sky, buildings, road,
sidewalks, vegetation, poles with signs and lights, cars, persons, riders, ...), indoor and
outdoor scenes for ADE20K, PASCAL-Context and COCO. Every class has its own colour and texture
(stripes, tiles, windows, foliage, ...), instances vary in colour, images get illumination
changes and noise, objects occlude each other and thin structures (poles, fences, bicycles)
are a few pixels wide: learnable, but a bigger model does better than a small one.
Output is a deterministic function of ``--seed`` (each image has its own random stream, so
``--datasets`` and the counts do not change the other images). The parts are in ``datasets/demo_data/``:
shapes, scenes, rendering and one writer per format.

Usage::

    python datasets/generate_demo_data.py --root datasets/demo --seed 0
    DETECTRON2_DATASETS=datasets/demo python train_net.py ...

Layout written under ``--root`` (see datasets/README.md)::

    cityscapes/leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    cityscapes/gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_{polygons.json,instanceIds.png,
                                                                labelIds.png,labelTrainIds.png}
    ADEChallengeData2016/{images,annotations,annotations_detectron2}/{training,validation}/ADE_*
    VOCdevkit/VOC2010/{JPEGImages,trainval,ImageSets/SegmentationContext}   (PASCAL-Context release)
    pascal_context/{images,annotations_detectron2/pc59,annotations_detectron2/pc60}/{train,val}
    coco/{train2017,val2017}/*.jpg, coco/annotations/instances_{train,val}2017.json
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # demo_data/ (this folder is not a package)

from demo_data import ade20k, cityscapes, coco, pascal_context  # noqa: E402

ALL_DATASETS = ("cityscapes", "ade20k", "pascal_context", "coco")
WRITERS = {"cityscapes": cityscapes.write, "ade20k": ade20k.write, "pascal_context": pascal_context.write,
           "coco": coco.write}


def generate(root, seed=0, num_train=24, num_val=8, datasets=ALL_DATASETS):
    """Write the requested datasets under ``root``; returns {dataset: folder}."""
    unknown = set(datasets) - set(WRITERS)
    if unknown:
        raise ValueError(f"Unknown dataset(s) {sorted(unknown)}; choose from {list(WRITERS)}")
    return {name: WRITERS[name](root, seed, num_train, num_val) for name in datasets}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="datasets/demo", help="output folder (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-train", type=int, default=24)
    parser.add_argument("--num-val", type=int, default=8)
    parser.add_argument("--datasets", default=",".join(ALL_DATASETS),
                        help="comma-separated subset of: " + ",".join(ALL_DATASETS))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        out = generate(args.root, args.seed, args.num_train, args.num_val, args.datasets.split(","))
    except ValueError as e:
        sys.exit(f"error: {e}")
    for name, folder in out.items():
        print(f"{name}: {folder}")
    print(f"Done in {time.perf_counter() - start:.1f}s. Use it with DETECTRON2_DATASETS={args.root}")


if __name__ == "__main__":
    main()

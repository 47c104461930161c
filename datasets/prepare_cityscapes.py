#!/usr/bin/env python
"""Write Cityscapes label images from the polygon annotations, with cityscapesscripts.

For every ``gtFine/<split>/<city>/*_gtFine_polygons.json`` under the Cityscapes root this writes,
next to it:

- ``*_gtFine_labelTrainIds.png``: the 19 training classes as 0..18, everything else 255. This is
  what Detectron2's ``cityscapes_fine_sem_seg_*`` datasets read. Written every run (it is derived;
  ``--skip-existing`` keeps existing ones).
- ``*_gtFine_labelIds.png``: the 34 Cityscapes label ids, the ground truth of the official
  evaluation (``CityscapesSemSegEvaluator``). The release ships these files, and they differ from a
  redraw of the polygons at object edges, so an existing one is **never** overwritten: it is only
  written where it is missing, and the run says how many it kept.

Both are drawn by ``cityscapesscripts.preparation.json2labelImg`` (the official tool), so the
output is exactly what ``createTrainIdLabelImgs.py`` produces.

Usage::

    python datasets/prepare_cityscapes.py                # $DETECTRON2_DATASETS/cityscapes
    python datasets/prepare_cityscapes.py --root /data/cityscapes --workers 8
"""
import argparse
import contextlib
import functools
import glob
import io
import json
import multiprocessing
import os
import sys

from cityscapesscripts.helpers.labels import name2label
from cityscapesscripts.preparation.json2labelImg import json2labelImg

# label image suffix -> json2labelImg encoding
ENCODINGS = {"labelTrainIds": "trainIds", "labelIds": "ids"}
# label images the release ships: written only where missing, never overwritten
SHIPPED = frozenset({"labelIds"})
POLYGON_SUFFIX = "_polygons.json"


def label_files_for(json_file):
    """``x_gtFine_polygons.json`` -> {suffix: ``x_gtFine_<suffix>.png``} for each of ENCODINGS."""
    if not json_file.endswith(POLYGON_SUFFIX):
        raise ValueError(f"Not a Cityscapes polygon file (no '{POLYGON_SUFFIX}'): {json_file}")
    stem = json_file[: -len(POLYGON_SUFFIX)]
    return {suffix: f"{stem}_{suffix}.png" for suffix in ENCODINGS}


def check_polygon_file(json_file):
    """Raise ValueError naming ``json_file`` if it is not JSON or names a label cityscapesscripts
    does not know (where cityscapesscripts itself prints a message and calls ``sys.exit``)."""
    try:
        with open(json_file) as f:
            annotation = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{json_file}: not valid JSON ({e})") from None
    unknown = set()
    for obj in annotation.get("objects", []):
        label = obj.get("label")
        if label not in name2label and isinstance(label, str) and label.endswith("group"):
            label = label[: -len("group")]
        if label not in name2label:
            unknown.add(str(obj.get("label")))
    if unknown:
        raise ValueError(f"{json_file}: unknown label(s) {sorted(unknown)} "
                         "(not in cityscapesscripts.helpers.labels)")


def _draw(json_file, out_file, encoding):
    """json2labelImg, with its ``sys.exit`` on bad input turned into a ValueError naming the file."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            json2labelImg(json_file, out_file, encoding)
    except SystemExit:
        lines = [line for line in captured.getvalue().splitlines() if line.strip()]
        raise ValueError(f"{json_file}: cityscapesscripts refused it: {lines[0] if lines else 'no message'}") from None


def convert_json(json_file, skip_existing=False):
    """Write the label images of one polygon file.

    Shipped files (``SHIPPED``) that exist are kept; with ``skip_existing`` every existing file is.

    Returns:
        (list[str], list[str]): the paths written and the existing paths kept.
    """
    written, kept = [], []
    checked = False
    for suffix, out_file in label_files_for(json_file).items():
        if (skip_existing or suffix in SHIPPED) and os.path.exists(out_file):
            kept.append(out_file)
            continue
        if not checked:
            check_polygon_file(json_file)
            checked = True
        _draw(json_file, out_file, ENCODINGS[suffix])
        written.append(out_file)
    return written, kept


def find_polygon_files(root, splits):
    """All ``gtFine/<split>/<city>/*_gtFine_polygons.json`` files, sorted; errors name the path."""
    files = []
    for split in splits:
        split_dir = os.path.join(root, "gtFine", split)
        if not os.path.isdir(split_dir):
            raise FileNotFoundError(
                f"Cityscapes split folder {os.path.abspath(split_dir)} not found "
                "(expected <root>/gtFine/<split>/<city>/*_gtFine_polygons.json; see datasets/README.md)"
            )
        found = sorted(glob.glob(os.path.join(split_dir, "*", "*_gtFine" + POLYGON_SUFFIX)))
        if not found:
            raise FileNotFoundError(
                f"No *_gtFine{POLYGON_SUFFIX} files under {os.path.abspath(split_dir)}/<city>/"
            )
        files.extend(found)
    return files


def prepare_cityscapes(root, splits=("train", "val"), workers=0, skip_existing=False, report=None):
    """
    Write labelTrainIds PNGs, and labelIds PNGs where missing, for all polygon files of ``splits``.

    Args:
        root (str): the Cityscapes folder (contains ``leftImg8bit/`` and ``gtFine/``).
        splits (iterable[str]): folders of ``gtFine`` to convert.
        workers (int): processes to use; 0 converts in this process.
        skip_existing (bool): keep every label image that already exists (existing labelIds files,
            which the release ships, are always kept).
        report (dict or None): filled with ``written`` and ``kept``, ``{suffix: count}``.

    Returns:
        int: number of polygon files processed.
    """
    files = find_polygon_files(root, splits)
    convert = functools.partial(convert_json, skip_existing=skip_existing)
    counts = {"written": dict.fromkeys(ENCODINGS, 0), "kept": dict.fromkeys(ENCODINGS, 0)}

    def count(result):
        for key, paths in zip(("written", "kept"), result):
            for path in paths:
                counts[key][path[: -len(".png")].rsplit("_", 1)[-1]] += 1

    if workers > 0:
        with multiprocessing.Pool(workers) as pool:
            for result in pool.imap_unordered(convert, files, chunksize=16):
                count(result)
    else:
        for f in files:
            count(convert(f))
    if report is not None:
        report.update(counts)
    return len(files)


def main(argv=None):
    default_root = os.path.join(os.getenv("DETECTRON2_DATASETS", "datasets"), "cityscapes")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=default_root, help="Cityscapes folder (default: %(default)s)")
    parser.add_argument("--splits", default="train,val", help="comma-separated gtFine splits")
    parser.add_argument("--workers", type=int, default=0, help="processes (0: no pool)")
    parser.add_argument("--skip-existing", action="store_true", help="keep existing label PNGs")
    args = parser.parse_args(argv)
    report = {}
    try:
        n = prepare_cityscapes(
            args.root, args.splits.split(","), workers=args.workers, skip_existing=args.skip_existing,
            report=report,
        )
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    print(f"{n} polygon files under {os.path.join(args.root, 'gtFine')}:")
    for suffix in ENCODINGS:
        why = "shipped with the dataset, never overwritten" if suffix in SHIPPED else "--skip-existing"
        print(f"  *_gtFine_{suffix}.png: wrote {report['written'][suffix]}, "
              f"kept {report['kept'][suffix]} existing ({why})")


if __name__ == "__main__":
    main()

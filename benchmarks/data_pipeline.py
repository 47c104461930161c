"""Data-pipeline benchmark: per-sample time of the training mappers against the decode floor, loader
throughput, and the loader workers' memory with a COCO-shaped dataset list.

Images are generated into a temporary folder in the real formats (Cityscapes: 1024×2048 RGB PNG and an
8-bit label PNG; ADE20K: JPEG and an 8-bit label PNG; COCO: JPEG with polygon annotations). Every timing
runs in this process on one thread (``cv2.setNumThreads(1)``, ``torch.set_num_threads(1)``), so a
per-sample time is CPU time of one loader worker. Each timing is repeated ``--repeats`` times over the
same files and draws; the tables give the median and the minimum of the repeats, and every ratio is
the median of the per-repeat ratios (floor and mapper alternate within a repeat, so a slow moment of
a shared machine hits both). ``--clock cpu`` times them in this thread's CPU time instead of
wall-clock time (on a machine shared with other jobs, wall-clock time includes the time they held the
core); the results record the clock and the load average at the start.

Items (``--items``):

- ``cityscapes``, ``ade20k``: the decode floor (``cv2.imread`` of image and label, nothing else), the
  configs' ``SemSegDatasetMapper`` in training mode (the recipe's augmentations, from
  ``configs/common/data/{cityscapes,ade20k}.py``, computed on the crop window), the same mapper with
  the same augmentations applied one at a time to the whole image (Detectron2's ``AugmentationList``,
  uint8), and the official pipeline written from the
  recipe (cv2 decode, float32, scale / rotate / blur / flip / centred pad + crop, ToTensor, mean/std
  normalisation) for reference;
- ``coco``: the decode floor (``cv2.imread``), Detectron2's ``DatasetMapper`` and the project's
  ``DetectionDatasetMapper``, both with the augmentations of ``configs/common/data/coco.py``
  (Detectron2's 640–800 short side, max 1333, flip) and polygon masks;
- ``loader``: images/s of ``ResumableTrainLoader`` with the Cityscapes mapper, batch 1, for each
  ``--workers`` count (worker start-up excluded);
- ``memory``: a list of ``--memory-records`` COCO-shaped dicts (7 polygon annotations each) given to
  ``ResumableTrainLoader`` with 2 workers and a mapper that deep-copies its dict and returns a
  small tensor; each worker's private memory (``Private_Clean + Private_Dirty`` of
  ``/proc/PID/smaps_rollup``) after each count of ``--memory-samples``. The check: no worker grows
  by more than ``--memory-bound-mib`` after the first reading (exit status 1 otherwise).

Command of the runs in docs/BENCHMARKS.md: ``nice -n 10 .venv/bin/python benchmarks/data_pipeline.py``.
"""
import argparse
import copy
import gc
import json
import os
import platform
import sys
import tempfile
import time
from typing import Callable, Dict, List, Sequence

import cv2
import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ITEMS = ("cityscapes", "ade20k", "coco", "loader", "memory")
MEAN_RGB = (123.675, 116.28, 103.53)
STD_RGB = (58.395, 57.12, 57.375)


# ----------------------------------------------------------------------------------------- data
def _photo(rng: np.random.RandomState, h: int, w: int) -> np.ndarray:
    """Smooth colour regions with edges and a little sensor noise: compresses like a photo."""
    coarse = rng.randint(0, 256, (h // 32 + 2, w // 32 + 2, 3)).astype(np.uint8)
    image = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    blocks = rng.randint(-40, 40, (h // 64 + 1, w // 64 + 1, 1)).astype(np.int16)
    image += cv2.resize(blocks, (w, h), interpolation=cv2.INTER_NEAREST)[:, :, None]
    image += rng.randint(-4, 5, image.shape).astype(np.int16)
    return np.clip(image, 0, 255).astype(np.uint8)


def _label(rng: np.random.RandomState, h: int, w: int, num_classes: int) -> np.ndarray:
    ids = rng.randint(0, num_classes, (h // 48 + 1, w // 48 + 1)).astype(np.uint8)
    ids[rng.rand(*ids.shape) < 0.1] = 255
    return cv2.resize(ids, (w, h), interpolation=cv2.INTER_NEAREST)


def write_segmentation_data(folder: str, name: str, count: int, size, num_classes: int, ext: str) -> List[dict]:
    """``count`` image/label pairs (image ``ext``: "png" or "jpg"; label PNG) and their records."""
    rng = np.random.RandomState(len(name))
    records = []
    for i in range(count):
        h, w = size
        image = os.path.join(folder, f"{name}_{i}.{ext}")
        label = os.path.join(folder, f"{name}_{i}_label.png")
        bgr = _photo(rng, h, w)
        params = [cv2.IMWRITE_JPEG_QUALITY, 90] if ext == "jpg" else []
        cv2.imwrite(image, bgr, params)
        cv2.imwrite(label, _label(rng, h, w, num_classes))
        records.append({"file_name": image, "sem_seg_file_name": label, "height": h, "width": w})
    return records


def _polygon(rng, h, w):
    cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
    r = rng.uniform(0.05, 0.2) * min(h, w)
    t = np.sort(rng.uniform(0, 2 * np.pi, 12))
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1).ravel().round(2).tolist()


def coco_record(rng, file_name: str, h: int, w: int, image_id: int, num_annotations: int = 7) -> dict:
    """A record as Detectron2's COCO loader makes it (XYWH_ABS boxes, polygon masks)."""
    annotations = []
    for _ in range(num_annotations):
        poly = _polygon(rng, h, w)
        xs, ys = poly[0::2], poly[1::2]
        annotations.append({
            "iscrowd": 0, "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)],
            "category_id": int(rng.randint(80)), "segmentation": [poly], "bbox_mode": 1,
        })
    return {"file_name": file_name, "height": h, "width": w, "image_id": image_id, "annotations": annotations}


def write_coco_data(folder: str, count: int, size=(480, 640)) -> List[dict]:
    rng = np.random.RandomState(7)
    records = []
    for i in range(count):
        path = os.path.join(folder, f"coco_{i}.jpg")
        cv2.imwrite(path, _photo(rng, *size), [cv2.IMWRITE_JPEG_QUALITY, 90])
        records.append(coco_record(rng, path, size[0], size[1], i))
    return records


# ----------------------------------------------------------------------------------- pipelines
def decode_floor(record: dict) -> None:
    """What no pipeline can avoid: decoding the image (and label) once with OpenCV."""
    image = cv2.imread(record["file_name"], cv2.IMREAD_COLOR)
    assert image is not None
    if "sem_seg_file_name" in record:
        label = cv2.imread(record["sem_seg_file_name"], cv2.IMREAD_GRAYSCALE)
        assert label is not None


def official_pipeline(crop: int, rng: np.random.RandomState) -> Callable[[dict], None]:
    """The official training pipeline written from its recipe (docs/METHOD.md §4): cv2 decode to float32,
    scale 0.5–2 (INTER_LINEAR / INTER_NEAREST), rotate ±10° with p = 0.5 about (w/2, h/2), 5×5 blur with
    p = 0.5, flip, centred pad and uniform crop, CHW float tensor normalised with ImageNet mean/std."""
    mean = list(MEAN_RGB)

    def run(record):
        image = cv2.cvtColor(cv2.imread(record["file_name"], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        image = np.float32(image)
        label = cv2.imread(record["sem_seg_file_name"], cv2.IMREAD_GRAYSCALE)
        s = rng.uniform(0.5, 2.0)
        image = cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, None, fx=s, fy=s, interpolation=cv2.INTER_NEAREST)
        if rng.rand() < 0.5:
            h, w = label.shape
            m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-10, 10), 1)
            image = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                   borderValue=mean)
            label = cv2.warpAffine(label, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                                   borderValue=255)
        if rng.rand() < 0.5:
            image = cv2.GaussianBlur(image, (5, 5), 0)
        if rng.rand() < 0.5:
            image, label = cv2.flip(image, 1), cv2.flip(label, 1)
        h, w = label.shape
        ph, pw = max(crop - h, 0), max(crop - w, 0)
        if ph or pw:
            image = cv2.copyMakeBorder(image, ph // 2, ph - ph // 2, pw // 2, pw - pw // 2, cv2.BORDER_CONSTANT,
                                       value=mean)
            label = cv2.copyMakeBorder(label, ph // 2, ph - ph // 2, pw // 2, pw - pw // 2, cv2.BORDER_CONSTANT,
                                       value=255)
        h, w = label.shape
        y, x = rng.randint(h - crop + 1), rng.randint(w - crop + 1)
        image, label = image[y : y + crop, x : x + crop], label[y : y + crop, x : x + crop]
        tensor = torch.from_numpy(image.transpose(2, 0, 1)).float()
        for t, m_, s_ in zip(tensor, MEAN_RGB, STD_RGB):
            t.sub_(m_).div_(s_)
        torch.from_numpy(label).long()

    return run


CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}


def _time_round(fn: Callable[[dict], object], records: Sequence[dict], seed: int, clock: str = "wall") -> float:
    np.random.seed(seed)
    now = CLOCKS[clock]
    start = now()
    for record in records:
        fn(record)
    return (now() - start) / len(records)


def time_pipelines(pipelines: Dict[str, Callable], records: Sequence[dict], repeats: int,
                   clock: str = "wall") -> Dict[str, dict]:
    """Per-sample seconds of each pipeline: every repeat runs them all, one after the other, on the same
    records with the same seed. ``clock``: "wall" (``time.perf_counter``) or "cpu" (this thread's CPU
    time, ``time.thread_time``: on a shared machine, the time the work itself took without the time
    other processes held the core). Returns {name: {median, min, ratio_to_floor (median of per-repeat)}}."""
    for fn in pipelines.values():  # warm-up: imports, first-call caches
        fn(records[0])
    rounds = {name: [] for name in pipelines}
    for r in range(repeats):
        for name, fn in pipelines.items():
            rounds[name].append(_time_round(fn, records, seed=r, clock=clock))
    floor = np.asarray(rounds["decode floor (cv2)"])
    out = {}
    for name, values in rounds.items():
        values = np.asarray(values)
        out[name] = {"median_ms": float(np.median(values) * 1e3), "min_ms": float(values.min() * 1e3),
                     "ratio_to_floor": float(np.median(values / floor))}
    return out


def _config_mapper(path: str):
    from detectron2.config import LazyConfig, instantiate

    cfg = LazyConfig.load(os.path.join(REPO, path))
    return instantiate(cfg.dataloader.train.mapper)


def bench_segmentation(name: str, folder: str, args) -> Dict[str, dict]:
    if name == "cityscapes":
        size, classes, ext, crop, config = (1024, 2048), 19, "png", 713, "configs/common/data/cityscapes.py"
    else:  # ADE20K: JPEG photos of about 512 × 683, 150 classes
        size, classes, ext, crop, config = (512, 683), 150, "jpg", 473, "configs/common/data/ade20k.py"
    if args.small:
        size, crop = (size[0] // 8, size[1] // 8), crop // 8
    records = write_segmentation_data(folder, name, args.samples, size, classes, ext)
    from detectron2.data import transforms as T

    mapper = _config_mapper(config)
    if args.small:
        from apd.data.transforms import build_train_augmentations

        (mapper.augmentations,) = build_train_augmentations((crop, crop), pad_center=True)
    # The same mapper and draws with the augmentations applied one at a time on the whole image (uint8).
    one_at_a_time = _config_mapper(config)
    one_at_a_time.augmentations = T.AugmentationList(mapper.augmentations.augs)
    pipelines = {
        "decode floor (cv2)": decode_floor,
        "SemSegDatasetMapper (configs)": mapper,
        "SemSegDatasetMapper, augmentations one at a time": one_at_a_time,
        "official pipeline (from the recipe)": official_pipeline(crop, np.random.RandomState(0)),
    }
    return time_pipelines(pipelines, records, args.repeats, args.clock)


def bench_coco(folder: str, args) -> Dict[str, dict]:
    from detectron2.config import LazyConfig, instantiate
    from detectron2.data import DatasetMapper

    from apd.data.detection_mapper import DetectionDatasetMapper

    size = (60, 80) if args.small else (480, 640)
    records = write_coco_data(folder, args.samples, size)
    cfg = LazyConfig.load(os.path.join(REPO, "configs/common/data/coco.py")).dataloader.train.mapper
    augs = instantiate(cfg.augmentations)
    common = dict(is_train=True, augmentations=augs, image_format=cfg.image_format,
                  use_instance_mask=cfg.use_instance_mask)
    pipelines = {
        "decode floor (cv2)": decode_floor,
        "Detectron2 DatasetMapper": DatasetMapper(**common),
        "DetectionDatasetMapper": DetectionDatasetMapper(**common),
    }
    return time_pipelines(pipelines, records, args.repeats, args.clock)


def bench_loader(folder: str, args) -> Dict[str, dict]:
    """Images/s of the positional loader with the Cityscapes mapper (batch 1), per worker count."""
    from apd.data.samplers import ResumableTrainLoader

    size = (128, 256) if args.small else (1024, 2048)
    records = write_segmentation_data(folder, "loader", args.samples, size, 19, "png")
    mapper = _config_mapper("configs/common/data/cityscapes.py")
    if args.small:
        from apd.data.transforms import build_train_augmentations
        from detectron2.data import transforms as T

        mapper.augmentations = T.AugmentationList(build_train_augmentations((89, 89), pad_center=True))
    out = {}
    for workers in args.workers:
        rates = []
        for _ in range(args.repeats):
            loader = iter(ResumableTrainLoader(records, mapper, 1, num_workers=workers, seed=0))
            for _ in range(workers):  # start-up: each worker's first sample
                next(loader)
            start = time.perf_counter()
            for _ in range(args.loader_samples):
                next(loader)
            rates.append(args.loader_samples / (time.perf_counter() - start))
            del loader
        out[f"{workers} worker(s)"] = {"median_images_per_s": float(np.median(rates)),
                                       "max_images_per_s": float(np.max(rates))}
    return out


# ---------------------------------------------------------------------------------------- memory
def private_mib(pid: int) -> float:
    """Private (unshared) resident memory of ``pid`` in MiB: what a forked worker has copied."""
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1])
    return total / 1024


def _children(pid: int) -> List[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out += [int(p) for p in f.read().split()]
    return sorted(out)


class _CopyingMapper:
    """Deep-copies the record as every mapper does (and touches every annotation), returns a small tensor."""

    def __call__(self, record):
        record = copy.deepcopy(record)
        return torch.tensor([len(record["annotations"]), record["image_id"]])


def bench_memory(args) -> Dict[str, object]:
    from apd.data.samplers import ResumableTrainLoader

    rng = np.random.RandomState(0)
    start = time.perf_counter()
    records = [coco_record(rng, f"train2017/{i:012d}.jpg", 480, 640, i) for i in range(args.memory_records)]
    build_s = time.perf_counter() - start
    loader = ResumableTrainLoader(records, _CopyingMapper(), 1, num_workers=2, seed=0)
    del records  # as in training: the loader's copy is all that is left
    gc.collect()
    me = os.getpid()
    before = set(_children(me))
    it = iter(loader)
    next(it)
    workers = [p for p in _children(me) if p not in before]
    rows, done = [], 1
    for target in args.memory_samples:
        while done < target:
            next(it)
            done += 1
        rows.append({"samples": done, "worker_private_mib": [round(private_mib(p), 1) for p in workers]})
    del it
    first = rows[0]["worker_private_mib"]
    growth = max(row["worker_private_mib"][i] - first[i] for row in rows for i in range(len(first)))
    return {"records": len(loader.dataset),
            "build_s": round(build_s, 1), "dataset_type": type(loader.dataset).__name__, "rows": rows,
            "max_growth_mib": round(growth, 1), "bound_mib": args.memory_bound_mib,
            "flat": bool(growth <= args.memory_bound_mib)}


# ---------------------------------------------------------------------------------------- report
def markdown(results: dict) -> str:
    lines = []
    for item in ("cityscapes", "ade20k", "coco"):
        if item not in results:
            continue
        lines += [f"### {item}", "", "| pipeline | median ms / sample | min ms | × decode floor |", "|---|---|---|---|"]
        for name, row in results[item].items():
            lines.append(f"| {name} | {row['median_ms']:.1f} | {row['min_ms']:.1f} | {row['ratio_to_floor']:.2f} |")
        lines.append("")
    if "loader" in results:
        lines += ["### loader (Cityscapes mapper, batch 1)", "", "| workers | median images/s | max |", "|---|---|---|"]
        for name, row in results["loader"].items():
            lines.append(f"| {name} | {row['median_images_per_s']:.2f} | {row['max_images_per_s']:.2f} |")
        lines.append("")
    if "memory" in results:
        mem = results["memory"]
        lines += [f"### memory ({mem['records']} COCO-shaped records, {mem['dataset_type']})", "",
                  "| samples | worker private MiB |", "|---|---|"]
        for row in mem["rows"]:
            lines.append(f"| {row['samples']} | {', '.join(str(v) for v in row['worker_private_mib'])} |")
        verdict = "flat" if mem["flat"] else "NOT flat"
        lines += ["", f"Largest growth of a worker after the first row: {mem['max_growth_mib']} MiB; bound "
                      f"{mem['bound_mib']} MiB: {verdict}.", ""]
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", default=",".join(ITEMS), help=f"comma-separated subset of {','.join(ITEMS)}")
    p.add_argument("--samples", type=int, default=8, help="distinct generated files per dataset")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats over the same files")
    p.add_argument("--workers", default="1,2", help="loader worker counts")
    p.add_argument("--loader-samples", type=int, default=40, help="samples timed per loader repeat")
    p.add_argument("--memory-records", type=int, default=100_000)
    p.add_argument("--memory-samples", default="400,5000,15000,30000",
                   help="sample counts after which worker memory is read")
    p.add_argument("--memory-bound-mib", type=float, default=16.0,
                   help="largest allowed growth of a worker's private memory after the first reading; "
                        "the script exits 1 when a worker grows more")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                   help="per-sample times in wall-clock time or in this thread's CPU time (mapper tables only; "
                        "the loader's images/s are wall-clock)")
    p.add_argument("--small", action="store_true", help="tiny images (a smoke test, not a measurement)")
    p.add_argument("--output", help="write results.json and table.md into this folder")
    args = p.parse_args(argv)
    args.items = [i for i in args.items.split(",") if i]
    unknown = set(args.items) - set(ITEMS)
    if unknown:
        p.error(f"unknown items {sorted(unknown)}; choose from {','.join(ITEMS)}")
    args.workers = [int(v) for v in str(args.workers).split(",")]
    args.memory_samples = [int(v) for v in str(args.memory_samples).split(",")]
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    sys.path.insert(0, os.path.join(REPO, "projects", "APD"))
    import apd  # noqa: F401  (registers datasets)

    results = {"machine": f"{platform.node()}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}",
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "clock": args.clock,
               "load_average": list(os.getloadavg()),
               "command": " ".join(["benchmarks/data_pipeline.py"] + list(argv if argv is not None else sys.argv[1:]))}
    with tempfile.TemporaryDirectory(prefix="apd_data_bench_") as folder:
        for item in args.items:
            if item in ("cityscapes", "ade20k"):
                results[item] = bench_segmentation(item, folder, args)
            elif item == "coco":
                results[item] = bench_coco(folder, args)
            elif item == "loader":
                results[item] = bench_loader(folder, args)
            elif item == "memory":
                results[item] = bench_memory(args)
            print(markdown({item: results[item]}), flush=True)
    if args.output:
        os.makedirs(args.output, exist_ok=True)
        with open(os.path.join(args.output, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
        with open(os.path.join(args.output, "table.md"), "w") as f:
            load = ", ".join(f"{v:.1f}" for v in results["load_average"])
            f.write(f"{results['machine']}; {results['date']}; `{results['command']}`; {results['clock']} clock; "
                    f"load average {load} at the start\n\n" + markdown(results))
    return results


if __name__ == "__main__":
    out = main()
    sys.exit(0 if out.get("memory", {}).get("flat", True) else 1)

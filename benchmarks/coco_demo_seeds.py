#!/usr/bin/env python
"""Paired multi-seed benchmark of the detection distillers on the COCO demo (Mask R-CNN R34-FPN → R18-FPN).

    .venv/bin/python benchmarks/coco_demo_seeds.py --teacher output/demo/coco/teacher/model_final.pth
    .venv/bin/python benchmarks/coco_demo_seeds.py --teacher T.pth --seeds 1,2,3 --iters 300 \\
        --methods student,kd,apd --jobs 2

Every run is a plain ``train_net.py`` subprocess of a ``configs/COCO-InstanceSegmentation/*_demo.py`` config
with ``train.seed=<seed>``: the seed fixes the student's initialisation and, through the positional train
loader, the data order and augmentation, so all methods of one seed are **paired**. Data: the generated COCO
set of ``tools/run_demo.py --task coco`` (160 train / 40 val images; generated if missing). Scores: the
final checkpoint's ``COCOEvaluator`` box AP and mask AP. Output under ``--output`` (rewritten after every
run, so an interrupted benchmark keeps what finished; finished runs are reused): ``results.json`` and
``table.md`` with mean ± std per method and the mean paired difference to the student, KD and FPN imitation
with its 95% t-interval (two-sided, n − 1 degrees of freedom) and the wins.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import accuracy  # noqa: E402  (the paired t-interval and its formatting, shared with the segmentation table)
import run_demo  # noqa: E402  (the demo's data generation and metrics reader)

_C = "configs/COCO-InstanceSegmentation/"
# name: (config, needs the teacher, label)
METHODS = {
    "student": (_C + "mask_rcnn_R_18_FPN_demo.py", False, "Student alone"),
    "kd": (_C + "kd_mask_rcnn_R34_to_R18_FPN_demo.py", True, "+ logit KD on the ROI scores"),
    "fpnmimic": (_C + "fpnmimic_mask_rcnn_R34_to_R18_FPN_demo.py", True, "+ FPN imitation (MSE, 1×1 adapter)"),
    "apd_only": (_C + "apd_only_mask_rcnn_R34_to_R18_FPN_demo.py", True, "+ dense APD (FPN, mask class maps)"),
    "apd": (_C + "apd_mask_rcnn_R34_to_R18_FPN_demo.py", True, "+ dense APD + KD"),
    "roiapd": (_C + "roiapd_mask_rcnn_R34_to_R18_FPN_demo.py", True, "+ ROI-level APD + KD (ablation)"),
}
METRICS = (("bbox/AP", "box AP"), ("segm/AP", "mask AP"))
# the table's paired columns: what dense APD must beat (the student, KD, and FPN imitation, the detection
# baseline users compare with)
COMPARED_WITH = ("student", "kd", "fpnmimic")


def summarise(results, methods, seeds):
    """Markdown table of ``results[method][seed] = {metric: value}``: per method and metric the mean ± std, the
    per-seed values, and the mean paired difference to the student, KD and FPN imitation over the seeds both
    finished, with its 95% t-interval (two-sided, n − 1 degrees of freedom; ``accuracy.paired``) and the wins; bold where
    the interval excludes 0."""
    lines = []
    for key, header in METRICS:
        lines.append(f"\n{header} (final checkpoint, 40 val images):\n")
        lines.append("| method | n | mean ± std | per seed | Δ vs student [95% t-interval] (wins) | Δ vs KD "
                     "| Δ vs FPN imitation |")
        lines.append("|---|---|---|---|---|---|---|")
        for m in methods:
            runs = results.get(m, {})
            values = [runs[s][key] for s in seeds if s in runs]
            if not values:
                continue
            std = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
            per_seed = ", ".join(f"{runs[s][key]:.2f}" for s in seeds if s in runs)
            cells = []
            for ref in COMPARED_WITH:
                base = results.get(ref, {})
                paired = [s for s in seeds if s in runs and s in base]
                if m == ref or not paired:
                    cells.append("—")
                    continue
                cells.append(accuracy.format_diff(accuracy.paired([runs[s][key] - base[s][key] for s in paired])))
            lines.append(f"| {METHODS[m][2]} | {len(values)} | {statistics.fmean(values):.2f}{std} | {per_seed} "
                         f"| {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def run_one(method, seed, args, env):
    config, needs_teacher, _ = METHODS[method]
    out = os.path.join(args.output, method, f"seed{seed}")
    final = run_demo.final_metrics(out, METRICS[0][0])
    if final is not None and os.path.exists(os.path.join(out, "model_final.pth")) and not args.retrain:
        return method, seed, final, None
    cmd = [sys.executable, "train_net.py", "--config-file", config, "--overwrite",
           f"train.output_dir={out}", f"train.seed={seed}", f"train.max_iter={args.iters}"]
    if needs_teacher:
        cmd.append(f"model.teacher_weights={args.teacher}")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    log_path = out + ".stdout.log"  # next to the run directory, which train_net.py --overwrite archives
    start = time.time()
    with open(log_path, "w") as log:
        code = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    if code != 0:
        print(f"[coco_demo_seeds] {method} seed {seed} FAILED (exit {code}), see {log_path}", flush=True)
        return method, seed, None, cmd
    print(f"[coco_demo_seeds] {method} seed {seed} done in {(time.time() - start) / 60:.1f} min", flush=True)
    return method, seed, run_demo.final_metrics(out, METRICS[0][0]), cmd


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default=os.path.join(ROOT, "output", "demo", "coco", "teacher", "model_final.pth"))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--iters", type=int, default=600, help="train.max_iter of every student run")
    parser.add_argument("--jobs", type=int, default=1, help="runs at the same time")
    parser.add_argument("--output", default=os.path.join(ROOT, "output", "benchmarks", "coco_demo"))
    parser.add_argument("--data-root", default=os.path.join(ROOT, "datasets", "demo"))
    parser.add_argument("--retrain", action="store_true")
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {list(METHODS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    if any(METHODS[m][1] for m in methods) and not os.path.exists(args.teacher):
        parser.error(f"teacher checkpoint not found: {args.teacher} (train mask_rcnn_R_34_FPN_demo.py first)")
    env = dict(os.environ, DETECTRON2_DATASETS=args.data_root)
    env.setdefault("OMP_NUM_THREADS", "1")
    run_demo.ensure_data(args.data_root, "coco", env)
    os.makedirs(args.output, exist_ok=True)
    results_path = os.path.join(args.output, "results.json")
    results, commands = {}, {}
    if os.path.exists(results_path):
        with open(results_path) as f:
            saved = json.load(f)
        results = {m: {int(s): v for s, v in r.items()} for m, r in saved.get("results", {}).items()}
        commands = saved.get("commands", {})
    # Seed-major order: every method of seed 1 before seed 2, so a cut-short benchmark stays paired.
    jobs = [(m, s) for s in seeds for m in methods]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for method, seed, final, cmd in pool.map(lambda j: run_one(j[0], j[1], args, env), jobs):
            if final is None:
                continue
            results.setdefault(method, {})[seed] = {k: final.get(k, float("nan")) for k, _ in METRICS}
            if cmd:
                commands[f"{method}/seed{seed}"] = " ".join(cmd)
            with open(results_path, "w") as f:
                json.dump({"iters": args.iters, "teacher": args.teacher, "results": results,
                           "commands": commands}, f, indent=1)
            table = summarise(results, [m for m in METHODS if m in results], sorted({s for r in results.values() for s in r}))
            with open(os.path.join(args.output, "table.md"), "w") as f:
                f.write(table)
    seen = sorted({s for r in results.values() for s in r})
    print(summarise(results, [m for m in METHODS if m in results], seen) if results else "no finished runs")
    return results


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Paired multi-seed benchmark of the detection distillers on the COCO demo (Mask R-CNN R34-FPN → R18-FPN).

    .venv/bin/python benchmarks/coco_demo_seeds.py --teacher output/demo/coco/teacher/model_final.pth
    .venv/bin/python benchmarks/coco_demo_seeds.py --teacher T.pth --seeds 1,2,3 --iters 300 \\
        --methods student,kd,apd --jobs 2

The benchmark is a call of ``tools/compare_methods.py``'s functions on the demo's dense APD + KD config
(``configs/COCO-InstanceSegmentation/apd_mask_rcnn_R34_to_R18_FPN_demo.py``): every method is that config
turned into an ``apd.methods`` method (its names here are the tool's variants, :data:`METHODS`; the student
alone is its student, equal to ``mask_rcnn_R_18_FPN_demo.py``), every run a plain ``train_net.py`` subprocess
with ``train.seed=<seed>``, planned, resumed and shown (progress, ETA) by that tool. The seed fixes the
student's initialisation and, through the positional train loader, the data order and augmentation, so all
methods of one seed are **paired**. Data: the generated COCO set of ``tools/run_demo.py --task coco`` (160
train / 40 val images; generated if missing). Scores: the final checkpoint's ``COCOEvaluator`` box AP and
mask AP. Output under ``--output`` (rewritten after every run, so an interrupted benchmark keeps what
finished; finished runs of the same command, recorded in ``runs.json``, are reused and a run cut short
continues from its last checkpoint): ``results.json`` and ``table.md`` with mean ± std per method and the
mean paired difference to the student, KD and FPN imitation with its 95% t-interval (two-sided, n − 1
degrees of freedom) and the wins. The same runs from the command line::

    DETECTRON2_DATASETS=datasets/demo .venv/bin/python tools/compare_methods.py --seeds 1,2,3 \\
        --config-file configs/COCO-InstanceSegmentation/apd_mask_rcnn_R34_to_R18_FPN_demo.py \\
        --methods student,kd,fpnmimic=fpn_mimic,apd_only=apd,apd=apd_kd train.max_iter=600 \\
        model.teacher_weights=output/demo/coco/teacher/model_final.pth
"""
import argparse
import json
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import accuracy  # noqa: E402  (the paired t-interval and its formatting, shared with the segmentation table)
import run_demo  # noqa: E402  (the demo's data generation and metrics reader)
from compare_methods import State, load_comparison, plan_runs, run_plan  # noqa: E402

CONFIG = "configs/COCO-InstanceSegmentation/apd_mask_rcnn_R34_to_R18_FPN_demo.py"
# name: (apd.methods method, its overrides, label); names other than the method are tool variants
METHODS = {
    "student": ("student", (), "Student alone"),
    "kd": ("kd", (), "+ logit KD on the ROI scores"),
    "fpnmimic": ("fpn_mimic", (), "+ FPN imitation (MSE, 1×1 adapter)"),
    "apd_only": ("apd", (), "+ dense APD (FPN, mask class maps)"),
    "apd": ("apd_kd", (), "+ dense APD + KD"),
    # 256-d adapters for the demo's narrow box heads
    "roiapd": ("roi_apd_kd", ("model.distill_heads.roi_apd.hidden_dim=256", "model.distill_heads.roi_apd.embed_dim=256"),
               "+ ROI-level APD + KD (ablation)"),
}
METRICS = (("bbox/AP", "box AP"), ("segm/AP", "mask AP"))
# the table's paired columns: what dense APD must beat (the student, KD, and FPN imitation, the detection
# baseline users compare with)
COMPARED_WITH = ("student", "kd", "fpnmimic")


def tool_arguments(methods, iters: int, teacher: str):
    """``(--methods text, key=value list)`` of ``tools/compare_methods.py`` for ``methods`` (names of
    :data:`METHODS`): the variants as ``NAME=METHOD`` and ``NAME:key=value``, the schedule and the teacher."""
    text = ",".join(m if METHODS[m][0] == m else f"{m}={METHODS[m][0]}" for m in methods)
    opts = [f"train.max_iter={iters}", f"model.teacher_weights={teacher}"]
    return text, opts + [f"{m}:{o}" for m in methods for o in METHODS[m][1]]


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


def collect(output, methods, seeds, iters):
    """``{method: {seed: {metric: value}}}`` of the finished runs (final evaluation at ``iters``)."""
    results = {}
    for m in methods:
        for seed in seeds:
            final = run_demo.final_metrics(os.path.join(output, m, f"seed{seed}"), METRICS[0][0])
            if final is not None and final.get("iteration") in (iters - 1, iters):
                results.setdefault(m, {})[seed] = {k: final.get(k, float("nan")) for k, _ in METRICS}
    return results


def write_report(output, methods, seeds, iters, teacher):
    """Rewrite ``results.json`` (scores and each finished run's command) and ``table.md``; returns the results."""
    results, state = collect(output, methods, seeds, iters), State(output)
    commands = {f"{m}/seed{s}": " ".join(state.get(f"{m}/seed{s}").get("cmd", [])) for m, r in results.items() for s in r}
    with open(os.path.join(output, "results.json"), "w") as f:
        json.dump({"iters": iters, "teacher": teacher, "results": results, "commands": commands}, f, indent=1)
    with open(os.path.join(output, "table.md"), "w") as f:
        f.write(summarise(results, [m for m in METHODS if m in results], seeds))
    return results


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
    args.output, args.data_root = os.path.abspath(args.output), os.path.abspath(args.data_root)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {list(METHODS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    if any(METHODS[m][0] != "student" for m in methods) and not os.path.exists(args.teacher):
        parser.error(f"teacher checkpoint not found: {args.teacher} (train mask_rcnn_R_34_FPN_demo.py first)")
    comparison = load_comparison(os.path.join(ROOT, CONFIG), *tool_arguments(methods, args.iters, args.teacher))
    env = dict(os.environ, DETECTRON2_DATASETS=args.data_root)
    env.setdefault("OMP_NUM_THREADS", "1")
    run_demo.ensure_data(args.data_root, "coco", env)
    os.makedirs(args.output, exist_ok=True)
    # Seed-major order: every method of seed 1 before seed 2, so a cut-short benchmark stays paired.
    state = State(args.output)
    plan = plan_runs(comparison, seeds, args.output, state, args.retrain, tag="coco_demo_seeds")
    print(f"[coco_demo_seeds] {len(plan)} runs to train ({len(methods)} methods × {len(seeds)} seeds, {args.iters} "
          f"iterations, {args.jobs} at a time); results in {args.output}", flush=True)
    failures = run_plan(plan, jobs=max(1, args.jobs), env=env, max_iter=args.iters, state=state, tag="coco_demo_seeds",
                        on_done=lambda *_: write_report(args.output, methods, seeds, args.iters, args.teacher))
    results = write_report(args.output, methods, seeds, args.iters, args.teacher)
    print(summarise(results, [m for m in METHODS if m in results], seeds) if results else "no finished runs")
    if failures:
        sys.exit(f"{len(failures)} runs failed:\n" + "\n".join(failures))
    return results


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Accuracy benchmark: APD against the distillation baselines in the demo's pretrained regime, paired seeds.

    .venv/bin/python benchmarks/accuracy.py                       # the core table: 8 methods × 5 seeds (CPU)
    .venv/bin/python benchmarks/accuracy.py --preset ablation     # where APD pays: weights, scope, warm-up
    .venv/bin/python benchmarks/accuracy.py --preset gpu          # one GPU: 3× schedule, half-width student
    .venv/bin/python benchmarks/accuracy.py --preset ade          # the ADE20K-format benchmark (150 classes)
    .venv/bin/python benchmarks/accuracy.py --seeds 1,2 --methods student,kd,apd_kd   # a subset

The regime is the recipe's, shrunk: every student starts from the ImageNet stand-in backbone
(``checkpoints/demo/standin_r18_quarter*.pth``, loaded by ``train.init_checkpoint``; heads and adapters
random) and learns from the committed demo teacher (``checkpoints/demo/teacher_pspnet_r18_half.pth``, 4000
iterations, 57.67 val mIoU; docs/BENCHMARKS.md); both are made by ``tools/pretrain_standin.py``. Data: the
demo's generated Cityscapes-format set (160 train / 128 val images, ``tools/run_demo.py`` generates it).
The benchmark is a call of ``tools/compare_methods.py``'s functions on ``configs/demo/apd_pspnet_r18_demo.py``
(the official recipe): every method is that config turned into the method by ``apd.methods.apply_method``
(configs equal to the committed ``configs/demo/<method>_demo.py`` but for the output folder; the student
alone loads the ``student.``-prefixed stand-in without the prefix), every run a plain ``train_net.py``
subprocess with ``train.seed=<seed>``, planned, resumed and shown (progress, ETA) by that tool; the ablation's
runs are the tool's variants (``NAME=METHOD`` with ``NAME:key=value`` overrides, :data:`VARIANTS`). The
seed fixes the student's initialisation (heads; the backbone is the stand-in) and the data stream (order and
augmentation, positional loader), so all methods of one seed are **paired**. Every method gets the same
iterations, batch and data. The score is the **final** checkpoint's val mIoU (no checkpoint selection).
The core table from the command line (the same runs, in another output folder; the data as this script
generates it)::

    DETECTRON2_DATASETS=datasets/demo .venv/bin/python tools/compare_methods.py \\
        --config-file configs/demo/apd_pspnet_r18_demo.py --methods student,kd,cwd,dist,apd,apd_kd,apd_cwd,apd_dist \\
        --seeds 1-5 --jobs 2 --threads 1 model.teacher_weights=checkpoints/demo/teacher_pspnet_r18_half.pth

The ``ade`` preset is the same machinery on generated **ADE20K-format** data (150 classes, few per image;
``configs/demo/ade/``, each the demo config of the same method retargeted): its own stand-ins (pre-trained on
Cityscapes-format scenes, never on ADE20K-format ones) and teacher in ``checkpoints/demo/ade/`` (made by
``tools/pretrain_standin.py --benchmark ade``), its own data root (``datasets/demo_ade``), output folder and
report; its sizes are in docs/BENCHMARKS.md.

Output (rewritten after every finished run, so an interrupted benchmark keeps what ran): ``results.json``
(every run, the summary, the exact commands) and ``table.md`` (``results_<preset>.json`` and
``table_<preset>.md`` for the other presets, so the ablation never overwrites the core table in the folder
they share): per method the mean ± std over seeds, the
per-seed values and, against the student, KD and the best baseline (the best of KD / CWD / DIST by mean), the
mean paired difference with its 95% t-interval and the wins. Finished runs (final checkpoint + score, same
command, recorded in ``<output>/runs.json``) are reused and a run cut short continues from its last
checkpoint, so re-running the same command resumes; ``--retrain`` redoes them.
"""
import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import run_demo  # noqa: E402  (tools/run_demo.py: the demo's data, teacher and metric reader)
# tools/compare_methods.py: the method configs, the run plan (reuse, resume), the runs (progress, ETA) and the
# table's statistics, shared with the user's tool
from compare_methods import (State, format_diff, load_comparison, mean_std, paired, parse_seeds,  # noqa: E402,F401
                             plan_runs, run_plan, t_quantile)

_D = "configs/demo/"
CONFIG = "apd_pspnet_r18_demo.py"  # the official recipe; every method is it with apd.methods.apply_method
# The ablation's runs: a registered method with something changed (tools/compare_methods.py variants, passed
# as NAME=METHOD and NAME:key=value). name: (method, overrides, label)
VARIANTS = {
    "apd_kd_w1": ("apd_kd", ("model.loss_weights.loss_apd=1.0", "model.loss_weights.loss_pa=1.0"),
                  "+ APD + KD, APD/PA weight 1"),
    "apd_kd_w3": ("apd_kd", ("model.loss_weights.loss_apd=3.0", "model.loss_weights.loss_pa=3.0"),
                  "+ APD + KD, APD/PA weight 3"),
    "apd_kd_batch": ("apd_kd", ("model.distill_heads.apd.scope=batch",), "+ APD + KD, batch-scope prototypes"),
    "apd_kd_warmup": ("apd_kd", ("model.warmup_iters=67",), "+ APD + KD, distillation warm-up (1/3 of the run)"),
    "kd_warmup": ("kd", ("model.warmup_iters=67",), "+ logit KD, distillation warm-up (1/3 of the run)"),
    # control: what the ImageNet stand-in is worth (the previous regime's random initialisation)
    "student_scratch": ("student", ("train.init_checkpoint=",), "Student alone from random weights (no stand-in)"),
}
# What a method adds to: the same run without it (APD combinations → the method without APD; an ablation →
# the run it changes one thing of). The table's "Δ vs reference" column.
REFERENCE = {
    "apd": "student", "apd_kd": "kd", "apd_cwd": "cwd", "apd_dist": "dist",
    "apd_kd_w1": "apd_kd", "apd_kd_w3": "apd_kd", "apd_kd_batch": "apd_kd", "apd_kd_warmup": "apd_kd",
    "kd_warmup": "kd", "student_scratch": "student",
}
CORE = ["student", "kd", "cwd", "dist", "apd", "apd_kd", "apd_cwd", "apd_dist"]
ADE_CORE = ["student", "kd", "cwd", "dist", "apd_kd", "apd_cwd"]
BASELINES = ["kd", "cwd", "dist"]  # what a user would pick instead of APD today
PRESETS = {
    # CPU: the demo configs as they are (200 iterations, batch 8, 128×256 crops), 2 one-thread jobs at a time.
    "cpu": dict(methods=CORE, seeds=[1, 2, 3, 4, 5], iters=None, jobs=2, opts=[]),
    "ablation": dict(methods=["student", "kd", "apd_kd", "apd_kd_w1", "apd_kd_w3", "apd_kd_batch", "apd_kd_warmup",
                              "kd_warmup", "student_scratch"], seeds=[1, 2, 3, 4, 5], iters=None, jobs=2, opts=[]),
    # One GPU: 3× the CPU schedule and the student at the teacher's width (4× the CPU student's parameters,
    # from the half-width stand-in), 8 runs at a time (sized to about 7–9 min on an H200, a guess; not run
    # yet). The teacher stays the committed one, so teacher and student have the same architecture here: the
    # teacher's lead comes from its longer training, not from capacity (a wider teacher needs a wider stand-in).
    "gpu": dict(methods=CORE, seeds=[1, 2, 3, 4, 5], iters=600, jobs=8,
                opts=["train.device=cuda", "dataloader.train.num_workers=2",
                      "train.init_checkpoint=checkpoints/demo/standin_r18_half.pth"],
                student=["backbone.stem_width=32", "backbone.base_channels=32", "sem_seg_head.channels=128",
                         "sem_seg_head.aux_channels=64"]),
    # The ADE20K-format benchmark: the official recipe's config from configs/demo/ade/ (config_dir replaces
    # configs/demo/), its data set (pretrain_standin.ADE_DATA) under its own data root, its own teacher.
    "ade": dict(methods=ADE_CORE, seeds=[1, 2, 3, 4, 5], iters=None, jobs=2, opts=[], config_dir=_D + "ade/",
                data="ADE_DATA", data_root="datasets/demo_ade", teacher="checkpoints/demo/ade/teacher_pspnet_r18_half.pth"),
}
TEACHER = run_demo.SEG_TEACHER


def run_dir(output: str, method: str, seed: int) -> str:
    return os.path.join(output, method, f"seed{seed}")


def base_method(name: str) -> str:
    """The registered method (``apd.methods``) that ``name`` trains: itself, or a variant's method."""
    return VARIANTS[name][0] if name in VARIANTS else name


def label(name: str) -> str:
    """The table row's label: the registry's (``apd.methods``), or the variant's."""
    from apd.methods import get_method

    return VARIANTS[name][2] if name in VARIANTS else get_method(name, "sem_seg").label


def method_names():
    """The names a preset may use: every registered segmentation method and the variants."""
    from apd.methods import method_names as registered

    return registered("sem_seg") + [v for v in VARIANTS if v not in registered("sem_seg")]


def config_file(config_dir=None) -> str:
    """The config every method is made from: :data:`CONFIG` in ``configs/demo/`` or ``config_dir``."""
    return os.path.join(ROOT, config_dir or _D, CONFIG)


def tool_arguments(methods, iters: int, teacher: str, opts=(), student=()):
    """``(--methods text, key=value list)`` of ``tools/compare_methods.py`` for the benchmark: the variants as
    ``NAME=METHOD`` and ``NAME:key=value``, one schedule with one (final) evaluation and checkpoint, the
    teacher, the preset's and user's ``opts``, and ``student``: keys of the student model (e.g.
    ``backbone.stem_width=32``) as ``model.student.<key>``, which the tool hands the student alone as
    ``model.<key>``, so every method of a preset trains the same student."""
    text = ",".join(f"{m}={VARIANTS[m][0]}" if m in VARIANTS else m for m in methods)
    common = [f"train.max_iter={iters}", f"train.eval_period={iters}", f"train.checkpointer.period={iters}",
              f"model.teacher_weights={teacher}", *opts, *(f"model.student.{o}" for o in student)]
    per_method = [f"{m}:{o}" for m in methods if m in VARIANTS for o in VARIANTS[m][1]]
    return text, common + per_method


def benchmark_comparison(preset: str, methods, iters: int, teacher: str, opts=()):
    """The ``tools/compare_methods.py`` comparison (``load_comparison``) of ``methods`` under ``preset``:
    the preset's config, :func:`tool_arguments` with the preset's overrides, then ``opts``. Raises what
    ``load_comparison`` raises (ValueError naming a bad method or override)."""
    spec = PRESETS[preset]
    text, common = tool_arguments(methods, iters, teacher, list(spec["opts"]) + list(opts), spec.get("student", ()))
    return load_comparison(config_file(spec.get("config_dir")), text, common)


def step_times(out: str):
    """Median training-step time and data-loading time per iteration of a run (metrics.json)."""
    times, data = [], []
    for entry in run_demo.metrics_records(out):
        if "time" in entry and "data_time" in entry:
            times.append(entry["time"])
            data.append(entry["data_time"])
    if not times:
        return None, None
    return statistics.median(times), statistics.median(data)


def teacher_score(output: str, methods, seeds):
    """Teacher mIoU / pixel acc as a distillation run logged it before step 0 (``teacher/sem_seg/*``)."""
    for seed in seeds:
        for method in methods:
            if base_method(method) == "student":
                continue
            entry = run_demo.teacher_logged_score(run_dir(output, method, seed), "sem_seg/mIoU")
            if entry is not None:
                return entry["teacher/sem_seg/mIoU"], entry.get("teacher/sem_seg/pACC")
    return None, None


def summarize(results, methods, seeds):
    """Per method: mIoU per seed, mean ± std, and paired per-seed differences (with 95% t-intervals) to the
    student, to KD, to the best baseline (the best of KD / CWD / DIST by mean over the seeds they share) and
    to the method's :data:`REFERENCE` (what adding APD, or the ablation's one change, does)."""
    miou = {m: {s: results[m][s]["mIoU"] for s in seeds if "mIoU" in results.get(m, {}).get(s, {})}
            for m in methods}
    base = [b for b in BASELINES if b in methods and miou[b]]
    best = max(base, key=lambda b: statistics.mean(miou[b].values())) if base else None
    rows = []
    for method in methods:
        row = {"method": method, "label": label(method), "mIoU": miou[method],
               "opts": list(VARIANTS[method][1]) if method in VARIANTS else []}
        row["mean"], row["std"] = mean_std(list(miou[method].values()))
        row["pACC_mean"], _ = mean_std([results[method][s]["pACC"] for s in miou[method]])
        for name, ref in (("student", "student"), ("kd", "kd"), ("best", best), ("ref", REFERENCE.get(method))):
            if ref is None or ref == method or ref not in miou:
                continue
            shared = [s for s in seeds if s in miou[method] and s in miou[ref]]
            if shared:
                row[f"vs_{name}"] = dict(paired([miou[method][s] - miou[ref][s] for s in shared]), ref=ref)
        for key in ("wall_s", "step_s", "data_s"):
            vals = [results[method][s][key] for s in miou[method] if results[method][s].get(key) is not None]
            row[key] = statistics.median(vals) if vals else None
        rows.append(row)
    return rows, best


def _fmt_ref(d) -> str:
    return f"vs {d['ref']}: {format_diff(d)}" if d else "—"


def format_table(rows, teacher, iters, seeds, best=None) -> str:
    def pm(mean, std):
        if mean != mean:
            return "—"
        return f"{mean:.2f} ± {std:.2f}" if std == std else f"{mean:.2f}"

    seed_cols = " | ".join(f"seed {s}" for s in seeds)
    best_label = f"Δ vs best baseline ({label(best).lstrip('+ ')})" if best else "Δ vs best baseline"
    lines = [
        f"| method | mIoU mean ± std | {seed_cols} | Δ vs student [95% CI] (wins) | Δ vs KD [95% CI] (wins) | "
        f"{best_label} [95% CI] (wins) | Δ vs reference (what it adds) [95% CI] (wins) | pixel acc | step time | "
        "run wall time |",
        "|---|---|" + "---|" * len(seeds) + "---|---|---|---|---|---|---|",
    ]
    t_miou, t_pacc = teacher
    if t_miou is not None:
        lines.append(f"| {run_demo.LABELS['teacher']} (the committed checkpoint, for reference) | {t_miou:.2f} | "
                     + " | ".join("" for _ in seeds) + f" | | | | | {t_pacc or float('nan'):.2f} | | |")
    for r in rows:
        per_seed = " | ".join(f"{r['mIoU'][s]:.2f}" if s in r["mIoU"] else "" for s in seeds)
        step = f"{r['step_s']:.2f} s" if r.get("step_s") is not None else ""
        wall = f"{r['wall_s'] / 60:.1f} min" if r.get("wall_s") else ""
        pacc = f"{r['pACC_mean']:.2f}" if r["pACC_mean"] == r["pACC_mean"] else ""
        lines.append(
            f"| {r['label']} | {pm(r['mean'], r['std'])} | {per_seed} | {format_diff(r.get('vs_student'))} | "
            f"{format_diff(r.get('vs_kd'))} | {format_diff(r.get('vs_best'))} | {_fmt_ref(r.get('vs_ref'))} | {pacc} | "
            f"{step} | {wall} |"
        )
    lines.append("")
    lines.append(
        f"Final checkpoint of each run ({iters} iterations), val of the generated data (single scale); seeds "
        f"{', '.join(map(str, seeds))} (an empty cell: that run has not finished); std = sample standard deviation "
        "over seeds. Δ = mean of the per-seed paired difference (same student initialisation and data stream) "
        "with its 95% t-interval; **bold** where the interval excludes 0; wins = seeds where the method is "
        "better. Reference: the same run without APD (APD combinations) or without the ablation's one "
        "change. Step time: median of metrics.json `time` over the runs of a method; wall time: median per run "
        "(start-up and evaluation included).")
    return "\n".join(lines)


def collect(output, methods, seeds, iters, results):
    """Scores of every finished run (final checkpoint, the schedule asked for) into ``results``, with its
    step times (metrics.json) and wall time (``<output>/runs.json``)."""
    state = State(output)
    for method in methods:
        for seed in seeds:
            out = run_dir(output, method, seed)
            m = run_demo.final_metrics(out)
            if m is None or m.get("iteration") not in (iters - 1, iters):
                continue
            step, data = step_times(out)
            results.setdefault(method, {})[seed] = dict(
                mIoU=m["sem_seg/mIoU"], pACC=m.get("sem_seg/pACC", float("nan")), iteration=m["iteration"],
                step_s=step, data_s=data, wall_s=state.get(f"{method}/seed{seed}").get("wall_s"))
    return results


def report_names(preset: str):
    """(results, table) file names of a preset's report. The cpu and ablation presets share one output
    folder (so shared runs are reused); each keeps its own report, so running one never overwrites the
    other's: ``results.json`` / ``table.md`` for cpu, ``results_<preset>.json`` / ``table_<preset>.md`` else."""
    suffix = "" if preset == "cpu" else f"_{preset}"
    return f"results{suffix}.json", f"table{suffix}.md"


def write_report(output, methods, seeds, iters, teacher, argv, start, quiet=False, preset="cpu"):
    """Rewrite the preset's results and table (:func:`report_names`) from the finished runs; returns the rows."""
    results = collect(output, methods, seeds, iters, {})
    rows, best = summarize(results, methods, seeds)
    tscore = teacher_score(output, methods, seeds)
    table = format_table(rows, tscore, iters, seeds, best)
    os.makedirs(output, exist_ok=True)
    results_name, table_name = report_names(preset)
    with open(os.path.join(output, table_name), "w") as f:
        f.write(table + "\n")
    done = sum(len(r) for r in results.values())
    state = State(output)
    with open(os.path.join(output, results_name), "w") as f:
        json.dump({"argv": argv, "preset": preset, "iters": iters, "seeds": seeds, "methods": methods,
                   "teacher": teacher,
                   "teacher_mIoU": tscore[0], "best_baseline": best, "runs_finished": done,
                   "runs_planned": len(methods) * len(seeds),
                   "runs": {m: {str(s): v for s, v in r.items()} for m, r in results.items()},
                   "commands": {m: {str(s): " ".join(state.get(f"{m}/seed{s}").get("cmd", [])[1:]) or None for s in r}
                                for m, r in results.items()},
                   "summary": rows, "wall_s_this_invocation": time.time() - start}, f, indent=1)
    if not quiet:
        print("\n" + table)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu",
                        help="cpu: the core table (default); ablation: APD/PA weight, scope, warm-up, plus KD with "
                        "warm-up (kd_warmup) and the student from random weights (student_scratch); gpu: one GPU")
    parser.add_argument("--seeds", default=None, help="train.seed of the runs (1,2,3 or 1-5; preset: 1-5)")
    parser.add_argument("--methods", default=None,
                        help="comma list of segmentation methods (apd.methods) and the ablation's variants")
    parser.add_argument("--iters", type=int, default=None,
                        help="train.max_iter of every run (default: the demo configs' own, 200)")
    parser.add_argument("--output", default=None, help="default: output/benchmarks/accuracy_<preset>; the cpu "
                        "and ablation presets share output/benchmarks/accuracy, so shared runs are reused")
    parser.add_argument("--data-root", default=None, help="default: datasets/demo (ade: datasets/demo_ade)")
    parser.add_argument("--teacher", default=None,
                        help="teacher weights (default: the committed demo teacher; ade: checkpoints/demo/ade/'s)")
    parser.add_argument("--data-seed", type=int, default=0, help="dataset generation seed (as run_demo.py)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="training runs at a time, CPU threads split evenly (results are bit-reproducible for the same "
                             "threads per run)")
    parser.add_argument("--threads", type=int, default=None,
                        help="OMP/MKL threads per run (default: CPU cores / --jobs; on a shared machine use 1)")
    parser.add_argument("--retrain", action="store_true", help="retrain runs that already finished")
    parser.add_argument("--report-only", action="store_true",
                        help="only rewrite the report (results.json / table.md, or the preset's)")
    parser.add_argument("--opts", nargs="*", default=None,
                        help="extra key=value overrides for every run (NAME:key=value for method NAME's runs)")
    args = parser.parse_args(argv)
    preset = PRESETS[args.preset]

    try:
        seeds = parse_seeds(args.seeds) if args.seeds else list(preset["seeds"])
    except ValueError as e:
        parser.error(str(e))
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else list(preset["methods"])
    unknown = [m for m in methods if m not in method_names()]
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {method_names()}")
    jobs = args.jobs or preset["jobs"]
    iters = args.iters or preset["iters"] or run_demo.config_max_iter(config_file(preset.get("config_dir")))
    if iters < 1 or jobs < 1:
        parser.error("--iters and --jobs must be >= 1")
    output = args.output or os.path.join(
        ROOT, "output", "benchmarks", "accuracy" if args.preset in ("cpu", "ablation") else f"accuracy_{args.preset}")
    teacher = os.path.abspath(os.path.join(ROOT, args.teacher or preset.get("teacher", TEACHER)))
    data_root = args.data_root or os.path.join(ROOT, preset.get("data_root", os.path.join("datasets", "demo")))
    start = time.time()
    argv_record = sys.argv[1:] if argv is None else list(argv)
    if args.report_only:
        return write_report(output, methods, seeds, iters, teacher, argv_record, start, preset=args.preset)
    try:
        comparison = benchmark_comparison(args.preset, methods, iters, teacher, args.opts or [])
    except (ValueError, KeyError, FileNotFoundError) as e:
        parser.error(str(e))

    # 1. data (the demo's), and the teacher must exist.
    threads = args.threads or max(1, (os.cpu_count() or 1) // jobs)
    env = dict(os.environ, DETECTRON2_DATASETS=data_root, OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    if "data" in preset:
        import pretrain_standin  # tools/: the generated data sets of the benchmarks

        pretrain_standin.ensure_data(data_root, getattr(pretrain_standin, preset["data"]), env)
    else:
        run_demo.ensure_data(data_root, "seg", env, args.data_seed)
    if any(base_method(m) != "student" for m in methods) and not os.path.exists(teacher):
        sys.exit(f"error: no teacher at {teacher}; make it with `.venv/bin/python tools/pretrain_standin.py`")

    # 2. the runs (tools/compare_methods.py), seed-major; the report is rewritten after each.
    state = State(output)
    plan = plan_runs(comparison, seeds, output, state, args.retrain, tag="accuracy")
    print(f"[accuracy] {len(plan)} runs to train ({len(methods)} methods × {len(seeds)} seeds, {iters} iterations, "
          f"{jobs} at a time); results in {output}", flush=True)
    failures = run_plan(plan, jobs=jobs, env=env, max_iter=iters, state=state, tag="accuracy",
                        on_done=lambda *_: write_report(output, methods, seeds, iters, teacher, argv_record, start,
                                                        quiet=True, preset=args.preset))

    rows = write_report(output, methods, seeds, iters, teacher, argv_record, start, preset=args.preset)
    print(f"\n[accuracy] {(time.time() - start) / 60:.1f} min; results in {output}")
    if failures:
        sys.exit(f"{len(failures)} runs failed:\n" + "\n".join(failures))
    return rows


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Accuracy benchmark: APD against the distillation baselines on the generated Cityscapes-format data.

    .venv/bin/python benchmarks/accuracy.py                      # the whole benchmark, one command
    .venv/bin/python benchmarks/accuracy.py --seeds 1,2,3 --iters 300 --methods student,kd,apd_kd

Steps (each training run is a plain ``train_net.py`` subprocess, like tools/run_demo.py):
  1. the demo data and the demo teacher: ``tools/run_demo.py --runs teacher`` (generates the data if it is
     missing; reuses ``<demo-output>/teacher/model_final.pth`` when present, else trains it);
  2. for every seed and method, train the demo student (``train.seed=<seed>``: model initialisation
     (Detectron2's ``default_setup`` seeds all RNGs before the model is built), data order, augmentation
     and dropout; the student's initial weights are the same for every method of one seed);
  3. score the **final** checkpoint of every run on val (no checkpoint selection), and print
     mIoU mean ± std over seeds per method, the per-seed differences to the student and to KD, and the
     teacher's mIoU. Results go to ``<output>/results.json`` and ``<output>/table.md``.
Finished runs (final checkpoint + final score present, same schedule) are reused unless --retrain.
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
import run_demo  # noqa: E402  (tools/run_demo.py: the demo's data + teacher step and its metric reader)

# name: (config, needs the teacher, label)
METHODS = {
    "student": (run_demo.RUNS["student"][0], False, "Student alone (no distillation)"),
    "kd": (run_demo.RUNS["kd"][0], True, "+ logit KD (w 10, T 1)"),
    "cwd": ("configs/demo/cwd_pspnet_r18_demo.py", True, "+ CWD (w 3, T 4)"),
    "apd": ("configs/demo/apd_only_pspnet_r18_demo.py", True, "+ APD (APD + PA, w 10 each)"),
    "apd_kd": (run_demo.RUNS["apd"][0], True, "+ APD + KD (official recipe)"),
}
DEFAULT_ITERS = 300
WALL_FILE = "benchmark_wall_time.json"


def run_dir(output: str, method: str, seed: int) -> str:
    return os.path.join(output, method, f"seed{seed}")


def is_complete(out: str, iters: int) -> bool:
    m = run_demo.final_metrics(out)
    return (
        m is not None
        and m.get("iteration") in (iters - 1, iters)  # the final evaluation is logged at max_iter
        and os.path.exists(os.path.join(out, "model_final.pth"))
    )


def train_command(method: str, seed: int, out: str, iters: int, teacher: str, eval_teacher: bool, opts=()):
    config, needs_teacher, _ = METHODS[method]
    cmd = [
        sys.executable, "train_net.py", "--config-file", config, "--overwrite",
        f"train.output_dir={out}",
        f"train.seed={seed}",
        f"train.max_iter={iters}",
        f"train.eval_period={iters}",  # one evaluation: the final checkpoint's
        f"train.checkpointer.period={iters}",
        f"train.eval_teacher={eval_teacher}",
    ]
    if needs_teacher:
        cmd.append(f"model.teacher_weights={teacher}")
    return cmd + list(opts)


def launch(cmd, out: str, env) -> float:
    """Run one training subprocess, its console output in ``<out>/stdout.log``; returns wall seconds."""
    os.makedirs(out, exist_ok=True)
    log = os.path.join(out, "stdout.log")
    print("+ " + " ".join(cmd) + f"   > {os.path.relpath(log, ROOT)}", flush=True)
    start = time.time()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"training failed (exit {proc.returncode}): {' '.join(cmd)}; see {log}")
    wall = time.time() - start
    with open(os.path.join(out, WALL_FILE), "w") as f:
        json.dump({"wall_s": wall, "cmd": cmd}, f)
    return wall


def recorded_wall(out: str):
    """Wall time of a finished run, as recorded by :func:`launch` (None for runs made otherwise)."""
    path = os.path.join(out, WALL_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f).get("wall_s")


def step_times(out: str):
    """Median training-step time and data-loading time per iteration of a run (metrics.json)."""
    times, data = [], []
    path = os.path.join(out, "metrics.json")
    with open(path) as f:
        for line in f:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "time" in entry and "data_time" in entry:
                times.append(entry["time"])
                data.append(entry["data_time"])
    if not times:
        return None, None
    return statistics.median(times), statistics.median(data)


def teacher_score(output: str, methods, seeds, teacher: str):
    """Teacher mIoU: logged by the distillation run that evaluated it, else the teacher's own run."""
    for seed in seeds:
        for method in methods:
            path = os.path.join(run_dir(output, method, seed), "metrics.json")
            if not METHODS[method][1] or not os.path.exists(path):
                continue
            with open(path) as f:
                for line in f:
                    entry = json.loads(line)
                    if "teacher/sem_seg/mIoU" in entry:
                        return entry["teacher/sem_seg/mIoU"], entry.get("teacher/sem_seg/pACC")
    m = run_demo.final_metrics(os.path.dirname(teacher))
    return (m["sem_seg/mIoU"], m.get("sem_seg/pACC")) if m else (None, None)


def mean_std(values):
    if not values:
        return float("nan"), float("nan")
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


def summarize(results, methods, seeds):
    """Per method: mIoU per seed, mean ± std, and paired per-seed differences to student / KD."""
    rows = []
    for method in methods:
        miou = {s: results[method][s]["mIoU"] for s in seeds if s in results.get(method, {})}
        row = {"method": method, "label": METHODS[method][2], "mIoU": miou}
        row["mean"], row["std"] = mean_std(list(miou.values()))
        row["pACC_mean"], _ = mean_std([results[method][s]["pACC"] for s in miou])
        for ref in ("student", "kd"):
            if ref in results and ref != method:
                diffs = [miou[s] - results[ref][s]["mIoU"] for s in miou if s in results[ref]]
                row[f"vs_{ref}"] = mean_std(diffs) + (sum(d > 0 for d in diffs), len(diffs))
        for key in ("wall_s", "step_s", "data_s"):
            vals = [results[method][s][key] for s in miou if results[method][s].get(key) is not None]
            row[key] = statistics.median(vals) if vals else None
        rows.append(row)
    return rows


def format_table(rows, teacher, iters, seeds) -> str:
    def pm(mean, std):
        return f"{mean:.2f} ± {std:.2f}" if std == std else f"{mean:.2f}"

    def diff(row, ref):
        d = row.get(f"vs_{ref}")
        return f"{d[0]:+.2f} ± {d[1]:.2f} ({d[2]}/{d[3]})" if d and d[3] else "—"

    seed_cols = " | ".join(f"seed {s}" for s in seeds)
    lines = [
        f"| method | mIoU mean ± std | {seed_cols} | Δ vs student (wins) | Δ vs KD (wins) | pixel acc | "
        "step time | data time | run wall time |",
        "|---|---|" + "---|" * len(seeds) + "---|---|---|---|---|---|",
    ]
    t_miou, t_pacc = teacher
    if t_miou is not None:
        lines.append(f"| {run_demo.LABELS['teacher']} (one checkpoint) | {t_miou:.2f} | "
                     + " | ".join("" for _ in seeds) + f" | | | {t_pacc or float('nan'):.2f} | | | |")
    for r in rows:
        per_seed = " | ".join(f"{r['mIoU'][s]:.2f}" if s in r["mIoU"] else "" for s in seeds)
        step = f"{r['step_s']:.2f} s" if r.get("step_s") is not None else ""
        data = f"{r['data_s'] * 1e3:.0f} ms" if r.get("data_s") is not None else ""
        wall = f"{r['wall_s'] / 60:.1f} min" if r.get("wall_s") else ""
        lines.append(
            f"| {r['label']} | {pm(r['mean'], r['std'])} | {per_seed} | {diff(r, 'student')} | {diff(r, 'kd')} | "
            f"{r['pACC_mean']:.2f} | {step} | {data} | {wall} |"
        )
    lines.append("")
    lines.append(f"Final checkpoint of each run ({iters} iterations), val of the generated data, single scale; "
                 f"seeds {', '.join(map(str, seeds))}; std = sample standard deviation over seeds; "
                 "Δ = mean ± std of the per-seed difference (same initialisation and data order), "
                 "wins = seeds where the method is better. Step / data time: medians of metrics.json "
                 "(`time`, `data_time`: time the trainer waited for the loader) over all runs of a method; "
                 "wall time: median per run (start-up and evaluation included).")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="1,2,3", help="train.seed of the runs (comma list, at least 3)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma list from {list(METHODS)}")
    parser.add_argument("--iters", type=int, default=DEFAULT_ITERS, help="train.max_iter of every student run")
    parser.add_argument("--output", default=os.path.join(ROOT, "output", "benchmarks", "accuracy"))
    parser.add_argument("--data-root", default=os.path.join(ROOT, "datasets", "demo"))
    parser.add_argument("--demo-output", default=os.path.join(ROOT, "output", "demo"),
                        help="where tools/run_demo.py keeps (or trains) the teacher")
    parser.add_argument("--data-seed", type=int, default=0, help="dataset generation seed (as run_demo.py)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="training runs at a time, CPU threads split evenly (two 1-thread runs use 2 cores "
                             "better than one 2-thread run; results are bit-reproducible for the same --jobs)")
    parser.add_argument("--retrain", action="store_true", help="retrain runs that already finished")
    parser.add_argument("--opts", nargs="*", default=[],
                        help="extra train_net.py key=value overrides for every run (e.g. an ablation of the "
                             "selected methods: --methods apd_kd --opts adapter_optimizer.lr=1e-3)")
    args = parser.parse_args(argv)

    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {list(METHODS)}")
    if len(set(seeds)) != len(seeds) or not seeds:
        parser.error(f"--seeds must be distinct integers, got {args.seeds!r}")
    if args.iters < 1 or args.jobs < 1:
        parser.error("--iters and --jobs must be >= 1")
    start = time.time()

    # 1. data + teacher, exactly as the demo makes them.
    teacher = os.path.join(args.demo_output, "teacher", "model_final.pth")
    if any(METHODS[m][1] for m in methods) or not os.path.isdir(os.path.join(args.data_root, "cityscapes")):
        run_demo.main(["--runs", "teacher", "--data-root", args.data_root, "--output", args.demo_output,
                       "--seed", str(args.data_seed)])

    # 2. the student runs.
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    env = dict(os.environ, DETECTRON2_DATASETS=args.data_root, OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    jobs, results = [], {m: {} for m in methods}
    first_distill = next((m for m in methods if METHODS[m][1]), None)
    for seed in seeds:
        for method in methods:
            out = run_dir(args.output, method, seed)
            eval_teacher = method == first_distill and seed == seeds[0]
            if is_complete(out, args.iters) and not args.retrain:
                print(f"[accuracy] {method} seed {seed}: finished run in {out}, reused (--retrain to redo)")
                results[method][seed] = {"wall_s": recorded_wall(out)}
                continue
            cmd = train_command(method, seed, out, args.iters, teacher, eval_teacher, args.opts)
            jobs.append((method, seed, out, cmd))

    def work(job):
        method, seed, out, cmd = job
        results[method][seed] = {"wall_s": launch(cmd, out, env)}

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for fut in [pool.submit(work, j) for j in jobs]:
            fut.result()

    # 3. scores of the final checkpoints.
    for method in methods:
        for seed in seeds:
            out = run_dir(args.output, method, seed)
            m = run_demo.final_metrics(out)
            step, data = step_times(out)
            results[method][seed].update(mIoU=m["sem_seg/mIoU"], pACC=m.get("sem_seg/pACC", float("nan")),
                                         iteration=m["iteration"], step_s=step, data_s=data)
    rows = summarize(results, methods, seeds)
    tscore = teacher_score(args.output, methods, seeds, teacher)
    table = format_table(rows, tscore, args.iters, seeds)
    print("\n" + table)
    os.makedirs(args.output, exist_ok=True)
    with open(os.path.join(args.output, "table.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(args.output, "results.json"), "w") as f:
        json.dump({"argv": sys.argv[1:], "iters": args.iters, "seeds": seeds, "teacher": teacher,
                   "teacher_mIoU": tscore[0], "runs": {m: {str(s): v for s, v in r.items()} for m, r in results.items()},
                   "summary": rows, "total_wall_s": time.time() - start}, f, indent=1)
    print(f"\n[accuracy] total {(time.time() - start) / 60:.1f} min; results in {args.output}")
    return rows


if __name__ == "__main__":
    main()

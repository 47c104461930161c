#!/usr/bin/env python
"""The README's main job: teacher → student baseline → student + KD → student + APD on generated data, CPU.

    .venv/bin/python tools/run_demo.py                  # everything, prints the mIoU table
    .venv/bin/python tools/run_demo.py --iters 200      # shorter schedule
    .venv/bin/python tools/run_demo.py --runs teacher,student,apd

Steps (each a plain `train_net.py` run, so this is exactly what a user runs on real data):
  1. write a small Cityscapes-format dataset (leftImg8bit + gtFine polygons, prepared by the real
     cityscapesscripts-based script) under --data-root, unless it is already there;
  2. train the teacher (configs/demo/pspnet_r18_wide_demo.py); its final checkpoint is cached and reused;
  3. train the student alone, with logit KD, and with APD (+KD), all from the same initialisation and seed;
  4. print the final val mIoU of each run (the last checkpoint, never the best one).
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RUNS = {
    # name: (config, needs teacher)
    "teacher": ("configs/demo/pspnet_r18_wide_demo.py", False),
    "student": ("configs/demo/pspnet_r18_demo.py", False),
    "kd": ("configs/demo/kd_pspnet_r18_demo.py", True),
    "apd": ("configs/demo/apd_pspnet_r18_demo.py", True),
}
LABELS = {
    "teacher": "Teacher PSPNet-R18, half width",
    "student": "Student PSPNet-R18, quarter width, alone",
    "kd": "Student + logit KD",
    "apd": "Student + APD (+ logit KD, official recipe)",
}


def final_metrics(output_dir: str):
    """Last evaluation entry of a run's metrics.json (the final checkpoint's score)."""
    path = os.path.join(output_dir, "metrics.json")
    if not os.path.exists(path):
        return None
    last = None
    with open(path) as f:
        for line in f:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "sem_seg/mIoU" in entry:
                last = entry
    return last


def run(cmd, env):
    print("+ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=os.path.join(ROOT, "datasets", "demo"))
    parser.add_argument("--output", default=os.path.join(ROOT, "output", "demo"))
    parser.add_argument("--iters", type=int, default=None, help="override train.max_iter of every run")
    parser.add_argument("--runs", default="teacher,student,kd,apd")
    parser.add_argument("--seed", type=int, default=0, help="dataset generation seed")
    parser.add_argument("--retrain", action="store_true", help="retrain runs whose output already exists")
    args = parser.parse_args(argv)

    env = dict(os.environ, DETECTRON2_DATASETS=args.data_root)
    env.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    if not os.path.isdir(os.path.join(args.data_root, "cityscapes", "gtFine")):
        run([sys.executable, "datasets/generate_demo_data.py", "--root", args.data_root,
             "--datasets", "cityscapes", "--seed", str(args.seed)], env)

    teacher_ckpt = os.path.join(args.output, "teacher", "model_final.pth")
    wanted = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = [r for r in wanted if r not in RUNS]
    if unknown:
        parser.error(f"unknown runs {unknown}; choose from {list(RUNS)}")
    if any(RUNS[r][1] for r in wanted) and "teacher" not in wanted and not os.path.exists(teacher_ckpt):
        wanted.insert(0, "teacher")
    times = {}
    for name in wanted:
        config, needs_teacher = RUNS[name]
        out = os.path.join(args.output, name)
        if os.path.exists(os.path.join(out, "model_final.pth")) and not args.retrain:
            print(f"[demo] {name}: {out}/model_final.pth exists, reusing it (--retrain to redo)")
            continue
        cmd = [sys.executable, "train_net.py", "--config-file", config, "--overwrite",
               f"train.output_dir={out}"]
        if needs_teacher:
            cmd.append(f"model.teacher_weights={teacher_ckpt}")
        if args.iters:
            cmd.append(f"train.max_iter={args.iters}")
        start = time.time()
        run(cmd, env)
        times[name] = time.time() - start

    rows = []
    for name in RUNS:
        m = final_metrics(os.path.join(args.output, name))
        if m is None:
            continue
        rows.append((LABELS[name], m["sem_seg/mIoU"], m.get("sem_seg/pACC", float("nan")), m["iteration"],
                     times.get(name)))
    print("\nFinal val scores on the generated Cityscapes-format data (last checkpoint, single scale):")
    print(f"| {'run':<48} | {'mIoU':>6} | {'pixel acc':>9} | {'iters':>5} | {'train time':>10} |")
    print(f"|{'-' * 50}|{'-' * 8}|{'-' * 11}|{'-' * 7}|{'-' * 12}|")
    for label, miou, pacc, iters, t in rows:
        tt = f"{t / 60:.1f} min" if t else "cached"
        print(f"| {label:<48} | {miou:6.2f} | {pacc:9.2f} | {iters:5d} | {tt:>10} |")
    return rows


if __name__ == "__main__":
    main()

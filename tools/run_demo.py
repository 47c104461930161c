#!/usr/bin/env python
"""The README's main job: teacher → student baseline → student + KD → student + APD on generated data, CPU.

    .venv/bin/python tools/run_demo.py                  # everything, prints the mIoU table
    .venv/bin/python tools/run_demo.py --iters 200      # shorter schedule
    .venv/bin/python tools/run_demo.py --runs teacher,student,apd
    .venv/bin/python tools/run_demo.py --task coco     # Mask R-CNN R34 → R18 on generated COCO data

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
_COCO = "configs/COCO-InstanceSegmentation/"
COCO_RUNS = {
    "teacher": (_COCO + "mask_rcnn_R_34_FPN_demo.py", False),
    "student": (_COCO + "mask_rcnn_R_18_FPN_demo.py", False),
    "kd": (_COCO + "kd_mask_rcnn_R34_to_R18_FPN_demo.py", True),
    "apd": (_COCO + "apd_mask_rcnn_R34_to_R18_FPN_demo.py", True),
}
COCO_LABELS = {
    "teacher": "Teacher Mask R-CNN R34-FPN (narrow heads)",
    "student": "Student Mask R-CNN R18-FPN (narrower), alone",
    "kd": "Student + logit KD (box scores)",
    "apd": "Student + ROI-level APD + KD",
}
# task: runs, labels, generated dataset (+ generator options), metric columns (key, header)
TASKS = {
    "seg": dict(runs=RUNS, labels=LABELS, dataset="cityscapes", check="cityscapes/gtFine", gen_args=[],
                output="demo", metrics=[("sem_seg/mIoU", "mIoU"), ("sem_seg/pACC", "pixel acc")],
                title="generated Cityscapes-format data (last checkpoint, single scale)"),
    "coco": dict(runs=COCO_RUNS, labels=COCO_LABELS, dataset="coco", check="coco/annotations",
                 gen_args=["--num-train", "160", "--num-val", "40"], output=os.path.join("demo", "coco"),
                 metrics=[("bbox/AP", "box AP"), ("bbox/AP50", "box AP50"), ("segm/AP", "mask AP")],
                 title="generated COCO-format data, COCOEvaluator (last checkpoint)"),
}


def final_metrics(output_dir: str, key: str = "sem_seg/mIoU"):
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
            if key in entry:
                last = entry
    return last


def run(cmd, env):
    print("+ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASKS), default="seg",
                        help="seg: PSPNet on Cityscapes-format data (default); coco: Mask R-CNN on COCO-format data")
    parser.add_argument("--data-root", default=os.path.join(ROOT, "datasets", "demo"))
    parser.add_argument("--output", default=None, help="default: output/demo (seg), output/demo/coco (coco)")
    parser.add_argument("--iters", type=int, default=None, help="override train.max_iter of every run")
    parser.add_argument("--runs", default="teacher,student,kd,apd")
    parser.add_argument("--seed", type=int, default=0, help="dataset generation seed")
    parser.add_argument("--retrain", action="store_true", help="retrain runs whose output already exists")
    args = parser.parse_args(argv)
    task = TASKS[args.task]
    runs, labels = task["runs"], task["labels"]
    output = args.output or os.path.join(ROOT, "output", task["output"])

    env = dict(os.environ, DETECTRON2_DATASETS=args.data_root)
    env.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    if not os.path.isdir(os.path.join(args.data_root, task["check"])):
        run([sys.executable, "datasets/generate_demo_data.py", "--root", args.data_root,
             "--datasets", task["dataset"], "--seed", str(args.seed)] + task["gen_args"], env)

    teacher_ckpt = os.path.join(output, "teacher", "model_final.pth")
    wanted = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = [r for r in wanted if r not in runs]
    if unknown:
        parser.error(f"unknown runs {unknown}; choose from {list(runs)}")
    if any(runs[r][1] for r in wanted) and "teacher" not in wanted and not os.path.exists(teacher_ckpt):
        wanted.insert(0, "teacher")
    times = {}
    for name in wanted:
        config, needs_teacher = runs[name]
        out = os.path.join(output, name)
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

    metrics = task["metrics"]
    rows = []
    for name in runs:
        m = final_metrics(os.path.join(output, name), metrics[0][0])
        if m is None:
            continue
        rows.append((labels[name], [m.get(k, float("nan")) for k, _ in metrics], m["iteration"], times.get(name)))
    print(f"\nFinal val scores on the {task['title']}:")
    print(f"| {'run':<48} | " + " | ".join(f"{h:>9}" for _, h in metrics) + f" | {'iters':>5} | {'train time':>10} |")
    print(f"|{'-' * 50}|" + "|".join("-" * 11 for _ in metrics) + f"|{'-' * 7}|{'-' * 12}|")
    for label, values, iters, t in rows:
        tt = f"{t / 60:.1f} min" if t else "cached"
        print(f"| {label:<48} | " + " | ".join(f"{v:9.2f}" for v in values) + f" | {iters:5d} | {tt:>10} |")
    return rows


if __name__ == "__main__":
    main()

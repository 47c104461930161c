#!/usr/bin/env python
"""The README's main job: student alone → student + KD → student + APD (+ KD) on generated data, CPU.

    .venv/bin/python tools/run_demo.py                  # the three student runs, prints the mIoU table
    .venv/bin/python tools/run_demo.py --iters 100      # shorter schedule
    .venv/bin/python tools/run_demo.py --runs teacher,student,apd   # also retrain the teacher
    .venv/bin/python tools/run_demo.py --task coco     # Mask R-CNN R34 → R18 on generated COCO data

Steps (each a plain `train_net.py` run, so this is exactly what a user runs on real data):
  1. write a Cityscapes-format dataset (160 train / 128 val street scenes at 256×512, leftImg8bit +
     gtFine polygons prepared by the real cityscapesscripts-based script) under --data-root, unless it
     is already there with these counts;
  2. the teacher: the committed demo teacher ``checkpoints/demo/teacher_pspnet_r18_half.pth`` (4000
     iterations, 57.67 val mIoU; docs/BENCHMARKS.md), made by ``tools/pretrain_standin.py``; ``--runs teacher``
     trains it again into <output>/teacher;
  3. train the student (from the committed ImageNet stand-in backbone, ``train.init_checkpoint``) alone,
     with logit KD, and with APD + KD, all from the same initialisation and data stream;
  4. print the final val mIoU of each run (the last checkpoint, never the best one).

Each run shows one progress bar with its ETA; its full logs are in ``<output>/<run>/``: ``log.txt`` and
``metrics.json`` (Detectron2's), and ``stdout.log`` (the console output, warnings included).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SEG_TEACHER = "checkpoints/demo/teacher_pspnet_r18_half.pth"  # tools/pretrain_standin.py --stage teacher
SEG_DATA = dict(num_train=160, num_val=128, size="256×512")
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
    "apd_only": (_COCO + "apd_only_mask_rcnn_R34_to_R18_FPN_demo.py", True),
    "fpnmimic": (_COCO + "fpnmimic_mask_rcnn_R34_to_R18_FPN_demo.py", True),
    "roiapd": (_COCO + "roiapd_mask_rcnn_R34_to_R18_FPN_demo.py", True),
}
COCO_LABELS = {
    "teacher": "Teacher Mask R-CNN R34-FPN (narrow heads)",
    "student": "Student Mask R-CNN R18-FPN (narrower), alone",
    "kd": "Student + logit KD (box scores)",
    "apd": "Student + dense APD (FPN) + KD",
    "apd_only": "Student + dense APD (FPN)",
    "fpnmimic": "Student + FPN imitation",
    "roiapd": "Student + ROI-level APD + KD (ablation)",
}
# task: runs, labels, generated dataset (+ generator options), metric columns (key, header)
TASKS = {
    "seg": dict(runs=RUNS, labels=LABELS, dataset="cityscapes", check="cityscapes/gtFine",
                gen_args=["--num-train", str(SEG_DATA["num_train"]), "--num-val", str(SEG_DATA["num_val"])],
                val_dir="cityscapes/gtFine/val", val_suffix="_labelTrainIds.png", num_val=SEG_DATA["num_val"],
                output="demo", metrics=[("sem_seg/mIoU", "mIoU"), ("sem_seg/pACC", "pixel acc")],
                teacher_weights=SEG_TEACHER, default_runs="student,kd,apd",
                title=f"generated Cityscapes-format data ({SEG_DATA['num_val']} val images, last checkpoint, "
                      "single scale)"),
    "coco": dict(runs=COCO_RUNS, labels=COCO_LABELS, dataset="coco", check="coco/annotations",
                 gen_args=["--num-train", "160", "--num-val", "40"], output=os.path.join("demo", "coco"),
                 default_runs="teacher,student,kd,apd",
                 metrics=[("bbox/AP", "box AP"), ("bbox/AP50", "box AP50"), ("segm/AP", "mask AP")],
                 title="generated COCO-format data, COCOEvaluator (last checkpoint)"),
}


def metrics_records(output_dir: str):
    """The records of a run's metrics.json, in order (none when the file does not exist yet; a line a
    running job is still writing is skipped)."""
    path = os.path.join(output_dir, "metrics.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        for line in f:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def final_metrics(output_dir: str, key: str = "sem_seg/mIoU"):
    """Last evaluation entry of a run's metrics.json (the final checkpoint's score)."""
    last = None
    for entry in metrics_records(output_dir):
        if key in entry:
            last = entry
    return last


def run(cmd, env):
    print("+ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


def _count(folder: str, suffix: str) -> int:
    return sum(f.endswith(suffix) for _, _, files in os.walk(folder) for f in files)


def data_ready(data_root: str, task: str) -> bool:
    """The task's generated dataset is there (and, for seg, with the demo's number of val images)."""
    spec = TASKS[task]
    if not os.path.isdir(os.path.join(data_root, spec["check"])):
        return False
    if "val_dir" in spec:
        return _count(os.path.join(data_root, spec["val_dir"]), spec["val_suffix"]) == spec["num_val"]
    return True


def ensure_data(data_root: str, task: str, env, seed: int = 0) -> None:
    """Generate the task's dataset under ``data_root`` unless it is ready (data_ready)."""
    spec = TASKS[task]
    if data_ready(data_root, task):
        return
    cmd = [sys.executable, "datasets/generate_demo_data.py", "--root", data_root, "--datasets", spec["dataset"],
           "--seed", str(seed)] + spec["gen_args"]
    print(f"[demo] generating the {spec['dataset']} data under {data_root}", flush=True)
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


_ITER = re.compile(r"\biter: (\d+)")
_EVAL = re.compile(r"Inference done (\d+)/(\d+)")


def _progress(log_path: str, pos: int):
    """New (iteration, eval progress) seen in the run's console log since byte ``pos``; returns them and the
    new position. iteration is the last logged ``iter: N`` (0-based), eval a (done, total) pair or None."""
    it = ev = None
    try:
        with open(log_path, "rb") as f:
            f.seek(pos)
            chunk = f.read().decode("utf-8", "replace")
    except OSError:
        return None, None, pos
    cut = chunk.rfind("\n") + 1  # only whole lines
    for line in chunk[:cut].splitlines():
        m = _ITER.search(line)
        if m:
            it, ev = int(m.group(1)), None
        m = _EVAL.search(line)
        if m:
            ev = (int(m.group(1)), int(m.group(2)))
    return it, ev, pos + len(chunk[:cut].encode("utf-8"))


def console_log(out: str) -> str:
    """Where a run's console output is written while it runs: next to the run folder, because
    ``train_net.py --overwrite`` moves what the folder holds into ``previous_*/`` at start-up. It is moved to
    ``<out>/stdout.log`` when the run ends (move_console_log)."""
    return os.path.normpath(out) + ".stdout.log"


def move_console_log(out: str) -> str:
    src, dst = console_log(out), os.path.join(out, "stdout.log")
    if os.path.isdir(out) and os.path.exists(src):
        os.replace(src, dst)
        return dst
    return src


def _inode(path: str):
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def train_with_progress(cmd, out: str, env, total_iters: int, label: str, poll_s: float = 1.0,
                        resume: bool = False) -> float:
    """Run ``cmd`` (a train_net.py run into ``out``) with one progress bar (iterations, ETA, evaluation) on the
    console, read from the run's ``log.txt``; its console output ends in ``<out>/stdout.log``. Returns wall
    seconds. On failure, prints the log's tail and raises CalledProcessError."""
    from tqdm import tqdm

    os.makedirs(os.path.dirname(os.path.normpath(out)) or ".", exist_ok=True)
    log_path = console_log(out)
    progress_path = os.path.join(out, "log.txt")
    stale = _inode(progress_path)  # an earlier run's log.txt, until train_net moves it away
    if resume:  # --resume appends to the run's own log.txt: read from its current end
        stale = None
    start = time.time()
    with open(log_path, "w") as log, tqdm(total=total_iters, desc=f"{label:<10}", unit="it", dynamic_ncols=True,
                                           bar_format="{desc} {percentage:3.0f}%|{bar:20}| {n_fmt}/{total_fmt} "
                                           "[{elapsed}<{remaining}{postfix}]") as bar:
        bar.set_postfix_str("starting")
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        current = _inode(progress_path) if resume else None
        pos = os.path.getsize(progress_path) if current is not None else 0
        while True:
            done = proc.poll() is not None
            ino = _inode(progress_path)
            if ino is not None and ino != stale:
                if ino != current:
                    current, pos = ino, 0
                it, ev, pos = _progress(progress_path, pos)
                if it is not None and it + 1 > bar.n:
                    bar.update(min(total_iters, it + 1) - bar.n)
                    bar.set_postfix_str("training")
                if ev is not None:
                    bar.set_postfix_str(f"evaluating {ev[0]}/{ev[1]} images")
            if done:
                break
            time.sleep(poll_s)
        if proc.returncode == 0 and bar.n < total_iters:
            bar.update(total_iters - bar.n)
        bar.set_postfix_str("done" if proc.returncode == 0 else "FAILED")
    log_path = move_console_log(out)
    if proc.returncode != 0:
        with open(log_path, errors="replace") as f:
            tail = f.readlines()[-25:]
        print(f"[demo] {label} failed (exit {proc.returncode}); last lines of {log_path}:\n" + "".join(tail),
              file=sys.stderr, flush=True)
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return time.time() - start


def config_max_iter(config: str, opts=()) -> int:
    """``train.max_iter`` of a config after ``key=value`` overrides (what the run will do)."""
    for opt in opts:
        if opt.startswith("train.max_iter="):
            return int(opt.split("=", 1)[1])
    from detectron2.config import LazyConfig

    return int(LazyConfig.load(os.path.join(ROOT, config)).train.max_iter)


def teacher_logged_score(output_dir: str, key: str):
    """The teacher's score a distillation run logged before step 0 (``teacher/<key>``), or None."""
    for entry in metrics_records(output_dir):
        if f"teacher/{key}" in entry:
            return entry
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASKS), default="seg",
                        help="seg: PSPNet on Cityscapes-format data (default); coco: Mask R-CNN on COCO-format data")
    parser.add_argument("--data-root", default=os.path.join(ROOT, "datasets", "demo"))
    parser.add_argument("--output", default=None, help="default: output/demo (seg), output/demo/coco (coco)")
    parser.add_argument("--iters", type=int, default=None, help="override train.max_iter of every run")
    parser.add_argument("--runs", default=None,
                        help="comma list (seg default: student,kd,apd with the committed teacher; "
                             "coco default: teacher,student,kd,apd)")
    parser.add_argument("--seed", type=int, default=0, help="dataset generation seed")
    parser.add_argument("--retrain", action="store_true", help="retrain runs whose output already exists")
    args = parser.parse_args(argv)
    task = TASKS[args.task]
    runs, labels = task["runs"], task["labels"]
    output = args.output or os.path.join(ROOT, "output", task["output"])

    env = dict(os.environ, DETECTRON2_DATASETS=args.data_root)
    env.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    wanted = [r.strip() for r in (args.runs or task["default_runs"]).split(",") if r.strip()]
    unknown = [r for r in wanted if r not in runs]
    if unknown:
        parser.error(f"unknown runs {unknown}; choose from {list(runs)}")
    ensure_data(args.data_root, args.task, env, args.seed)

    trained_teacher = os.path.join(output, "teacher", "model_final.pth")
    committed = task.get("teacher_weights")
    if "teacher" in wanted or not committed or not os.path.exists(os.path.join(ROOT, committed)):
        teacher_ckpt = trained_teacher
    else:
        teacher_ckpt = committed
    if any(runs[r][1] for r in wanted) and "teacher" not in wanted and not os.path.exists(teacher_ckpt):
        wanted.insert(0, "teacher")
    print(f"[demo] runs: {', '.join(wanted)}; teacher weights: {os.path.relpath(teacher_ckpt, ROOT)}; "
          f"logs and checkpoints in {os.path.relpath(output, ROOT)}/<run>/", flush=True)
    times = {}
    for name in wanted:
        config, needs_teacher = runs[name]
        out = os.path.join(output, name)
        if os.path.exists(os.path.join(out, "model_final.pth")) and not args.retrain:
            print(f"[demo] {name}: {os.path.relpath(out, ROOT)}/model_final.pth exists, reusing it (--retrain to redo)")
            continue
        cmd = [sys.executable, "train_net.py", "--config-file", config, "--overwrite",
               f"train.output_dir={out}"]
        if needs_teacher:
            cmd.append(f"model.teacher_weights={teacher_ckpt}")
        if args.iters:
            cmd.append(f"train.max_iter={args.iters}")
        total = config_max_iter(config, cmd[5:])
        times[name] = train_with_progress(cmd, out, env, total, name)

    metrics = task["metrics"]
    rows = []
    teacher_row = None
    for name in runs:
        m = final_metrics(os.path.join(output, name), metrics[0][0])
        if name == "teacher" and (m is None or teacher_ckpt != trained_teacher):
            # the committed teacher: its score as the distillation runs logged it before step 0
            for other in runs:
                t = teacher_logged_score(os.path.join(output, other), metrics[0][0]) if runs[other][1] else None
                if t is not None:
                    teacher_row = (labels[name] + " (committed)", [t.get(f"teacher/{k}", float("nan"))
                                                                   for k, _ in metrics], None, None)
                    break
            if teacher_row:
                rows.append(teacher_row)
            continue
        if m is None:
            continue
        rows.append((labels[name], [m.get(k, float("nan")) for k, _ in metrics], m["iteration"], times.get(name)))
    print(f"\nFinal val scores on the {task['title']}:")
    print(f"| {'run':<52} | " + " | ".join(f"{h:>9}" for _, h in metrics) + f" | {'iters':>5} | {'train time':>10} |")
    print(f"|{'-' * 54}|" + "|".join("-" * 11 for _ in metrics) + f"|{'-' * 7}|{'-' * 12}|")
    for label, values, iters, t in rows:
        tt = f"{t / 60:.1f} min" if t else ("cached" if iters is not None else "")
        its = f"{iters:5d}" if iters is not None else " " * 5
        print(f"| {label:<52} | " + " | ".join(f"{v:9.2f}" for v in values) + f" | {its} | {tt:>10} |")
    if args.task == "seg":
        print("One seed: the seed spread is as large as these gaps. benchmarks/accuracy.py runs every method over "
              "5 paired seeds (docs/BENCHMARKS.md).")
    return rows


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Make the demo's pretrained weights: the ImageNet stand-in backbones and the demo teacher.

    .venv/bin/python tools/pretrain_standin.py                   # everything (stand-ins, then the teacher)
    .venv/bin/python tools/pretrain_standin.py --stage standin   # only the two stand-in backbones
    .venv/bin/python tools/pretrain_standin.py --stage teacher   # only the teacher (needs the half stand-in)

No ImageNet weights can be downloaded here, but the APD recipe fine-tunes ImageNet-initialised students
from a converged teacher. The stand-in replaces ImageNet with a task and data the benchmark never sees:

1. **Stand-in pre-training** (``--stage standin``). Generated ADE20K-format scenes
   (``datasets/generate_demo_data.py --datasets ade20k --num-train 400 --num-val 40 --seed 100``: indoor
   and outdoor scenes, 150 ADE classes; the benchmark is the Cityscapes-format street scenes, 19 classes)
   train a PSPNet at the student's width (quarter-width ResNet-18) and at the teacher's width (half width):
   ``configs/bench/standin_pspnet_r18_{quarter,half}_ade.py``, 200 iterations, batch 8, 128×128 crops.
2. **Export exactly like an ImageNet checkpoint.** The backbone of the final checkpoint is saved as a plain
   deep-stem ResNet state dict (the layout of semseg's ``initmodel/resnet18_v2.pth``) and converted by
   ``tools/convert_torchvision_backbone.py --arch resnet18 --deep-stem``, checked against the demo config
   that uses it. The heads are dropped; heads and adapters of every run that loads a stand-in start random.
   Written (fp16, to keep the repository small; loading casts them to fp32):
   ``checkpoints/demo/standin_r18_quarter.pth`` (``backbone.*``, for ``configs/demo/pspnet_r18_demo.py``),
   ``checkpoints/demo/standin_r18_quarter_student.pth`` (``student.backbone.*``: the converter's
   ``--prefix student.``, for the distillation configs) and ``checkpoints/demo/standin_r18_half.pth`` (the
   teacher's). Configs load them through ``train.init_checkpoint``, the key a real config uses for ImageNet
   weights.
3. **The teacher** (``--stage teacher``): ``configs/demo/pspnet_r18_wide_demo.py`` from the half-width
   stand-in on the demo data, evaluated every ``train.eval_period`` iterations. Its curve is printed and
   written to ``<output>/teacher/curve.json``, with two convergence checks: in the run, the last three
   evaluations within ``--plateau`` mIoU of the best; across schedules (``--shorter-run DIR``, the run
   folder of the same config at half the iterations), the longer schedule's final mIoU less than
   ``--plateau`` above the shorter one's. A poly schedule ends with a rise as its learning rate goes to
   zero, so the second is the one that says whether more training would help. The final checkpoint's weights are written to
   ``checkpoints/demo/teacher_pspnet_r18_half.pth`` (``{"model": state}``, fp16), the ``model.teacher_weights``
   of the demo distillation configs.

**The ADE20K-format benchmark** (``--benchmark ade``; ``benchmarks/accuracy.py --preset ade``) has its own
stand-ins and teacher, in ``checkpoints/demo/ade/``: the stand-ins are pre-trained on generated
**Cityscapes-format** street scenes (``--datasets cityscapes --num-train 400 --num-val 40 --seed 100``,
``configs/bench/standin_pspnet_r18_{quarter,half}_cityscapes.py``, the same recipe), so they never saw an
ADE20K-format scene, and the teacher is ``configs/demo/ade/pspnet_r18_wide_demo.py`` on the generated
ADE20K-format data (:data:`ADE_DATA`). Both data sets are generated under ``--data-root`` (default
``datasets/demo_ade``) when missing.

Runs whose ``model_final.pth`` exists are reused (``--retrain`` redoes them). Training runs are plain
``train_net.py`` subprocesses; their logs are in their run folders.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

WIDTHS = {
    # width: stand-in config, the demo config whose backbone the weights must fit, file name
    "quarter": ("configs/bench/standin_pspnet_r18_quarter_ade.py", "configs/demo/pspnet_r18_demo.py",
                "standin_r18_quarter.pth"),
    "half": ("configs/bench/standin_pspnet_r18_half_ade.py", "configs/demo/pspnet_r18_wide_demo.py",
             "standin_r18_half.pth"),
}
STUDENT_PREFIXED = ("configs/demo/apd_pspnet_r18_demo.py", "standin_r18_quarter_student.pth")
TEACHER_CONFIG = "configs/demo/pspnet_r18_wide_demo.py"
TEACHER_FILE = "teacher_pspnet_r18_half.pth"
# The teacher trains the config's one schedule (4000 iterations). If it has not converged, --continue-to N
# resumes it to N iterations, evaluated every TEACHER_EVAL_PERIOD (the optimiser state is kept; the poly
# schedule is re-scaled to the new length, a warm restart). 0: no continuation.
TEACHER_CONTINUE_TO = 0
TEACHER_EVAL_PERIOD = 100
ADE_ARGS = ["--datasets", "ade20k", "--num-train", "400", "--num-val", "40", "--seed", "100"]
# Generated data sets: generate_demo_data.py arguments, and the folder (under the data root) whose files are
# the val labels, with their count (the set is ready when that folder holds that many).
STANDIN_ADE = dict(args=ADE_ARGS, val_dir="ADEChallengeData2016/annotations_detectron2/validation", num_val=40)
STANDIN_CITYSCAPES = dict(args=["--datasets", "cityscapes", "--num-train", "400", "--num-val", "40", "--seed", "100"],
                          val_dir="cityscapes/gtFine/val", val_suffix="_labelTrainIds.png", num_val=40)
ADE_DATA = dict(args=["--datasets", "ade20k", "--num-train", "400", "--num-val", "100", "--seed", "0"],
                val_dir="ADEChallengeData2016/annotations_detectron2/validation", num_val=100)
_A = "configs/demo/ade/"
BENCHMARKS = {
    # the Cityscapes-format benchmark: stand-ins from ADE20K-format scenes (seed 100), the demo teacher
    "cityscapes": dict(widths=WIDTHS, student_prefixed=STUDENT_PREFIXED, standin_data=STANDIN_ADE,
                       teacher=TEACHER_CONFIG, data=None, data_root="datasets/demo", dest="checkpoints/demo",
                       output="output/standin"),
    # the ADE20K-format benchmark: stand-ins from Cityscapes-format scenes (seed 100), its own teacher
    "ade": dict(widths={"quarter": ("configs/bench/standin_pspnet_r18_quarter_cityscapes.py", _A + "pspnet_r18_demo.py",
                                    "standin_r18_quarter.pth"),
                        "half": ("configs/bench/standin_pspnet_r18_half_cityscapes.py", _A + "pspnet_r18_wide_demo.py",
                                 "standin_r18_half.pth")},
                student_prefixed=(_A + "apd_pspnet_r18_demo.py", "standin_r18_quarter_student.pth"),
                standin_data=STANDIN_CITYSCAPES, teacher=_A + "pspnet_r18_wide_demo.py", data=ADE_DATA,
                data_root="datasets/demo_ade", dest="checkpoints/demo/ade", output="output/standin_ade"),
}


def data_ready(data_root, spec) -> bool:
    """The generated set of ``spec`` (:data:`ADE_DATA` and co.) is under ``data_root`` with its val count."""
    suffix = spec.get("val_suffix", ".png")
    files = [f for _, _, names in os.walk(os.path.join(data_root, spec["val_dir"])) for f in names]
    return sum(f.endswith(suffix) for f in files) == spec["num_val"]

def ensure_data(data_root, spec, env) -> None:
    """Generate the set of ``spec`` under ``data_root`` unless :func:`data_ready`."""
    if not data_ready(data_root, spec):
        log(f"generating {' '.join(spec['args'])} under {data_root}")
        subprocess.run([sys.executable, "datasets/generate_demo_data.py", "--root", data_root] + spec["args"],
                       cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)

def log(msg):
    print(f"[pretrain] {msg}", flush=True)


def train(config, out, env, opts=(), retrain=False):
    """One ``train_net.py`` run into ``out`` with a progress bar (its logs in ``out/``), unless it finished."""
    import run_demo

    final = os.path.join(out, "model_final.pth")
    if os.path.exists(final) and not retrain:
        log(f"{final} exists, reused (--retrain to redo)")
        return final
    cmd = [sys.executable, "train_net.py", "--config-file", config, "--overwrite", f"train.output_dir={out}"]
    cmd += list(opts)
    log("+ " + " ".join(cmd[1:]) + f"   (logs in {out}/)")
    run_demo.train_with_progress(cmd, out, env, run_demo.config_max_iter(config, opts), os.path.basename(out))
    return final


def continue_run(config, out, env, max_iter, eval_period, opts=()):
    """Resume the finished run in ``out`` up to ``max_iter`` iterations (unless it got there already)."""
    import run_demo

    last = run_demo.final_metrics(out)
    final = os.path.join(out, "model_final.pth")
    if last is not None and last["iteration"] >= max_iter - 1:
        log(f"{out} already trained to {last['iteration']} iterations, reused")
        return final
    cmd = [sys.executable, "train_net.py", "--config-file", config, "--resume", f"train.output_dir={out}",
           f"train.max_iter={max_iter}", f"train.eval_period={eval_period}", f"train.checkpointer.period={max_iter}"]
    cmd += list(opts)
    log("+ " + " ".join(cmd[1:]) + f"   (logs in {out}/)")
    run_demo.train_with_progress(cmd, out, env, max_iter, os.path.basename(out) + "+", resume=True)
    return final


def model_state(path):
    from apd.checkpoint.io import read_state_dict

    return read_state_dict(path)  # the project's one checkpoint reader (safe, verified)


def half_precision(state):
    return {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}


def export_backbone(final, config, dst, prefix=""):
    """Backbone of a Segmentor checkpoint → ImageNet-style deep-stem state dict → the ImageNet converter."""
    import torch
    import convert_torchvision_backbone as converter

    state = {k[len("backbone."):]: v for k, v in model_state(final).items() if k.startswith("backbone.")}
    src = os.path.join(os.path.dirname(final), "backbone_imagenet_layout.pth")
    torch.save(half_precision(state), src)  # what a downloaded resnet18_v2.pth looks like (plain state dict)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    argv = ["--arch", "resnet18", "--deep-stem", src, dst, "--config-file", config]
    if prefix:
        argv += ["--prefix", prefix]
    log("+ tools/convert_torchvision_backbone.py " + " ".join(argv))
    if converter.main(argv) != 0:
        raise RuntimeError(f"the stand-in backbone {src} does not fit {config}")


def teacher_curve(out, plateau):
    """(iteration, mIoU) of every evaluation of the teacher run, and whether it stopped rising."""
    curve = []
    with open(os.path.join(out, "metrics.json")) as f:
        for line in f:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "sem_seg/mIoU" in entry:
                curve.append((entry["iteration"], entry["sem_seg/mIoU"]))
    best = max(m for _, m in curve) if curve else float("nan")
    last = [m for _, m in curve[-3:]]
    converged = len(curve) >= 3 and all(best - m <= plateau for m in last)
    return curve, best, converged


def schedule_check(shorter_out, curve, plateau):
    """Across schedules: did the longer run (``curve``, [(iteration, mIoU)]) end less than ``plateau`` mIoU
    above the final evaluation of the shorter run in ``shorter_out``? A dict of both finals, the gain and
    ``converged``; raises FileNotFoundError naming the folder when it holds no evaluation."""
    short, _, _ = teacher_curve(shorter_out, plateau)
    if not short or not curve:
        raise FileNotFoundError(f"no sem_seg/mIoU evaluation in {shorter_out}/metrics.json")
    (short_it, short_final), (long_it, long_final) = short[-1], curve[-1]
    gain = long_final - short_final
    # iterations as metrics.json records the evaluations (the final one at max_iter, periodic ones at k·period − 1)
    return {"shorter_last_iteration": short_it, "shorter_final": short_final, "last_iteration": long_it,
            "final": long_final, "gain": gain, "converged": gain < plateau}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmark", choices=sorted(BENCHMARKS), default="cityscapes",
                        help="cityscapes: the demo's stand-ins and teacher (checkpoints/demo); ade: the ADE20K-format "
                             "benchmark's (stand-ins from Cityscapes-format scenes, checkpoints/demo/ade)")
    parser.add_argument("--stage", choices=("all", "standin", "teacher"), default="all")
    parser.add_argument("--widths", default="quarter,half", help="stand-in widths to make (quarter,half)")
    parser.add_argument("--data-root", default=None, help="default: the benchmark's (datasets/demo, datasets/demo_ade)")
    parser.add_argument("--output", default=None, help="training runs (default: output/standin, output/standin_ade)")
    parser.add_argument("--dest", default=None, help="exported weights (default: checkpoints/demo, checkpoints/demo/ade)")
    parser.add_argument("--plateau", type=float, default=1.0,
                        help="teacher convergence: the last three evaluations within this many mIoU of the best")
    parser.add_argument("--continue-to", type=int, default=TEACHER_CONTINUE_TO,
                        help="continue the teacher run to this many iterations (0: stop at the config's)")
    parser.add_argument("--shorter-run", default=None,
                        help="run folder of the same teacher config at half the iterations: the convergence check "
                             "across schedules (the final mIoU rose by less than --plateau)")
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--opts", nargs="*", default=[], help="extra train_net.py overrides of the teacher run")
    args = parser.parse_args(argv)
    bench = BENCHMARKS[args.benchmark]
    for key in ("data_root", "output", "dest"):
        if getattr(args, key) is None:
            setattr(args, key, os.path.join(ROOT, bench[key]))
    env = dict(os.environ, DETECTRON2_DATASETS=args.data_root)
    env.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))

    if args.stage in ("all", "standin"):
        ensure_data(args.data_root, bench["standin_data"], env)
        for width in [w.strip() for w in args.widths.split(",") if w.strip()]:
            config, target, name = bench["widths"][width]
            final = train(config, os.path.join(args.output, width), env, retrain=args.retrain)
            export_backbone(final, target, os.path.join(args.dest, name))
            if width == "quarter":
                prefixed, prefixed_name = bench["student_prefixed"]
                export_backbone(final, prefixed, os.path.join(args.dest, prefixed_name),
                                prefix="student.")

    if args.stage in ("all", "teacher"):
        import run_demo

        if bench["data"] is None:
            run_demo.ensure_data(args.data_root, "seg", env)
        else:
            ensure_data(args.data_root, bench["data"], env)
        out = os.path.join(args.output, "teacher")
        final = train(bench["teacher"], out, env, opts=args.opts, retrain=args.retrain)
        if args.continue_to:
            final = continue_run(bench["teacher"], out, env, args.continue_to, TEACHER_EVAL_PERIOD, args.opts)
        curve, best, converged = teacher_curve(out, args.plateau)
        log("teacher val mIoU by iteration: " + ", ".join(f"{i}: {m:.2f}" for i, m in curve))
        log(f"best {best:.2f}; last three within {args.plateau} of the best: {converged}")
        record = {"curve": curve, "best": best, "plateau": args.plateau, "converged": converged}
        if args.shorter_run:
            record["schedule"] = schedule_check(args.shorter_run, curve, args.plateau)
            sc = record["schedule"]
            log(f"final mIoU {sc['final']:.2f} (iteration {sc['last_iteration']}) vs the shorter schedule's "
                f"{sc['shorter_final']:.2f} (iteration {sc['shorter_last_iteration']}): {sc['gain']:+.2f}; "
                f"converged across schedules: {sc['converged']}")
        with open(os.path.join(out, "curve.json"), "w") as f:
            json.dump(record, f, indent=1)
        from apd.checkpoint.atomic import atomic_torch_save

        dst = os.path.join(args.dest, TEACHER_FILE)
        os.makedirs(args.dest, exist_ok=True)
        atomic_torch_save({"model": half_precision(model_state(final))}, dst)
        log(f"wrote {dst} ({os.path.getsize(dst) / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()

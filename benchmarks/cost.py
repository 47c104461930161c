#!/usr/bin/env python
"""Cost of a distillation training step on the real model pairs, at a real input size (synthetic tensors).

    .venv/bin/python benchmarks/cost.py                                   # all pairs, CPU or GPU
    .venv/bin/python benchmarks/cost.py --configs pspnet --height 256 --width 512 --repeats 2
    .venv/bin/python benchmarks/cost.py --json output/benchmarks/cost.json --loader-iters 20

Pairs (the configs train_net.py runs, random weights: cost does not depend on their values):
  deeplab    configs/apd_deeplab_r18.py                   DeepLabV3-R101 → DeepLabV3-R18, 512×1024
  pspnet     configs/apd_pspnet_r18.py                    PSPNet-R101 → PSPNet-R18, 512×1024
  mask_rcnn  configs/COCO-InstanceSegmentation/apd_mask_rcnn_R101_to_R50_FPN_1x.py,  800×1333, 5 boxes/image
  demo       configs/demo/apd_pspnet_r18_demo.py (the CPU demo pair; only when asked for), 128×256

What is timed, per pair, in ONE process, round-robin (warm-up rounds first, then ``--repeats`` rounds;
each round runs every item once, so CPU contention hits all of them alike):
  student      student training step alone (forward, backward, SGD step) — d2 / ``DistillTrainer.run_step``
  teacher_fwd  teacher forward under ``torch.no_grad()`` (what a distiller adds, at least)
  floor        distiller step without distillation terms: student step + teacher forward
  kd           floor + logit KD (the config's weight)
  apd          the config's full APD step: KD + APD + PA, one backward, student SGD + teacher-adapter Adam
  kd_term / apd_term   the term alone, forward + backward, on head outputs of the real size
                       (apd_term includes both adapters; ROI vectors for Mask R-CNN)
  infer_student / infer_teacher   eval forward, batch 1, whole image (no sliding window / flip)
``--amp fp16|bf16`` runs every item under ``torch.autocast`` (training steps through the trainer's own AMP
path: fp16 with a GradScaler on CUDA), as ``train.amp`` does in train_net.py.
Peak memory: one fresh subprocess per (pair, mode): peak RSS (VmHWM, reset after construction where the
kernel allows, else ru_maxrss) minus RSS after model construction on CPU; on CUDA,
``max_memory_allocated`` over one step after the warm-up steps (``cudnn.benchmark`` off: its algorithm
search allocates trial workspaces no step holds) minus allocated-after-construction.
``--profile ITEMS`` prints a torch.profiler table of one run of each item (kept in the JSON); ``ITEM@VARIANT``
profiles it under a variant.
Inference split (segmentation pairs), batch 1, eval mode, no grad:
  pre_*    ``Segmentor.preprocess_image``: uint8 image → normalised, padded batch on the device
  net_*    the network alone: backbone + ``sem_seg_head.layers`` on that batch (h×w logits)
  post_*   bilinear resize of the logits to the padded size, crop, ``Segmentor.postprocess``
  infer_*  the whole ``model(batched_inputs)`` call
Variants (``--variants``, each item timed under each variant that changes it (``AFFECTED``; the others under
the first variant only), round-robin in the same process, each variant on its own models built with its
arguments (nothing is patched); results keyed ``ITEM`` for ``default`` and ``ITEM@VARIANT`` otherwise):
  default   the code as it is
  compiled  ``train.compile``: torch.compile (``--compile-backend``) of the student's backbone, head
            ``layers``/``losses`` and the distillation terms (apd.engine.distill_trainer.compile_model)
Saved tensors: for ``kd_term``/``apd_term``, the bytes of the tensor storages autograd keeps for the
backward during one run, per variant (exact on any device).
``--memory-inline`` (CUDA): after the timing, per step mode and variant, ``max_memory_allocated`` during one
step minus allocated just before it, every ``.grad`` freed first (the step's own activations, gradients and
temporaries; optimiser state excluded), in the timing process instead of one process per mode.
Loader: ``--loader-iters N`` times the real ResumableTrainLoader of configs/demo (generated data).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # cost_parts/ (this folder is not a package)

from cost_parts.measurement import MEMORY_MODES, worker_loader, worker_memory, worker_time  # noqa: E402
from cost_parts.pairs import DEFAULT_PAIRS, PAIRS, ROOT  # noqa: E402
from cost_parts.report import derived, report_pair, summarize  # noqa: E402,F401  (derived: tests, notebooks)
from cost_parts.steps import PARTS, STEPS, VARIANTS  # noqa: E402


def _spawn(args, worker: str, pair: str, items: str, env=None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", worker, "--configs", pair, "--items", items,
               "--height", str(args.height), "--width", str(args.width), "--batch", str(args.batch),
               "--warmup", str(args.warmup), "--repeats", str(args.repeats), "--threads", str(args.threads),
               "--device", args.device, "--amp", args.amp, "--profile", args.profile, "--loader-iters", str(args.loader_iters),
               "--variants", args.variants, "--compile-backend", args.compile_backend, "--worker-out", out]
        if args.memory_inline:
            cmd.append("--memory-inline")
        subprocess.run(cmd, cwd=ROOT, env=env or _env(args), check=True)
        with open(out) as f:
            return json.load(f)


def _env(args, **extra):
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads), **extra)
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default=",".join(DEFAULT_PAIRS), help=f"comma list from {list(PAIRS)}")
    parser.add_argument("--height", type=int, default=None, help="input height (default: per pair)")
    parser.add_argument("--width", type=int, default=None, help="input width (default: per pair)")
    parser.add_argument("--batch", type=int, default=2, help="images per training step")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds")
    parser.add_argument("--items", default=",".join(STEPS + PARTS), help="what to time (comma list)")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-mode memory subprocesses")
    parser.add_argument("--loader-iters", type=int, default=0, help="also time N batches of the demo loader")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch/OMP threads")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--amp", choices=("off", "fp16", "bf16"), default="off",
                        help="torch.autocast dtype for every item (training steps: the trainer's AMP path)")
    parser.add_argument("--profile", default="", help="comma list of ITEM or ITEM@VARIANT to profile once (torch.profiler table)")
    parser.add_argument("--variants", default="default", help=f"comma list from {list(VARIANTS)} (see above)")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend of the 'compiled' variant")
    parser.add_argument("--memory-inline", action="store_true",
                        help="CUDA: per-mode step memory in the timing process (see above); implies --no-memory")
    parser.add_argument("--json", default=None, help="write all results to this JSON file")
    parser.add_argument("--worker", choices=("time", "memory", "loader"), help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        if args.device.startswith("cuda"):
            torch.backends.cudnn.benchmark = args.worker == "time"  # memory: no algorithm-search workspaces
        fn = {"time": worker_time, "memory": worker_memory, "loader": worker_loader}[args.worker]
        result = fn(args)
        with open(args.worker_out, "w") as f:
            json.dump(result, f)
        return result

    pairs = [p for p in args.configs.split(",") if p]
    unknown = [p for p in pairs if p not in PAIRS]
    if unknown:
        parser.error(f"unknown --configs {unknown}; choose from {list(PAIRS)}")
    items = [i for i in args.items.split(",") if i]
    bad = [i for i in items if i not in STEPS + PARTS]
    if bad:
        parser.error(f"unknown --items {bad}; choose from {list(STEPS + PARTS)}")
    bad = [v for v in args.variants.split(",") if v and v not in VARIANTS]
    if bad or not args.variants.strip(","):
        parser.error(f"unknown --variants {bad}; choose from {list(VARIANTS)}")
    if args.memory_inline:
        args.no_memory = True
    if args.repeats < 1 or args.warmup < 0 or args.batch < 1:
        parser.error("--repeats and --batch must be >= 1, --warmup >= 0")

    results = {"argv": sys.argv[1:], "device": args.device, "pairs": {}}
    height, width = args.height, args.width
    for pair in pairs:
        args.height, args.width = (height or PAIRS[pair]["size"][0]), (width or PAIRS[pair]["size"][1])
        print(f"[cost] {pair}: timing {items} at {args.height}×{args.width}, batch {args.batch}", flush=True)
        res = _spawn(args, "time", pair, ",".join(items))
        res.update(height=args.height, width=args.width, batch=args.batch, device=args.device, amp=args.amp,
                   repeats=args.repeats, warmup=args.warmup)
        results["pairs"][pair] = res
        _write_json(args.json, results)  # after every stage: a run cut short keeps what it measured
        print(report_pair(pair, res) + "\n", flush=True)
        if not args.no_memory:
            res["memory"] = {}
            for mode in [m for m in MEMORY_MODES if m in items]:
                print(f"[cost] {pair}: peak memory of {mode} (fresh process)", flush=True)
                res["memory"][mode] = _spawn(args, "memory", pair, mode)["peak_bytes"]
                _write_json(args.json, results)
            print(report_pair(pair, res) + "\n", flush=True)
    if args.loader_iters > 0:
        data_root = os.environ.get("DETECTRON2_DATASETS", os.path.join(ROOT, "datasets", "demo"))
        res = _spawn(args, "loader", "pspnet", "", env=_env(args, DETECTRON2_DATASETS=data_root))
        s = summarize(res["per_batch_s"])
        print(f"[cost] demo loader ({res['config']}, batch {res['batch_size']}, crop {res['crop']}, "
              f"{res['num_workers']} worker): {s['median'] * 1e3:.0f} ms/batch median "
              f"({s['min'] * 1e3:.0f}–{s['max'] * 1e3:.0f}), first batch {res['first_batch_s']:.1f} s", flush=True)
        results["loader"] = res
    _write_json(args.json, results)
    return results


def _write_json(path, results):
    if path:
        from apd.checkpoint.atomic import atomic_write_text

        atomic_write_text(path, json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

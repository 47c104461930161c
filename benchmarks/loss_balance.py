#!/usr/bin/env python
"""Which loss term drives the student? Gradient norm and direction of every loss term of a distiller.

    .venv/bin/python benchmarks/loss_balance.py                                   # demo APD + KD, at init
    .venv/bin/python benchmarks/loss_balance.py --checkpoint output/benchmarks/accuracy/apd_kd/seed1/model_final.pth
    .venv/bin/python benchmarks/loss_balance.py --config configs/demo/apd_pspnet_r18_demo.py \
        model.loss_weights.loss_apd=1 model.loss_weights.loss_pa=1
    .venv/bin/python benchmarks/loss_balance.py \
        --config configs/COCO-InstanceSegmentation/apd_mask_rcnn_R34_to_R18_FPN_demo.py \
        model.teacher_weights=output/demo/coco/teacher/model_final.pth              # an R-CNN distiller

For ``--batches`` training batches of the config's own loader (its seed, so the same images each time),
each weighted loss term's gradient with respect to the student's parameters is taken separately
(``torch.autograd.grad``): its norm, its share of the sum of norms, its ratio to the norm of the task
gradient and its cosine with that gradient. The task loss is the student's own: ``loss_sem_seg + loss_aux``
for a segmentation distiller, the sum of the detector's losses (RPN, box, mask) for an R-CNN distiller
(every key no distillation term declares). A term whose norm dwarfs the task loss's decides the first
steps; a negative cosine pulls against the labels. ``loss_adapt`` trains only the teacher adapter: its row
is absent (no student gradient, a check of the gradient routing). Means over batches. The weights are
the configured ones at full strength (the batches run at iteration ``model.warmup_iters``).
``--random-teacher`` runs with an untrained teacher (weight scouting before a teacher exists; the
distillation gradients then differ from those of a trained teacher).
"""
import argparse
import itertools
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASK_KEYS = ("loss_sem_seg", "loss_aux")
SEG_TASK = "task (sem_seg + aux)"
DETECTOR_TASK = "task (detector losses)"


def task_keys(loss_dict, model=None):
    """The student's own loss keys: TASK_KEYS for segmentation, else every key no distillation term
    of ``model`` declares (R-CNN: loss_rpn_cls, loss_rpn_loc, loss_cls, loss_box_reg, loss_mask)."""
    if any(k in loss_dict for k in TASK_KEYS) or model is None:
        return [k for k in TASK_KEYS if k in loss_dict]
    declared = set(model.declared_loss_keys() or ())
    return [k for k in loss_dict if k not in declared]


def student_parameters(model):
    """Trainable parameters of the student (the distiller's ``student`` child)."""
    return [p for p in model.student.parameters() if p.requires_grad]


def term_gradients(loss_dict, params, task=None):
    """Flat gradient (a 1-D tensor) of every loss term that reaches ``params``, plus the task loss's
    (the sum of the ``task`` keys' gradients, default TASK_KEYS, under the key ``task_label(task)``)."""
    import torch

    task = list(TASK_KEYS) if task is None else list(task)

    grads = {}
    for key, loss in loss_dict.items():
        g = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        if all(x is None for x in g):
            continue
        grads[key] = torch.cat([(x if x is not None else torch.zeros_like(p)).flatten() for x, p in zip(g, params)])
    task_grads = [grads[k] for k in task if k in grads]
    if task_grads:
        grads[task_label(task)] = sum(task_grads)
    return grads


def task_label(task):
    return SEG_TASK if set(task) <= set(TASK_KEYS) else DETECTOR_TASK


def _is_task(key):
    return key in (SEG_TASK, DETECTOR_TASK)


def balance_rows(per_batch):
    """Mean value / gradient norm / share / cosine-with-task per term over batches (list of dicts)."""
    import torch

    rows = {}
    for values, grads in per_batch:
        task = next((g for k, g in grads.items() if _is_task(k)), None)
        terms = [k for k in grads if not _is_task(k)]
        total = sum(float(grads[k].norm()) for k in terms)
        for key, g in grads.items():
            r = rows.setdefault(key, {"value": [], "norm": [], "share": [], "cos_task": [], "to_task": []})
            r["value"].append(values.get(key, float("nan")))
            r["norm"].append(float(g.norm()))
            r["share"].append(float(g.norm()) / total if key in terms and total > 0 else float("nan"))
            if task is not None:
                r["cos_task"].append(float(torch.nn.functional.cosine_similarity(g, task, dim=0)))
                r["to_task"].append(float(g.norm()) / max(float(task.norm()), 1e-30))
    return {k: {m: sum(v) / len(v) if v else float("nan") for m, v in r.items()} for k, r in rows.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/demo/apd_pspnet_r18_demo.py")
    parser.add_argument("--checkpoint", default=None, help="student checkpoint to load (default: the init)")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--random-teacher", action="store_true",
                        help="allow an untrained teacher (weight scouting only; see the docstring)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides key=value")
    args = parser.parse_args(argv)
    # Before importing apd: the builtin datasets are registered at import, under this root.
    os.environ.setdefault("DETECTRON2_DATASETS", os.path.join(ROOT, "datasets", "demo"))

    import torch  # noqa: F401
    from detectron2.config import instantiate
    from detectron2.utils.env import seed_all_rng
    from detectron2.utils.events import EventStorage

    sys.path.insert(0, ROOT)
    import apd  # noqa: F401
    from apd.checkpoint import AtomicCheckpointer
    from apd.config import load_config

    cfg = load_config(os.path.join(ROOT, args.config), args.opts)
    if args.random_teacher:
        cfg.model.teacher_weights = None
    seed_all_rng(cfg.train.seed)
    model = instantiate(cfg.model)
    if args.random_teacher:
        model.teacher_loaded = True
    if args.checkpoint:
        AtomicCheckpointer(model).load(args.checkpoint)  # the project's safe, verified reader
    model.train()
    params = student_parameters(model)
    loader = instantiate(cfg.dataloader.train)
    per_batch = []
    with EventStorage(int(getattr(model, "warmup_iters", 0) or 0)):  # full weights after any warm-up
        for batch in itertools.islice(iter(loader), args.batches):
            loss_dict = model(batch)
            values = {k: float(v.detach()) for k, v in loss_dict.items()}
            task = task_keys(loss_dict, model)
            grads = term_gradients(loss_dict, params, task)
            values[task_label(task)] = sum(values[k] for k in task if k in values)
            per_batch.append((values, grads))
            model.zero_grad(set_to_none=True)
    rows = balance_rows(per_batch)
    weights = dict(getattr(model, "loss_weights", {}) or {})
    where = args.checkpoint or "initialisation"
    teacher = "an untrained teacher" if args.random_teacher else "the configured teacher"
    print(f"Loss balance of {args.config} at {where}, {teacher} ({args.batches} batches; "
          f"overrides: {args.opts or 'none'})")
    print("| term | weight | weighted value | grad norm (student) | share of norms | norm / task norm "
          "| cos with task grad |")
    print("|---|---|---|---|---|---|---|")
    for key, r in sorted(rows.items(), key=lambda kv: -kv[1]["norm"]):
        w = weights.get(key, 1.0 if key.startswith("loss_") else "")
        share = "" if r["share"] != r["share"] else f"{r['share']:.0%}"  # NaN for the task sum
        print(f"| {key} | {w} | {r['value']:.3f} | {r['norm']:.3f} | {share} | {r['to_task']:.2f} "
              f"| {r['cos_task']:+.2f} |")
    return rows


if __name__ == "__main__":
    main()

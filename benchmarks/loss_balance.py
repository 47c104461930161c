#!/usr/bin/env python
"""Which loss term drives the student? Gradient norm and direction of every loss term of a distiller.

    .venv/bin/python benchmarks/loss_balance.py                                   # demo APD + KD, at init
    .venv/bin/python benchmarks/loss_balance.py --checkpoint output/benchmarks/accuracy/apd_kd/seed1/model_final.pth
    .venv/bin/python benchmarks/loss_balance.py --config configs/demo/apd_pspnet_r18_demo.py \
        model.loss_weights.loss_apd=1 model.loss_weights.loss_pa=1

For ``--batches`` training batches of the config's own loader (its seed, so the same images each time),
each weighted loss term's gradient with respect to the student's parameters is taken separately
(``torch.autograd.grad``): its norm, its share of the sum of norms, and its cosine with the gradient of
the student's task loss (``loss_sem_seg + loss_aux``). A term whose norm dwarfs the task loss's decides
the first steps; a negative cosine pulls against the labels. ``loss_adapt`` trains only the teacher
adapter: its row shows a zero student gradient (a check of the gradient routing). Means over batches.
"""
import argparse
import itertools
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASK_KEYS = ("loss_sem_seg", "loss_aux")


def student_parameters(model):
    """Trainable parameters of the student (the distiller's ``student`` child)."""
    return [p for p in model.student.parameters() if p.requires_grad]


def term_gradients(loss_dict, params):
    """Flat gradient (a 1-D tensor) of every loss term that reaches ``params``, plus the task loss's."""
    import torch

    grads = {}
    for key, loss in loss_dict.items():
        g = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        if all(x is None for x in g):
            continue
        grads[key] = torch.cat([(x if x is not None else torch.zeros_like(p)).flatten() for x, p in zip(g, params)])
    task = [grads[k] for k in TASK_KEYS if k in grads]
    if task:
        grads["task (sem_seg + aux)"] = sum(task)
    return grads


def balance_rows(per_batch):
    """Mean value / gradient norm / share / cosine-with-task per term over batches (list of dicts)."""
    import torch

    rows = {}
    for values, grads in per_batch:
        task = grads.get("task (sem_seg + aux)")
        terms = [k for k in grads if k != "task (sem_seg + aux)"]
        total = sum(float(grads[k].norm()) for k in terms)
        for key, g in grads.items():
            r = rows.setdefault(key, {"value": [], "norm": [], "share": [], "cos_task": []})
            r["value"].append(values.get(key, float("nan")))
            r["norm"].append(float(g.norm()))
            r["share"].append(float(g.norm()) / total if key in terms and total > 0 else float("nan"))
            if task is not None:
                r["cos_task"].append(float(torch.nn.functional.cosine_similarity(g, task, dim=0)))
    return {k: {m: sum(v) / len(v) if v else float("nan") for m, v in r.items()} for k, r in rows.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/demo/apd_pspnet_r18_demo.py")
    parser.add_argument("--checkpoint", default=None, help="student checkpoint to load (default: the init)")
    parser.add_argument("--batches", type=int, default=4)
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
    seed_all_rng(cfg.train.seed)
    model = instantiate(cfg.model)
    if args.checkpoint:
        AtomicCheckpointer(model).load(args.checkpoint)  # the project's safe, verified reader
    model.train()
    params = student_parameters(model)
    loader = instantiate(cfg.dataloader.train)
    per_batch = []
    with EventStorage(0):
        for batch in itertools.islice(iter(loader), args.batches):
            loss_dict = model(batch)
            values = {k: float(v.detach()) for k, v in loss_dict.items()}
            grads = term_gradients(loss_dict, params)
            values["task (sem_seg + aux)"] = sum(values[k] for k in TASK_KEYS if k in values)
            per_batch.append((values, grads))
            model.zero_grad(set_to_none=True)
    rows = balance_rows(per_batch)
    weights = dict(getattr(model, "loss_weights", {}) or {})
    where = args.checkpoint or "initialisation"
    print(f"Loss balance of {args.config} at {where} ({args.batches} batches; overrides: {args.opts or 'none'})")
    print("| term | weight | weighted value | grad norm (student) | share of norms | cos with task grad |")
    print("|---|---|---|---|---|---|")
    for key, r in sorted(rows.items(), key=lambda kv: -kv[1]["norm"]):
        w = weights.get(key, 1.0 if key.startswith("loss_") else "")
        share = "" if r["share"] != r["share"] else f"{r['share']:.0%}"  # NaN for the task sum
        print(f"| {key} | {w} | {r['value']:.3f} | {r['norm']:.3f} | {share} | {r['cos_task']:+.2f} |")
    return rows


if __name__ == "__main__":
    main()

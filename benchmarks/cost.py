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
the first variant only), round-robin in the same process; results keyed ``ITEM`` for ``default`` and
``ITEM@VARIANT`` otherwise):
  default   the code as it is: fused full-resolution terms (apd.modeling.losses.upsampled)
  compiled  ``train.compile``: torch.compile (``--compile-backend``) of the student's backbone, head
            ``layers``/``losses`` and the distillation terms (apd.engine.distill_trainer.compile_model),
            switched on only while this variant runs
Saved tensors: for ``kd_term``/``apd_term``, the bytes of the tensor storages autograd keeps for the
backward during one run, per variant (exact on any device).
``--memory-inline`` (CUDA): after the timing, per step mode and variant, ``max_memory_allocated`` during one
step minus allocated just before it, every ``.grad`` freed first (the step's own activations, gradients and
temporaries; optimiser state excluded), in the timing process instead of one process per mode.
Loader: ``--loader-iters N`` times the real ResumableTrainLoader of configs/demo (generated data).
"""
import argparse
import contextlib
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PAIRS = {
    "deeplab": dict(config="configs/apd_deeplab_r18.py", kind="seg", size=(512, 1024),
                    label="DeepLabV3-R101 → DeepLabV3-R18"),
    "pspnet": dict(config="configs/apd_pspnet_r18.py", kind="seg", size=(512, 1024),
                   label="PSPNet-R101 → PSPNet-R18"),
    "mask_rcnn": dict(config="configs/COCO-InstanceSegmentation/apd_mask_rcnn_R101_to_R50_FPN_1x.py",
                      kind="rcnn", size=(800, 1333), label="Mask R-CNN R101-FPN → R50-FPN"),
    # The CPU demo pair of benchmarks/accuracy.py (not in the default list).
    "demo": dict(config="configs/demo/apd_pspnet_r18_demo.py", kind="seg", size=(128, 256),
                 label="demo teacher → demo student (configs/demo)"),
}
DEFAULT_PAIRS = ("deeplab", "pspnet", "mask_rcnn")
STEPS = ("student", "teacher_fwd", "floor", "kd", "apd")
INFER_PARTS = ("pre_student", "net_student", "post_student", "pre_teacher", "net_teacher", "post_teacher")
PARTS = ("kd_term", "apd_term", "infer_student", "infer_teacher") + INFER_PARTS
VARIANTS = ("default", "compiled")
# The items each variant changes: the others are timed under the first variant only.
AFFECTED = {"default": STEPS + PARTS,
            "compiled": ("student", "floor", "kd", "apd", "kd_term", "apd_term", "infer_student", "pre_student",
                         "net_student", "post_student")}
MEMORY_MODES = ("student", "teacher_fwd", "floor", "kd", "apd")
NUM_BOXES = 5  # synthetic ground-truth instances per image (Mask R-CNN)
LOADER_CONFIG = "configs/demo/pspnet_r18_demo.py"
AMP_DTYPES = {"fp16": "float16", "bf16": "bfloat16"}  # --amp → train.amp.dtype / torch dtype name


# ----------------------------------------------------------------------------------------- inputs
def seg_batch(batch: int, height: int, width: int, num_classes: int = 19, ignore: int = 255):
    """Synthetic segmentation inputs: uint8 noise images and labels where every class is present.

    The label map is a 4×5 grid of blocks: classes 0..K-1 in reading order, the remaining blocks
    ignore; shifted per image so the images differ.
    """
    import torch

    g = torch.Generator().manual_seed(0)
    rows, cols = 4, 5
    ys = torch.arange(height) * rows // height
    xs = torch.arange(width) * cols // width
    out = []
    for i in range(batch):
        cell = (ys[:, None] * cols + xs[None, :] + i) % (rows * cols)
        label = torch.where(cell < num_classes, cell, torch.full_like(cell, ignore)).long()
        image = torch.randint(0, 256, (3, height, width), generator=g, dtype=torch.uint8)
        out.append({"image": image, "sem_seg": label, "height": height, "width": width})
    return out


def rcnn_batch(batch: int, height: int, width: int, num_classes: int = 80, num_boxes: int = NUM_BOXES):
    """Synthetic detection inputs: uint8 noise images, ``num_boxes`` boxes per image with diamond masks."""
    import numpy as np
    import torch
    from detectron2.structures import Boxes, Instances, PolygonMasks

    rng = np.random.default_rng(0)
    out = []
    for _ in range(batch):
        bw = rng.uniform(64, width / 3, num_boxes)
        bh = rng.uniform(64, height / 3, num_boxes)
        x0 = rng.uniform(0, width - bw)
        y0 = rng.uniform(0, height - bh)
        boxes = np.stack([x0, y0, x0 + bw, y0 + bh], axis=1).astype(np.float32)
        polygons = [
            [np.array([(a + c) / 2, b, c, (b + d) / 2, (a + c) / 2, d, a, (b + d) / 2], dtype=np.float64)]
            for a, b, c, d in boxes
        ]
        inst = Instances((height, width))
        inst.gt_boxes = Boxes(torch.from_numpy(boxes))
        inst.gt_classes = torch.from_numpy(rng.integers(0, num_classes, num_boxes)).long()
        inst.gt_masks = PolygonMasks(polygons)
        image = torch.from_numpy(rng.integers(0, 256, (3, height, width), dtype=np.uint8))
        out.append({"image": image, "instances": inst, "height": height, "width": width})
    return out


def to_device(batch, device):
    return [{k: (v.to(device) if hasattr(v, "to") else v) for k, v in x.items()} for x in batch]


# ------------------------------------------------------------------------------------------ models
class Bench:
    """The pair of one config, with every variant sharing the same student and teacher modules."""

    def __init__(self, pair: str, height: int, width: int, batch: int, device: str, amp: str = "off",
                 compile_backend: str = "inductor"):
        import torch
        from detectron2.config import instantiate
        from detectron2.utils.env import seed_all_rng

        import apd  # noqa: F401  (registrations)
        from apd.config import load_config

        spec = PAIRS[pair]
        self.kind = spec["kind"]
        self.device = device
        self.amp = amp
        cfg = load_config(os.path.join(ROOT, spec["config"]), [])
        cfg.model.teacher_weights = None  # random teacher, flagged as loaded below
        if self.kind == "seg":
            cfg.model.student.sliding_window = None
            cfg.model.teacher.sliding_window = None
        self.cfg = cfg
        seed_all_rng(0)
        self.apd = instantiate(cfg.model).to(device)
        self.apd.teacher_loaded = True  # timing does not depend on the teacher's weight values
        if self.kind == "seg":
            self._build_seg()
            self.batch = to_device(seg_batch(batch, height, width, self.apd.num_classes), device)
            self.infer_batch = [{k: v for k, v in x.items() if k != "sem_seg"} for x in self.batch[:1]]
        else:
            self._build_rcnn()
            self.batch = to_device(rcnn_batch(batch, height, width, self.apd.num_classes), device)
            self.infer_batch = [{k: v for k, v in x.items() if k != "instances"} for x in self.batch[:1]]
        self._calibrate_norms()
        if self.kind == "rcnn":
            for model in (self.student, self.teacher):
                self._set_score_threshold(model)
        self.models = {"student": self.student, "floor": self.floor, "kd": self.kd, "apd": self.apd}
        self.trainers = {}
        self.compile_backend = compile_backend
        self._compiled = None  # [(owner, name, compiled callable)] once the "compiled" variant ran
        self._infer_cache = {}
        torch.manual_seed(0)

    def _calibrate_norms(self):
        """Give every frozen/eval-mode norm layer the statistics of its input on the synthetic batch.

        Random weights with identity norm statistics blow activations up layer after layer (a random
        Mask R-CNN with FrozenBN returns inf boxes); pretrained networks have normalised activations.
        One no-grad pass per network, each norm layer setting ``running_mean/var`` from its input just
        before it normalises it, gives that. Values only: shapes and compute are unchanged.
        """
        import torch
        from detectron2.layers import FrozenBatchNorm2d

        def pre_hook(module, inputs):
            x = inputs[0].detach()
            module.running_mean.copy_(x.mean(dim=(0, 2, 3)))
            module.running_var.copy_(x.var(dim=(0, 2, 3)))

        for net in (self.student, self.teacher):
            modes = {m: m.training for m in net.modules()}
            net.eval()
            norms = [m for m in net.modules() if isinstance(m, (torch.nn.BatchNorm2d, FrozenBatchNorm2d))]
            handles = [m.register_forward_pre_hook(pre_hook) for m in norms]
            try:
                with torch.no_grad():
                    images = net.preprocess_image(self.batch).tensor
                    features = net.backbone(images)
                    if self.kind == "seg":
                        net.sem_seg_head.layers(features)
            finally:
                for h in handles:
                    h.remove()
                for m, mode in modes.items():
                    m.training = mode

    # -- variants -------------------------------------------------------------------------------
    def _build_seg(self):
        from apd.modeling.meta_arch.semantic_seg_distiller import SemanticSegDistiller

        m = self.apd
        self.student, self.teacher = m.student, m.teacher
        self.floor = SemanticSegDistiller(student=m.student, teacher=m.teacher, teacher_weights=None)
        self.kd = SemanticSegDistiller(
            student=m.student, teacher=m.teacher, teacher_weights=None,
            distill_heads={"kd": m.distill_heads["kd"]}, loss_weights={"loss_kd": m.loss_weights["loss_kd"]},
        )
        for v in (self.floor, self.kd):
            v.teacher_loaded = True
        self.apd_weights = {k: m.loss_weights.get(k, 1.0) for k in m.distill_heads["apd"].loss_keys}
        self.kd_weight = m.loss_weights["loss_kd"]

    def _build_rcnn(self):
        from apd.modeling.meta_arch.rcnn_distiller import RCNNDistiller

        class FloorRCNNDistiller(RCNNDistiller):
            """The distiller's step with the distillation terms left out (the teacher still runs, with
            the same inputs prepared for the terms)."""

            def distillation_losses(self, *args, **kwargs):
                return {}

        m = self.apd
        self.student, self.teacher = m.student, m.teacher
        self.floor = FloorRCNNDistiller(student=m.student, teacher=m.teacher, teacher_weights=None,
                                        distill_heads=dict(m.distill_heads.items()))
        self.kd = RCNNDistiller(student=m.student, teacher=m.teacher, teacher_weights=None,
                                distill_heads={"kd": m.distill_heads["kd"]},
                                loss_weights={"loss_kd": m.loss_weights["loss_kd"]})
        for v in (self.floor, self.kd):
            v.teacher_loaded = True
        self.apd_weights = {k: m.loss_weights.get(k, 1.0) for k in m.distill_heads["apd"].loss_keys}
        self.kd_weight = m.loss_weights["loss_kd"]

    def _set_score_threshold(self, model, candidates: int = 1000):
        """A random detector scores every class ≈ 1/81, under the 0.05 test threshold: nothing would be
        detected and inference would skip NMS and the mask head. Set the threshold so that about
        ``candidates`` (box, class) pairs per image enter NMS (then d2 keeps the top 100), as for a
        trained detector."""
        import torch

        predictor = model.roi_heads.box_predictor
        seen = []
        handle = predictor.register_forward_hook(lambda m, i, out: seen.append(out[0].detach()))
        was_training = model.training
        model.eval()
        predictor.test_score_thresh = 1.0
        try:
            with torch.no_grad():
                model(self.infer_batch)
        finally:
            handle.remove()
            model.train(was_training)
        fg = seen[0].softmax(dim=-1)[:, :-1].flatten()
        predictor.test_score_thresh = float(torch.topk(fg, min(candidates, fg.numel())).values[-1]) * 0.999

    # -- training steps -------------------------------------------------------------------------
    def trainer(self, name: str):
        """A DistillTrainer (the real step of train_net.py) for variant ``name``, built on first use."""
        if name not in self.trainers:
            from detectron2.config import instantiate

            from apd.engine.distill_trainer import DistillTrainer

            model = self.models[name]
            cfg = self.cfg
            cfg.optimizer.params.model = model
            optimizer = instantiate(cfg.optimizer)
            cfg.optimizer.params.model = None
            adapter_optimizer = None
            if name == "apd" and cfg.get("adapter_optimizer") is not None:
                cfg.adapter_optimizer.params.model = model
                adapter_optimizer = instantiate(cfg.adapter_optimizer)
                cfg.adapter_optimizer.params.model = None
            # Learning rates 0: the optimisers do all their arithmetic, but the weights (and with them
            # e.g. the number of RPN proposals kept) stay the same from round to round.
            for opt in (optimizer, adapter_optimizer):
                for group in opt.param_groups if opt is not None else ():
                    group["lr"] = 0.0
            amp = AMP_DTYPES.get(self.amp)
            trainer = DistillTrainer(model, itertools.repeat(self.batch), optimizer, adapter_optimizer, seed=None,
                                     amp=amp is not None, amp_dtype=amp or "float16")
            trainer.iter = 0
            self.trainers[name] = trainer
        return self.trainers[name]

    def step(self, name: str):
        trainer = self.trainer(name)
        trainer.model.train()
        trainer.run_step()

    def teacher_forward(self):
        import torch

        with torch.no_grad():
            if self.kind == "seg":
                t = self.teacher
                return t.sem_seg_head.layers(t.backbone(t.preprocess_image(self.batch).tensor))
            from apd.modeling.meta_arch.rcnn_distiller import _box_branch

            m, t = self.apd, self.teacher
            images = m.normalized_images(t, self.batch, t.backbone.size_divisibility, t.backbone.padding_constraints)
            features = t.backbone(images.tensor)
            return features, _box_branch(t.roi_heads, features, self._roi_boxes(images))

    def _roi_boxes(self, images):
        """512 random boxes per image (d2's ROI batch size), for the teacher's box head."""
        import torch
        from detectron2.structures import Boxes

        g = torch.Generator().manual_seed(1)
        out = []
        for h, w in images.image_sizes:
            n = self.student.roi_heads.batch_size_per_image
            xy = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.8, h * 0.8])
            wh = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.2, h * 0.2]) + 8
            out.append(Boxes(torch.cat([xy, xy + wh], 1).to(self.device)))
        return out

    # -- terms alone ----------------------------------------------------------------------------
    def prepare_terms(self):
        """Head outputs of the real size (student and teacher), computed once without gradient."""
        import torch

        if self.kind == "seg":
            with torch.no_grad():
                s = self.student
                self._s_out = s.sem_seg_head.layers(s.backbone(s.preprocess_image(self.batch).tensor))
                self._t_out = self.teacher_forward()
                self._targets = torch.stack([x["sem_seg"] for x in self.batch])
        else:
            from apd.modeling.distill.class_maps import batch_class_maps
            from apd.modeling.distill.detection_inputs import DetectionTargets

            with torch.no_grad():
                s = self.student
                images = s.preprocess_image(self.batch)
                self._s_feats = s.backbone(images.tensor)
                self._t_feats, _ = self.teacher_forward()
                k = s.roi_heads.num_classes
                self._targets = DetectionTargets(num_classes=k, class_maps=batch_class_maps(
                    [x["instances"] for x in self.batch], images.tensor.shape[-2:], k))
            n = s.roi_heads.batch_size_per_image * len(self.batch)
            g = torch.Generator().manual_seed(2)
            self._s_scores = torch.randn(n, k + 1, generator=g).to(self.device)
            self._t_scores = torch.randn(n, k + 1, generator=g).to(self.device)

    def apd_term(self):
        from dataclasses import replace

        if self.kind == "seg":
            head = self.apd.distill_heads["apd"]
            s = replace(self._s_out, feature=self._s_out.feature.detach().requires_grad_())
            terms = head(s, self._t_out, self._targets)
        else:
            from apd.modeling.distill.detection_inputs import DetectionOutputs

            head = self.apd.distill_heads["apd"]
            s_feats = {k: v.detach().requires_grad_() for k, v in self._s_feats.items()}
            terms = head(DetectionOutputs(s_feats), DetectionOutputs(self._t_feats), self._targets)
        loss = sum(v * self.apd_weights.get(k, 1.0) for k, v in terms.items())
        loss.backward()
        head.zero_grad(set_to_none=True)

    def kd_term(self):
        from dataclasses import replace

        from apd.modeling.losses import logit_kd_loss

        if self.kind == "seg":
            s = replace(self._s_out, logits=self._s_out.logits.detach().requires_grad_())
            loss = self.apd.distill_heads["kd"](s, self._t_out, self._targets)["loss_kd"]
        else:
            scores = self._s_scores.detach().requires_grad_()
            loss = logit_kd_loss(scores[:, :, None, None], self._t_scores[:, :, None, None])
        (loss * self.kd_weight).backward()

    # -- inference ------------------------------------------------------------------------------
    def infer(self, who: str):
        import torch

        model = self.student if who == "student" else self.teacher
        model.eval()
        with torch.no_grad():
            model(self.infer_batch)
        if who == "student":
            model.train()

    def infer_part(self, part: str, who: str):
        """One part of the eval call of ``who`` (see the module docstring): pre, net or post."""
        import torch

        from apd.modeling.heads.base import upsample_logits

        if self.kind != "seg":
            raise ValueError("the inference split (pre_/net_/post_) is for segmentation pairs")
        model = self.student if who == "student" else self.teacher
        model.eval()
        try:
            with torch.no_grad():
                if part == "pre":
                    return model.preprocess_image(self.infer_batch)
                if who not in self._infer_cache:
                    images = model.preprocess_image(self.infer_batch)
                    self._infer_cache[who] = (images, model.sem_seg_head.layers(model.backbone(images.tensor)).logits)
                images, low = self._infer_cache[who]
                if part == "net":
                    return model.sem_seg_head.layers(model.backbone(images.tensor))
                # post: the rest of Segmentor.predict_logits (resize to the padded size, crop) + postprocess
                h, w = images.tensor.shape[-2:]
                logits = upsample_logits(low, (h, w), getattr(model.sem_seg_head, "align_corners", False))
                return model.postprocess(logits, images.image_sizes, self.infer_batch)
        finally:
            if who == "student":
                model.train()

    @contextlib.contextmanager
    def variant(self, name: str):
        """The context of one ``--variants`` entry (see the module docstring)."""
        if name == "default":
            yield
        elif name == "compiled":
            self._set_compiled(True)
            try:
                yield
            finally:
                self._set_compiled(False)
        else:
            raise ValueError(f"unknown variant '{name}'; choose from {VARIANTS}")

    def _set_compiled(self, on: bool):
        """Switch train.compile's compiled callables on (set as instance attributes) or off (removed)."""
        from apd.engine.distill_trainer import compile_model

        if self._compiled is None:
            self._compiled = compile_model(self.apd, backend=self.compile_backend)  # sets them
        for owner, name, fn in self._compiled:
            if on:
                object.__setattr__(owner, name, fn)
            elif name in vars(owner):
                delattr(owner, name)

    def autocast(self):
        """The autocast context of ``--amp`` for the items the trainer does not wrap itself."""
        import torch

        dtype = AMP_DTYPES.get(self.amp)
        return torch.autocast(torch.device(self.device).type, dtype=getattr(torch, dtype or "float32"),
                              enabled=dtype is not None)

    def run(self, name: str):
        if name in ("student", "floor", "kd", "apd"):
            return self.step(name)  # DistillTrainer applies train.amp itself
        with self.autocast():
            return self._run_part(name)

    def _run_part(self, name: str):
        if name == "teacher_fwd":
            return self.teacher_forward()
        if name == "apd_term":
            return self.apd_term()
        if name == "kd_term":
            return self.kd_term()
        if name == "infer_student":
            return self.infer("student")
        if name == "infer_teacher":
            return self.infer("teacher")
        if name in INFER_PARTS:
            part, who = name.split("_")
            return self.infer_part(part, who)
        raise ValueError(f"unknown item '{name}'")


# ----------------------------------------------------------------------------------------- workers
def _sync(device: str):
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _teacher_no_grad_check(bench: "Bench") -> dict:
    """Run one APD step with hooks on the teacher: was grad mode off, and did no teacher param get .grad?"""
    seen = []
    target = bench.teacher.backbone

    def hook(module, inputs, output):
        import torch

        tensors = list(output.values()) if isinstance(output, dict) else [output]
        seen.append((torch.is_grad_enabled(), any(t.requires_grad for t in tensors)))

    handle = target.register_forward_hook(hook)
    try:
        bench.step("apd")
    finally:
        handle.remove()
    return {
        "teacher_forward_calls": len(seen),
        "grad_enabled_in_teacher_forward": any(g for g, _ in seen),
        "teacher_output_requires_grad": any(r for _, r in seen),
        "teacher_params_with_grad": sum(p.grad is not None for p in bench.teacher.parameters()),
        "teacher_params_requiring_grad": sum(p.requires_grad for p in bench.teacher.parameters()),
        "teacher_in_eval_mode": not any(m.training for m in bench.teacher.modules()),
    }


def worker_time(args) -> dict:
    import torch
    from detectron2.utils.events import EventStorage

    items = [i for i in args.items.split(",") if i]
    variants = [v for v in getattr(args, "variants", "default").split(",") if v]
    args.compile_backend = getattr(args, "compile_backend", "inductor")
    args.memory_inline = getattr(args, "memory_inline", False)
    height, width = args.height, args.width
    with EventStorage(0):
        bench = Bench(args.configs, height, width, args.batch, args.device, args.amp, args.compile_backend)
        if any(i in PARTS[:2] for i in items):
            bench.prepare_terms()  # (a training-mode forward: needs batch > 1 for the PSP 1×1 bin)
        check = _teacher_no_grad_check(bench) if "apd" in items else {}
        runs = [(i, v) for i in items for v in variants if v == variants[0] or i in AFFECTED[v]]
        times = {key(i, v): [] for i, v in runs}
        for round_ in range(args.warmup + args.repeats):
            for item, v in runs:
                with bench.variant(v):
                    _sync(args.device)
                    start = time.perf_counter()
                    bench.run(item)
                    _sync(args.device)
                    if round_ >= args.warmup:
                        times[key(item, v)].append(time.perf_counter() - start)
        profile = _profile(bench, args) if args.profile else None
        saved = {key(i, v): _saved_bytes(bench, i, v) for i, v in runs if i in ("kd_term", "apd_term")}
        memory = _memory_inline(bench, runs) if args.memory_inline and args.device.startswith("cuda") else None
    out = {"times": times, "teacher_check": check, "threads": torch.get_num_threads(), "profile": profile,
           "variants": variants, "saved_bytes": saved}
    if memory is not None:
        out["memory_inline"] = memory
    return out


def key(item: str, variant: str) -> str:
    """The result key of ``item`` timed under ``variant``."""
    return item if variant == "default" else f"{item}@{variant}"


def _saved_bytes(bench: "Bench", item: str, variant: str) -> int:
    """Bytes of the distinct tensor storages autograd saves for the backward during one run of ``item``
    (exact and independent of the machine's load; parameters included, alike for every variant)."""
    import torch

    storages = {}

    def pack(t):
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with bench.variant(variant), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        bench.run(item)
    return sum(storages.values())


def _memory_inline(bench: "Bench", runs) -> dict:
    """CUDA: peak allocated during one run of each step mode / variant above allocated just before it."""
    import gc

    import torch

    out = {}
    for item, v in runs:
        if item not in MEMORY_MODES:
            continue
        with bench.variant(v):
            for model in (bench.apd, bench.student, bench.floor, bench.kd):
                for p in model.parameters():
                    p.grad = None
            gc.collect()
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            bench.run(item)
            torch.cuda.synchronize()
            out[key(item, v)] = torch.cuda.max_memory_allocated() - base
    return out


def _profile(bench: "Bench", args) -> str:
    """torch.profiler table (top 25 ops by self device/CPU time) of one run of each ``--profile`` item."""
    from torch.profiler import ProfilerActivity, profile

    cuda = args.device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    tables = []
    for item in [i for i in args.profile.split(",") if i]:
        name, _, v = item.partition("@")
        with bench.variant(v or "default"), profile(activities=activities) as prof:
            bench.run(name)
            _sync(args.device)
        key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
        tables.append(f"--- profile of '{item}' (one run, sorted by {key})\n"
                      + prof.key_averages().table(sort_by=key, row_limit=25, max_name_column_width=60))
    text = "\n".join(tables)
    print(text, flush=True)
    return text


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def worker_memory(args) -> dict:
    import gc

    import torch
    from detectron2.utils.events import EventStorage

    mode = args.items
    cuda = args.device.startswith("cuda")
    with EventStorage(0):
        bench = Bench(args.configs, args.height, args.width, args.batch, args.device, args.amp, args.compile_backend)
        if mode in bench.models:
            bench.trainer(mode)  # optimiser built before the baseline; its state is part of the step
        gc.collect()
        if cuda:
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            # Warm-up first (optimiser state, library workspaces), then reset the peak; cudnn.benchmark is
            # off here: its algorithm search allocates trial workspaces of tens of GiB no step holds.
            for _ in range(args.warmup):
                bench.run(mode)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            reset = False
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")  # reset the peak-RSS counter (VmHWM / ru_maxrss) to the current RSS
                reset = True
            except OSError:
                pass
            base = _rss_kib("VmRSS") * 1024
        for _ in range(1 if cuda else args.warmup + 1):
            bench.run(mode)
        if cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
            how = ("torch.cuda.max_memory_allocated of one step after warm-up - allocated after "
                   "construction (optimiser state included)")
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            how = ("peak RSS (reset after construction) - RSS after construction" if reset
                   else "ru_maxrss - RSS after construction (peak not resettable)")
    return {"mode": mode, "peak_bytes": peak - base, "baseline_bytes": base, "how": how}


def worker_loader(args) -> dict:
    """Time the real positional loader of the demo configs on the generated data."""
    from detectron2.config import instantiate

    import apd  # noqa: F401
    from apd.config import load_config

    cfg = load_config(os.path.join(ROOT, LOADER_CONFIG), [])
    loader = instantiate(cfg.dataloader.train)
    it = iter(loader)
    start = time.perf_counter()
    next(it)
    first = time.perf_counter() - start
    per_batch = []
    for _ in range(args.loader_iters):
        start = time.perf_counter()
        next(it)
        per_batch.append(time.perf_counter() - start)
    return {
        "config": LOADER_CONFIG,
        "batch_size": cfg.dataloader.train.total_batch_size,
        "num_workers": cfg.dataloader.train.num_workers,
        "crop": list(cfg.dataloader.train.mapper.augmentations.crop_size),
        "first_batch_s": first,
        "per_batch_s": per_batch,
    }


# ------------------------------------------------------------------------------------------ driver
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


def summarize(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def _fmt_t(s):
    return f"{s['median'] * 1e3:,.0f} ms" if s["median"] < 10 else f"{s['median']:.1f} s"


def _fmt_spread(s):
    return f"{s['min'] * 1e3:,.0f}–{s['max'] * 1e3:,.0f}" if s["max"] < 10 else f"{s['min']:.1f}–{s['max']:.1f} s"


def _split(k: str):
    item, _, v = k.partition("@")
    return item, v or "default"


def report_pair(name: str, res: dict) -> str:
    """Markdown table of one pair."""
    t = {k: summarize(v) for k, v in res["times"].items() if v}
    raw = res["times"]
    lines = [f"#### {PAIRS[name]['label']} — {res['height']}×{res['width']}, batch {res['batch']}, "
             f"{res['device']}, amp {res.get('amp', 'off')}, {res['threads']} threads, {res['repeats']} repeats after {res['warmup']} warm-up",
             "", "| item | median | min–max | × floor (median of per-round ratios) | peak memory |",
             "|---|---|---|---|---|"]
    mem = dict(res.get("memory", {}))
    mem.update(res.get("memory_inline", {}))
    order = {i: n for n, i in enumerate(STEPS + PARTS[:2] + INFER_PARTS[:3] + ("infer_student",) + INFER_PARTS[3:]
                                         + ("infer_teacher",))}
    for k in sorted(t, key=lambda k: (order.get(_split(k)[0], 99), VARIANTS.index(_split(k)[1]) if _split(k)[1] in VARIANTS else 9)):
        item, v = _split(k)
        ratio = ""
        floor = key("floor", v) if key("floor", v) in raw else "floor"
        if item in ("student", "floor", "kd", "apd") and raw.get(floor):
            ratio = f"{statistics.median(a / b for a, b in zip(raw[k], raw[floor])):.3f}"
        m = mem.get(k)
        m = f"{m / 2**30:.2f} GiB" if m is not None else ""
        lines.append(f"| {k} | {_fmt_t(t[k])} | {_fmt_spread(t[k])} | {ratio} | {m} |")
    lines.append("")
    d = derived(res)
    for k, value in d.items():
        lines.append(f"- {k}: {value}")
    check = res.get("teacher_check")
    if check:
        lines.append(f"- teacher no-grad check (one APD step, hook on the teacher backbone): {check}")
    return "\n".join(lines)


def derived(res: dict) -> dict:
    raw, out = res["times"], {}
    med = {k: statistics.median(v) for k, v in raw.items() if v}

    def paired(a, b):
        r = [x / y for x, y in zip(raw[a], raw[b])]
        return f"{statistics.median(r):.3f} (rounds: {', '.join(f'{x:.3f}' for x in r)})"

    for v in res.get("variants", ["default"]):
        tag = "" if v == "default" else f" [{v}]"
        apd, kd = key("apd", v), key("kd", v)
        floor = key("floor", v) if key("floor", v) in med else "floor"
        if apd in med and floor in med:
            out[f"APD step / floor{tag}"] = paired(apd, floor)
        if kd in med and floor in med:
            out[f"KD step / floor{tag}"] = paired(kd, floor)
        if apd in med and kd in med:
            out[f"APD's own share of the APD step ((apd − kd) / apd, medians){tag}"] = f"{(med[apd] - med[kd]) / med[apd]:.1%}"
        if key("apd_term", v) in med and apd in med:
            out[f"APD term fwd+bwd alone / APD step{tag}"] = f"{med[key('apd_term', v)] / med[apd]:.1%}"
        if key("kd_term", v) in med and apd in med:
            out[f"KD term fwd+bwd alone / APD step{tag}"] = f"{med[key('kd_term', v)] / med[apd]:.1%}"
        if v != "default":
            for item in ("kd_term", "apd_term", "student", "floor", "kd", "apd") + INFER_PARTS[:3] + (
                    "infer_student",) + INFER_PARTS[3:] + ("infer_teacher",):
                if item in raw and key(item, v) in raw:
                    out[f"{item}: {v} / default (per round)"] = paired(key(item, v), item)
        for what, prefix in (("", "infer"), (", network alone", "net")):
            s, t = key(f"{prefix}_student", v), key(f"{prefix}_teacher", v)
            if s in med and t in med:
                out[f"inference images/s student / teacher{what}{tag}"] = (
                    f"{1 / med[s]:.3f} / {1 / med[t]:.3f} = {med[t] / med[s]:.2f}×")
        for who in ("student", "teacher"):
            parts = [key(f"{p}_{who}", v) for p in ("pre", "net", "post")]
            whole = key(f"infer_{who}", v)
            if all(p in med for p in parts) and whole in med:
                out[f"inference split {who}{tag}: pre / net / post / whole"] = (
                    " / ".join(_fmt_t(summarize(raw[p])) for p in parts + [whole])
                    + f" (pre + post = {(med[parts[0]] + med[parts[2]]) / med[whole]:.1%} of the whole call)")
    for k, n in sorted(res.get("saved_bytes", {}).items()):
        out[f"tensors saved for the backward, {k}"] = f"{n / 2**20:,.0f} MiB"
    mem = dict(res.get("memory", {}))
    mem.update(res.get("memory_inline", {}))
    if all(k in mem for k in ("apd", "student", "teacher_fwd")):
        budget = mem["student"] + mem["teacher_fwd"]
        out["APD peak / (student peak + teacher-forward peak)"] = f"{mem['apd'] / budget:.3f} (target ≤ 1.10)"
    if "apd" in mem and "floor" in mem:
        out["APD peak / floor peak"] = f"{mem['apd'] / mem['floor']:.3f}"
    return out


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

"""The items the cost benchmark times: training steps, the distillation terms alone, inference (:class:`Bench`)."""
import itertools
import os

from .pairs import PAIRS, ROOT, rcnn_batch, seg_batch, to_device

STEPS = ("student", "teacher_fwd", "floor", "kd", "apd")
INFER_PARTS = ("pre_student", "net_student", "post_student", "pre_teacher", "net_teacher", "post_teacher")
PARTS = ("kd_term", "apd_term", "infer_student", "infer_teacher") + INFER_PARTS
VARIANTS = ("default", "compiled")
# The items each variant changes: the others are timed under the first variant only.
AFFECTED = {"default": STEPS + PARTS,
            "compiled": ("student", "floor", "kd", "apd", "kd_term", "apd_term", "infer_student", "pre_student",
                         "net_student", "post_student")}
MEMORY_MODES = ("student", "teacher_fwd", "floor", "kd", "apd")
AMP_DTYPES = {"fp16": "float16", "bf16": "bfloat16"}  # --amp → train.amp.dtype / torch dtype name


class Bench:
    """The models of one pair, built from its config, and the items timed on them.

    ``compiled``: the variant of ``train.compile``: :func:`apd.engine.distill_trainer.compile_model` (what
    ``DistillTrainer(compile=...)`` runs) is applied to this bench's own distiller once it is built; a
    default bench is another instance with its own models."""

    def __init__(self, pair: str, height: int, width: int, batch: int, device: str, amp: str = "off",
                 compiled: bool = False, compile_backend: str = "inductor"):
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
        self._infer_cache = {}
        if compiled:
            from apd.engine.distill_trainer import compile_model

            compile_model(self.apd, backend=compile_backend)
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

"""DistillTrainer: Detectron2's SimpleTrainer with a second optimiser and a reproducible step.

One backward pass of the sum of all losses feeds two optimisers: the student's (SGD; student + student
adapter) and the teacher adapter's (Adam; docs/METHOD.md §3c). This is exact because the distillers route
gradients so that ``loss_adapt`` reaches only the teacher adapter and every other loss never reaches it.

Each step re-seeds torch's RNG from (seed, iteration, rank), so dropout masks depend only on the
iteration: together with the positional data loader (``apd.data.samplers``) a resumed run repeats an
uninterrupted one exactly.

``compile`` (``train.compile``) runs :func:`compile_model` on the model first: ``torch.compile`` of the
student's backbone, its head's ``layers``/``losses`` and every distillation term.
"""
import logging
import time
from typing import Any, Callable, List, Mapping, Optional, Tuple, Union

import torch
from detectron2.engine import SimpleTrainer, hooks
from detectron2.utils import comm
from torch import nn

from ..errors import UserError
from .preemption import stopping

__all__ = ["DistillTrainer", "NonFiniteLossError", "NonFiniteStateError", "compile_model"]

logger = logging.getLogger(__name__)

# Detectron2's writers log the median of the last 20 values of each loss (default_writers' window).
_LOG_WINDOW = 20


class NonFiniteLossError(UserError, FloatingPointError):
    """Raised before any optimiser step when a loss is NaN/inf, so no poisoned weights are saved."""


class NonFiniteStateError(NonFiniteLossError):
    """Raised before the optimiser step when the losses are finite but a gradient, or a floating buffer
    the forward pass updates (BatchNorm running statistics), is NaN/inf."""


def _non_finite(named: List[Tuple[str, torch.Tensor]], most: int = 5) -> List[str]:
    """Names of the tensors of ``named`` holding a NaN/inf (at most ``most``; one fused reduction)."""
    named = [(n, t) for n, t in named if t.numel() > 0]
    if not named:
        return []
    # Largest |value| per tensor: NaN and inf survive it, and unlike a 2-norm it cannot overflow.
    peaks = torch._foreach_norm([t.detach().float() for _, t in named], float("inf"))
    bad = (~torch.isfinite(torch.stack(peaks))).nonzero().flatten().tolist()
    return [named[i][0] for i in bad[:most]] + ([f"... {len(bad) - most} more"] if len(bad) > most else [])


def compile_model(
    model: nn.Module, backend: str = "inductor", mode: Optional[str] = None, dynamic: Optional[bool] = None
) -> List[Tuple[Any, str, Callable]]:
    """``torch.compile`` the trained compute of a model in place: the student's ``backbone.forward``, its
    ``sem_seg_head.layers`` and ``.losses`` (segmentation), and every ``distill_heads`` term's ``forward``.

    The teacher (run once per step without autograd) and Detectron2's pre-/post-processing stay eager.
    Each compiled callable is stored as an instance attribute over the method it wraps, so parameter
    names, the state dict, checkpoints and hooks are unchanged; ``delattr(owner, name)`` undoes one.
    Works on a plain segmentor or R-CNN (the student is the model), on a distiller (``model.student``)
    and through a DDP wrapper.

    Returns:
        [(owner, attribute name, compiled callable)] in the order compiled.
    """
    net = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    student = getattr(net, "student", net)
    targets = []
    if isinstance(getattr(student, "backbone", None), nn.Module):
        targets.append((student.backbone, "forward"))
    head = getattr(student, "sem_seg_head", None)
    for name in ("layers", "losses"):
        if head is not None and callable(getattr(head, name, None)):
            targets.append((head, name))
    terms = getattr(net, "distill_heads", None)
    for term in terms.values() if isinstance(terms, nn.ModuleDict) else ():
        targets.append((term, "forward"))
    compiled = []
    for owner, name in targets:
        fn = torch.compile(getattr(owner, name), backend=backend, mode=mode, dynamic=dynamic)
        object.__setattr__(owner, name, fn)
        compiled.append((owner, name, fn))
    logger.info(f"torch.compile (backend={backend}, mode={mode}): {len(compiled)} callables: "
                + ", ".join(f"{type(o).__name__}.{n}" for o, n, _ in compiled))
    return compiled


class DistillTrainer(SimpleTrainer):
    """SimpleTrainer + optional teacher-adapter optimiser + optional AMP + per-step seeding.

    Args:
        model, data_loader, optimizer: as :class:`detectron2.engine.SimpleTrainer`.
        adapter_optimizer: optimiser of the teacher adapter (stepped every iteration after the same
            backward), or None for methods without one.
        amp: enable ``torch.autocast`` (fp16 with a GradScaler on CUDA, bf16 otherwise).
        amp_dtype: "float16" or "bfloat16".
        seed: base seed of the per-step RNG re-seeding; None disables it.
        compile: ``train.compile``: False (eager), True (:func:`compile_model` with inductor) or a dict
            of its keyword arguments (``backend``, ``mode``, ``dynamic``). Compiled dropout draws other
            random numbers than eager dropout: a compiled run is reproducible, not equal to an eager one.
        check_finite_state: before each optimiser step, check the trained model's floating buffers
            (BatchNorm running statistics, which a huge step can push to inf while BN's output and the
            loss stay finite) and, without a GradScaler, every gradient; raise
            :class:`NonFiniteStateError` naming them. One fused reduction and one host sync per
            step. The teacher's buffers are not checked (it never trains). With fp16 + GradScaler, inf gradients are the scaler's
            business (it skips that step), so only the buffers are checked.
    """

    def __init__(
        self,
        model,
        data_loader,
        optimizer,
        adapter_optimizer: Optional[torch.optim.Optimizer] = None,
        *,
        amp: bool = False,
        amp_dtype: str = "float16",
        seed: Optional[int] = None,
        gather_metric_period: int = 1,
        compile: Union[bool, Mapping[str, Any]] = False,
        check_finite_state: bool = True,
    ):
        super().__init__(model, data_loader, optimizer, gather_metric_period=gather_metric_period)
        self.compiled = []
        if compile:
            self.compiled = compile_model(model, **(dict(compile) if isinstance(compile, Mapping) else {}))
        self.adapter_optimizer = adapter_optimizer
        self.amp = amp
        self.amp_dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}[amp_dtype]
        self.seed = seed
        device = next(iter(model.parameters())).device
        self._device_type = device.type
        use_scaler = amp and self._device_type == "cuda" and self.amp_dtype == torch.float16
        self.grad_scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        self._resumed_loss_history = {}
        self.check_finite_state = check_finite_state
        if check_finite_state:
            # Floating buffers of the trained model (the teacher is frozen: its buffers never change).
            self._buffers = [(n, b) for n, b in model.named_buffers()
                             if b.is_floating_point() and ".teacher." not in f".{n}"]
            self._grad_params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]

    def _optimizers(self):
        return [o for o in (self.optimizer, self.adapter_optimizer) if o is not None]

    def run_step(self):
        assert self.model.training, "[DistillTrainer] model was changed to eval mode!"
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start
        if self.seed is not None:
            # After fetching the data: creating the loader's iterator (first step of a run, resumed or
            # not) draws from the global RNG when it starts worker processes.
            torch.manual_seed(self.seed + 1_000_003 * self.iter + comm.get_rank())

        with torch.autocast(self._device_type, dtype=self.amp_dtype, enabled=self.amp):
            loss_dict = self.model(data)
        losses = sum(loss_dict.values())
        if not torch.isfinite(losses):
            values = {k: float(v.detach()) for k, v in loss_dict.items()}
            raise NonFiniteLossError(
                f"Non-finite loss at iteration {self.iter}: {values}. Training stopped before the "
                "optimiser step; the last checkpoint is untouched. Lower the learning rate or loss "
                "weights, or check the data (labels outside the class range?)."
            )
        for opt in self._optimizers():
            opt.zero_grad(set_to_none=True)
        if self.grad_scaler is not None:
            self.grad_scaler.scale(losses).backward()
        else:
            losses.backward()
        self.after_backward()
        if self.check_finite_state:
            self._check_finite_state(loss_dict)
        self._write_metrics(loss_dict, data_time)
        for opt in self._optimizers():
            if self.grad_scaler is not None:
                self.grad_scaler.step(opt)
            else:
                opt.step()
        if self.grad_scaler is not None:
            self.grad_scaler.update()

    def _check_finite_state(self, loss_dict) -> None:
        # One fused reduction and one host sync per step for buffers and gradients together.
        grads = [] if self.grad_scaler is not None else [
            (f"grad:{n}", p.grad) for n, p in self._grad_params if p.grad is not None]
        bad = _non_finite(self._buffers + grads, most=10)
        bad_buffers = [n for n in bad if not n.startswith("grad:")]
        bad_grads = [n[len("grad:"):] for n in bad if n.startswith("grad:")]
        if not bad_buffers and not bad_grads:
            return
        values = {k: round(float(v.detach()), 6) for k, v in loss_dict.items()}
        what = "; ".join(part for part in (
            f"buffers {bad_buffers}" if bad_buffers else "", f"gradients of {bad_grads}" if bad_grads else "") if part)
        raise NonFiniteStateError(
            f"Non-finite model state at iteration {self.iter} with finite losses {values}: {what}. Training "
            "stopped before the optimiser step; the last checkpoint is untouched. Lower the learning rate "
            "(or clip gradients), or check the data.")

    def state_dict(self):
        ret = super().state_dict()
        if self.adapter_optimizer is not None:
            ret["adapter_optimizer"] = self.adapter_optimizer.state_dict()
        if self.grad_scaler is not None:
            ret["grad_scaler"] = self.grad_scaler.state_dict()
        history = self._loss_history()
        if history:
            ret["loss_history"] = history
        return ret

    def _loss_history(self):
        """The last ``_LOG_WINDOW`` (value, iteration) pairs of every logged loss."""
        storage = getattr(self, "storage", None)
        if storage is None:
            return {}
        return {
            name: [(float(v), int(i)) for v, i in buf.values()[-_LOG_WINDOW:]]
            for name, buf in storage.histories().items()
            if name == "total_loss" or name.startswith("loss_")
        }

    def before_train(self):
        # Refill the smoothing windows of the logged losses: a resumed run then logs the same (median
        # over 20 iterations) values as an uninterrupted one, not medians over the iterations since resume.
        for name, values in self._resumed_loss_history.items():
            for value, iteration in values:
                self.storage.put_scalar(name, value, cur_iter=iteration)
        self._resumed_loss_history = {}
        super().before_train()

    def after_train(self):
        # Stopped by a signal (apd.engine.preemption): the iteration did not complete, so no hook may save
        # a "final" checkpoint or evaluate; only the writers flush what the completed iterations logged.
        if stopping() is None:
            return super().after_train()
        self.storage.iter = self.iter
        for h in self._hooks:
            if isinstance(h, hooks.PeriodicWriter):
                h.after_train()
        self.concurrent_executor.shutdown(wait=True)

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        if self.adapter_optimizer is not None:
            if "adapter_optimizer" not in state_dict:
                raise KeyError(
                    "Checkpoint has no 'adapter_optimizer' state but this run has a teacher-adapter "
                    "optimiser: it was written by a run without APD; start a new run instead of --resume."
                )
            self.adapter_optimizer.load_state_dict(state_dict["adapter_optimizer"])
        if self.grad_scaler is not None and "grad_scaler" in state_dict:
            self.grad_scaler.load_state_dict(state_dict["grad_scaler"])
        self._resumed_loss_history = dict(state_dict.get("loss_history", {}))

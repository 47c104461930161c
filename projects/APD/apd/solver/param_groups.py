"""Which parameters each optimiser steps, and at which learning rate.

APD recipe (docs/METHOD.md §4): backbone at base_lr, heads (PPM/ASPP, classifier, aux) and the student adapter
at 10× base_lr; the teacher adapter has its own Adam (``teacher_adapter_params``); the teacher has none.
Which parameters the second optimiser steps is what the model's distillation terms declare
(``DistillationTerm.second_optimizer_parameters``, :mod:`apd.modeling.distill.protocol`).
"""
from typing import Dict, List, Optional, Sequence

from detectron2.solver import get_default_optimizer_params
from torch import nn

from ..checkpoint.keys import STUDENT_PREFIX
from ..modeling.distill.protocol import DistillationTerm

__all__ = ["check_optimizers", "student_param_groups", "teacher_adapter_params", "second_optimizer_parameters"]


def second_optimizer_parameters(model: nn.Module) -> List[nn.Parameter]:
    """The trainable parameters every :class:`DistillationTerm` inside ``model`` declares for the second
    optimiser, each once, in module order."""
    params, seen = [], set()
    for module in model.modules():
        if isinstance(module, DistillationTerm):
            for p in module.second_optimizer_parameters():
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
    return params


class _HeadLR:
    """The ``lr_factor_func`` of a parameter name: 1 for the backbone (after a distiller's
    :data:`~apd.checkpoint.keys.STUDENT_PREFIX`), ``factor`` for everything else. A class, not a lambda, so
    that it pickles."""

    def __init__(self, factor: float, backbone_prefixes: Sequence[str]):
        self.factor = factor
        self.backbone_prefixes = tuple(backbone_prefixes)

    def __call__(self, name: str) -> float:
        stripped = name[len(STUDENT_PREFIX):] if name.startswith(STUDENT_PREFIX) else name
        return 1.0 if stripped.startswith(self.backbone_prefixes) else self.factor


def student_param_groups(
    model: nn.Module,
    *,
    base_lr: float,
    weight_decay: float = 1e-4,
    weight_decay_norm: Optional[float] = None,
    head_lr_multiplier: float = 10.0,
    backbone_prefixes: Sequence[str] = ("backbone.",),
) -> List[Dict]:
    """Parameter groups of everything the student optimiser trains.

    Excludes frozen parameters (the teacher) and the terms' second-optimiser parameters
    (:func:`second_optimizer_parameters`, e.g. APD's teacher adapter). Parameters whose name (after an
    optional :data:`~apd.checkpoint.keys.STUDENT_PREFIX`) starts with one of ``backbone_prefixes`` get ``base_lr``; all others
    (heads, student adapter) get ``head_lr_multiplier × base_lr``. Like the official code, weight decay
    applies to norm layers too unless ``weight_decay_norm`` is given.
    """
    excluded = {id(p) for p in second_optimizer_parameters(model)}
    groups = get_default_optimizer_params(
        model,
        base_lr=base_lr,
        weight_decay=weight_decay,
        weight_decay_norm=weight_decay if weight_decay_norm is None else weight_decay_norm,
        lr_factor_func=_HeadLR(head_lr_multiplier, backbone_prefixes),
    )
    out = []
    for g in groups:
        params = [p for p in g["params"] if id(p) not in excluded]
        if params:
            out.append({**g, "params": params})
    if not out:
        raise ValueError("student_param_groups: the model has no trainable student parameters")
    return out


def teacher_adapter_params(model: nn.Module) -> List[nn.Parameter]:
    """The parameters stepped by ``adapter_optimizer``: :func:`second_optimizer_parameters` (APD: the teacher
    adapters). ``ValueError`` when there are none."""
    params = second_optimizer_parameters(model)
    if not params:
        raise ValueError(
            "adapter_optimizer is configured but no distillation term of the model declares parameters for "
            "it (second_optimizer_parameters); set `adapter_optimizer = None` for methods without one."
        )
    return params


def check_optimizers(cfg) -> None:
    """Refuse optimiser numbers torch would reject only once the model is built (without the key) or
    that train nothing sensible, before anything starts: for ``optimizer`` and ``adapter_optimizer``,
    ``lr`` a finite number ≥ 0, ``weight_decay`` ≥ 0, ``momentum`` in [0, 1], ``betas`` two numbers in
    [0, 1); and ``optimizer.params.head_lr_multiplier`` ≥ 0.

    Raises:
        apd.config.ConfigValueError: one line naming the key and the allowed range.
    """
    import math

    from ..config import check_range

    def number(v, low=0.0, high=math.inf, high_open=False):
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= low
        return ok and (v < high if high_open else v <= high)

    for opt in ("optimizer", "adapter_optimizer"):
        check_range(cfg, f"{opt}.lr", number, "a finite number ≥ 0")
        check_range(cfg, f"{opt}.weight_decay", number, "a finite number ≥ 0")
        check_range(cfg, f"{opt}.momentum", lambda v: number(v, 0.0, 1.0), "a number in [0, 1]")
        check_range(cfg, f"{opt}.betas", lambda v: len(v) == 2 and all(number(b, 0.0, 1.0, True) for b in v),
                    "two numbers in [0, 1)")
    check_range(cfg, "optimizer.params.head_lr_multiplier", number, "a finite number ≥ 0")

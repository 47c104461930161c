"""Checkpoint keys: the one report of what does not fit a model, and the prefix rules.

:func:`compare_state_dicts` is used by teacher loading (``apd.modeling.meta_arch.teacher``), the student
export (``apd.export``) and the converter tools (``apd.checkpoint.cli``); :data:`STUDENT_PREFIX` is where a
distiller keeps its student's keys (``AtomicCheckpointer``, ``apd.export``).
"""
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

import torch

__all__ = ["STUDENT_PREFIX", "KeyMismatch", "compare_state_dicts", "format_keys", "strip_prefix", "without_ddp_prefix"]

STUDENT_PREFIX = "student."


def format_keys(keys: Iterable[str], limit: int = 20) -> str:
    """``"a, b, c, ... (N more)"``: the first ``limit`` keys, then how many were left out."""
    keys = list(keys)
    shown = ", ".join(str(k) for k in keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def strip_prefix(state: Mapping[str, Any], prefix: str) -> Dict[str, Any]:
    """The entries of ``state`` under ``prefix``, without it (``module.`` of DDP, ``student.`` of a
    distiller: :data:`STUDENT_PREFIX`)."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def without_ddp_prefix(state: Mapping[str, Any]) -> Mapping[str, Any]:
    """``state`` without DDP's ``module.`` prefix when every key carries it (the rule of fvcore's checkpointer),
    else ``state`` itself."""
    return strip_prefix(state, "module.") if state and all(k.startswith("module.") for k in state) else state


@dataclass
class KeyMismatch:
    """What of a state dict does not fit a model's ``state_dict()`` (:func:`compare_state_dicts`).

    ``missing``: model keys absent from the state (``num_batches_tracked`` never counts: bookkeeping);
    ``unexpected``: state keys the model does not have; ``mismatched``: ``"key (checkpoint (a, b) vs model
    (c, d))"``; ``extra_buffers``: unexpected ``num_batches_tracked`` keys (a model with FrozenBN has no slot
    for them), left out of ``unexpected``.
    """

    missing: List[str]
    unexpected: List[str]
    mismatched: List[str]
    extra_buffers: List[str]

    def lines(self, allow_missing: Callable[[str], bool] = lambda key: False, limit: int = 20) -> List[str]:
        """One line per kind of misfit, ``"missing keys (N): a, b, ..."`` (the first ``limit`` keys), and a
        ``hint:`` line when the unexpected keys are missing keys with a prefix added or removed; empty when
        the state fits. Missing keys for which ``allow_missing`` is true are not misfits (a backbone-only
        checkpoint leaves the head missing)."""
        missing = [k for k in self.missing if not allow_missing(k)]
        kinds = (("missing keys", missing), ("unexpected keys", self.unexpected),
                 ("shape mismatches", self.mismatched))
        out = [f"{title} ({len(keys)}): {format_keys(keys, limit)}" for title, keys in kinds if keys]
        hint = _prefix_hint(missing, self.unexpected)
        return out + ([hint] if hint else [])


def _prefix_hint(missing: Sequence[str], unexpected: Sequence[str]) -> Optional[str]:
    """A sentence when most unexpected keys are missing keys with a prefix added or removed."""
    if not missing or not unexpected:
        return None
    by_tail: Dict[str, List[str]] = {}
    for m in missing:
        by_tail.setdefault(".".join(m.split(".")[-3:]), []).append(m)
    model_extra: Counter = Counter()  # the model's names = prefix + checkpoint names
    checkpoint_extra: Counter = Counter()  # the checkpoint's names = prefix + model names
    for u in unexpected:
        for m in by_tail.get(".".join(u.split(".")[-3:]), []):
            if m.endswith("." + u):
                model_extra[m[: -len(u)]] += 1
            elif u.endswith("." + m):
                checkpoint_extra[u[: -len(m)]] += 1
    for counts, text in ((model_extra, "without the prefix '{p}': pass --prefix {p}"),
                         (checkpoint_extra, "with an extra prefix '{p}': check --prefix and --model-key")):
        if counts:
            prefix, n = counts.most_common(1)[0]
            if n >= len(unexpected) // 2:
                return f"hint: {n} unexpected keys are missing keys " + text.format(p=prefix)
    return None


def compare_state_dicts(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor],
                        benign_unexpected: Iterable[str] = ()) -> KeyMismatch:
    """``state`` against ``expected`` (a model's ``state_dict()``); unexpected keys containing one of
    ``benign_unexpected`` (e.g. R-CNN anchors of old checkpoints) are left out."""
    benign = tuple(benign_unexpected)
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected and not any(b in k for b in benign)]
    mismatched = [
        f"{k} (checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)})"
        for k in state
        if k in expected and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    extra = [k for k in unexpected if k.endswith("num_batches_tracked")]
    return KeyMismatch(missing, [k for k in unexpected if k not in extra], mismatched, extra)

"""What the converter command lines (``tools/convert_*.py``) share: arguments, error report, final write.

Each tool converts with one of :mod:`apd.checkpoint.converters`, checks the result against a model, and
then either reports the keys that do not fit (exit status 1) or writes ``{"model": state}`` atomically
(exit status 0). Bad arguments are argparse's exit status 2.
"""
import argparse
import sys
from collections import Counter
from typing import Callable, Dict, Iterable, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from ..errors import UserError
from .atomic import atomic_torch_save
from .key_map import ConversionResult
from .io import load_checkpoint
from .keys import KeyMismatch

__all__ = [
    "allow_only", "build_model_from_config", "converter_parser", "format_conversion_report", "read_and_convert",
    "report_misfit", "summarize_keys", "write_converted",
]


def converter_parser(doc: str, src_help: str) -> argparse.ArgumentParser:
    """Parser with SRC, DST, ``--opts`` and ``--allow-pickle``; the description and epilog come from the tool's
    docstring (first paragraph / the rest)."""
    parser = argparse.ArgumentParser(
        description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(doc.split("\n\n")[1:]),
    )
    parser.add_argument("src", metavar="SRC", help=src_help)
    parser.add_argument("dst", metavar="DST", help="output file (.pth), written atomically as {'model': state}")
    parser.add_argument("--opts", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides applied before building the model, "
                        "e.g. model.sem_seg_head.num_classes=150")
    parser.add_argument(
        "--allow-pickle", action="store_true",
        help="load SRC without the restriction to tensors, arrays and containers (plain pickle / "
        "weights_only=False): only for files you trust, unpickling can run code",
    )
    return parser


def read_and_convert(args: argparse.Namespace, convert: Callable[..., ConversionResult],
                     **options) -> Optional[ConversionResult]:
    """Read ``args.src`` and ``convert(checkpoint, **options)`` it (a converter of
    :mod:`apd.checkpoint.converters`); None (after one ``error:`` line on stderr) when the
    file is missing, unsafe, damaged, holds NaN/inf, or is not such a checkpoint."""
    try:
        checkpoint = load_checkpoint(args.src, allow_pickle=args.allow_pickle)
        return convert(checkpoint, **options)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return None


def report_misfit(src: str, result: ConversionResult, target: str, errors: Sequence[str],
                  hints: Iterable[str] = ()) -> int:
    """Print why the converted ``src`` does not fit ``target`` (and any hints) on stderr; returns 1."""
    print(f"error: '{src}' converted ({result.source}) does not fit {target}:", file=sys.stderr)
    for line in list(errors) + [f"hint: {h}" for h in hints]:
        print("  " + line, file=sys.stderr)
    return 1


def write_converted(result: ConversionResult, state: Mapping[str, torch.Tensor], comparison: KeyMismatch,
                    checked: str, dst: str, not_provided: Sequence[str] = (),
                    not_provided_title: str = "Not in the output (keep their initialisation)") -> int:
    """Drop buffers the model has no slot for (e.g. ``num_batches_tracked`` for FrozenBN), print the
    conversion report, what was checked and the model keys left to their initialisation, then write
    ``{"model": state}`` to ``dst`` atomically; returns 0."""
    state = dict(state)
    for key in comparison.extra_buffers:
        del state[key]
    print(format_conversion_report(result, state))
    print(checked)
    if not_provided:
        by_prefix = ", ".join(f"{p} ({n})" for p, n in summarize_keys(not_provided).items())
        print(f"{not_provided_title}, {len(not_provided)} keys: {by_prefix}")
        for key in not_provided:
            print(f"  {key}")
    atomic_torch_save({"model": state}, dst)
    print(f"Wrote {dst}")
    return 0


def allow_only(prefix: str) -> Callable[[str], bool]:
    """``allow_missing`` predicate for :meth:`apd.checkpoint.keys.KeyMismatch.lines`: model keys outside ``prefix`` may be
    missing (e.g. the head, when only a backbone is converted)."""
    return lambda key: not key.startswith(prefix)


def build_model_from_config(
    config_file: str, model_key: Optional[str] = None, overrides: Sequence[str] = ()
) -> Tuple[nn.Module, str]:
    """Instantiate the model node ``model_key`` of a LazyConfig (on CPU, no weights loaded).

    Args:
        config_file: a LazyConfig ``.py``/``.yaml`` file.
        model_key: dotted key of the node to build; None picks ``model.teacher`` when the config's model
            has a teacher (a distiller config) and ``model`` otherwise. A node with a ``teacher_weights``
            argument is built with ``teacher_weights=None`` (the target only provides key names/shapes).
        overrides: ``key=value`` config overrides (checked with :func:`apd.config.check_overrides`).
    Returns:
        (model, the model key used).
    """
    from detectron2.config import LazyConfig, instantiate
    from omegaconf import DictConfig, OmegaConf

    from ..config import check_overrides

    cfg = LazyConfig.load(config_file)
    overrides = list(overrides)
    check_overrides(cfg, overrides)
    cfg = LazyConfig.apply_overrides(cfg, overrides)
    if "model" not in cfg:
        raise KeyError(f"Config '{config_file}' defines no `model`")
    if model_key is None:
        model_key = "model.teacher" if isinstance(cfg.model, DictConfig) and "teacher" in cfg.model else "model"
    node = OmegaConf.select(cfg, model_key, default=None)
    if node is None:
        raise KeyError(f"Config '{config_file}' has no node `{model_key}`")
    if isinstance(node, DictConfig) and "teacher_weights" in node:
        node.teacher_weights = None
    model = instantiate(node)
    if not isinstance(model, nn.Module):
        raise TypeError(f"`{model_key}` of '{config_file}' builds a {type(model).__name__}, not an nn.Module")
    return model, model_key


def summarize_keys(keys: Iterable[str], depth: int = 2) -> Dict[str, int]:
    """Number of keys per dotted prefix of ``depth`` components (``backbone.layer1``: 60), in first-seen order."""
    return dict(Counter(".".join(key.split(".")[:depth]) for key in keys))


def format_conversion_report(result: ConversionResult, state: Mapping[str, torch.Tensor]) -> str:
    """Human-readable summary: converted keys per target prefix, dropped keys per source prefix."""
    lines = [f"Converted {len(state)} keys ({result.source}):"]
    lines += [f"  {prefix:<40s} {count:5d}" for prefix, count in summarize_keys(state).items()]
    lines += [f"Changed {name}: {what}" for name, what in result.changed.items()]
    if result.dropped:
        dropped = ", ".join(f"{p} ({n})" for p, n in summarize_keys(
            [k.rsplit(".", 1)[0] for k in result.dropped], depth=2).items())
        lines.append(f"Dropped {len(result.dropped)} source keys: {dropped}")
    return "\n".join(lines)

"""What the converter command lines (``tools/convert_*.py``) share: arguments, error report, final write.

Each tool converts with :func:`apd.checkpoint.converters.convert`, checks the result against a model, and
then either reports the keys that do not fit (exit status 1) or writes ``{"model": state}`` atomically
(exit status 0). Bad arguments are argparse's exit status 2.
"""
import argparse
import sys
from typing import Callable, Iterable, Mapping, Optional, Sequence

import torch

from ..errors import UserError
from .atomic import atomic_torch_save
from .converters import (
    ConversionResult,
    ModelComparison,
    convert,
    format_conversion_report,
    read_checkpoint,
    summarize_keys,
)

__all__ = ["allow_only", "converter_parser", "read_and_convert", "report_misfit", "write_converted"]


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


def read_and_convert(args: argparse.Namespace, source: str, **options) -> Optional[ConversionResult]:
    """Read ``args.src`` and convert it from ``source``; None (after one ``error:`` line on stderr) when the
    file is missing, unsafe, damaged, holds NaN/inf, or is not such a checkpoint."""
    try:
        checkpoint = read_checkpoint(args.src, allow_pickle=args.allow_pickle)
        return convert(source, checkpoint, **options)
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


def write_converted(result: ConversionResult, state: Mapping[str, torch.Tensor], comparison: ModelComparison,
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
    """``allow_missing`` predicate for :meth:`ModelComparison.errors`: model keys outside ``prefix`` may be
    missing (e.g. the head, when only a backbone is converted)."""
    return lambda key: not key.startswith(prefix)

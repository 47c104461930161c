#!/usr/bin/env python
"""Convert a CIRKD DeepLabV3 checkpoint (github.com/winycg/CIRKD, models/deeplabv3.py) to Segmentor keys.

    python tools/convert_cirkd_deeplabv3.py deeplabv3_resnet101_citys_best_model.pth \\
        checkpoints/deeplabv3_r101_cirkd_cityscapes.pth --config-file configs/cityscapes/deeplabv3_r101_cirkd.py
    python tools/convert_cirkd_deeplabv3.py kd_deeplabv3_resnet18_citys_best_model.pth \\
        checkpoints/deeplabv3_r18_cirkd_cityscapes.pth --config-file configs/cityscapes/deeplabv3_r18_cirkd.py

CIRKD saves the bare state dict: ``pretrained.*`` (ResNetV1b with a deep stem, ``conv1..3``/``bn1..3``,
``layer1..4``), ``head.aspp.{b0..b4,project}``, ``head.block``, ``auxlayer.block``. The whole model converts
to a Segmentor of CIRKD's layout, which ``configs/cityscapes/deeplabv3_r{101,18}_cirkd.py`` build:
``DilatedResNet(deep_stem=True, torchvision_dilation=True)`` (ResNetV1b dilates like torchvision, also for
ResNet-18), ``ASPPHead(project_channels=512)`` (CIRKD's 1×1 projection after the ASPP; its input channels
are reordered from CIRKD's branch order to ASPPHead's), an aux head a quarter as wide as res4, BGR input
minus CIRKD's mean. The output is checked against the config's model: missing keys, unexpected keys and
shape mismatches are errors.

--backbone-only converts ``pretrained.*`` alone (``head.*`` and ``auxlayer.*`` dropped): an init for a
model with another head; the config's head keeps its initialisation and is listed.

Exit status: 0 written; 1 the checkpoint does not fit (keys listed on stderr); 2 bad arguments.
"""
import argparse
import sys

from apd.checkpoint import atomic_torch_save
from apd.checkpoint.converters import (
    ConversionError,
    add_prefix,
    build_model_from_config,
    compare_with_model,
    convert,
    format_conversion_report,
    read_checkpoint,
    summarize_keys,
)


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )
    parser.add_argument("src", metavar="SRC", help="CIRKD checkpoint (.pth state dict)")
    parser.add_argument("dst", metavar="DST", help="output file (.pth), written atomically as {'model': state}")
    parser.add_argument("--config-file", required=True, metavar="FILE",
                        help="LazyConfig whose model the weights must fit")
    parser.add_argument(
        "--model-key", default=None, metavar="KEY",
        help="config node to check against (default: model.teacher when the config's model has a teacher, "
        "else model)",
    )
    parser.add_argument("--backbone-only", action="store_true",
                        help="convert pretrained.* only; drop head.* and auxlayer.* "
                        "(an init for a model with another head)")
    parser.add_argument("--prefix", default="",
                        help="prepended to every converted key, e.g. 'student.' for a distiller's student")
    parser.add_argument("--opts", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides applied before building the model")
    parser.add_argument(
        "--allow-pickle", action="store_true",
        help="load SRC with weights_only=False (only for files you trust: unpickling runs code)",
    )
    return parser


def main(argv=None) -> int:
    args = argument_parser().parse_args(argv)
    try:
        checkpoint = read_checkpoint(args.src, allow_pickle=args.allow_pickle)
        result = convert("cirkd_deeplabv3", checkpoint, backbone_only=args.backbone_only)
    except (ConversionError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    state = add_prefix(result.state, args.prefix)
    backbone_prefix = args.prefix + "backbone."

    model, model_key = build_model_from_config(args.config_file, args.model_key, args.opts)
    comparison = compare_with_model(state, model)
    allow_missing = (lambda k: not k.startswith(backbone_prefix)) if args.backbone_only else (lambda k: False)
    errors = comparison.errors(allow_missing=allow_missing)
    if errors:
        print(
            f"error: '{args.src}' converted ({result.source}) does not fit `{model_key}` of "
            f"'{args.config_file}':",
            file=sys.stderr,
        )
        for line in errors:
            print("  " + line, file=sys.stderr)
        projection = args.prefix + "sem_seg_head.project.0.weight"
        if projection in state and projection in comparison.unexpected:
            print(
                "  hint: the checkpoint's ASPP has a 1×1 projection (head.aspp.project.0.weight -> "
                f"{projection}) that `{model_key}` lacks: use a config with "
                "ASPPHead(project_channels=512), e.g. configs/cityscapes/deeplabv3_r101_cirkd.py, or pass "
                "--backbone-only to convert the backbone alone",
                file=sys.stderr,
            )
        return 1
    for key in comparison.extra_buffers:
        del state[key]

    print(format_conversion_report(result, state))
    print(f"Checked against `{model_key}` ({type(model).__name__}) of '{args.config_file}': "
          "no unexpected or shape-mismatched keys.")
    not_provided = [k for k in comparison.missing if allow_missing(k)]
    if not_provided:
        by_prefix = ", ".join(f"{p} ({n})" for p, n in summarize_keys(not_provided).items())
        print(f"Not in the output (keep their initialisation), {len(not_provided)} keys: {by_prefix}")
        for key in not_provided:
            print(f"  {key}")
    atomic_torch_save({"model": state}, args.dst)
    print(f"Wrote {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

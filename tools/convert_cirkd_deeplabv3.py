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
import sys

from apd.checkpoint.cli import (
    allow_only,
    build_model_from_config,
    converter_parser,
    read_and_convert,
    report_misfit,
    write_converted,
)
from apd.checkpoint.converters import convert_cirkd_deeplabv3
from apd.checkpoint.keys import compare_state_dicts


def argument_parser():
    parser = converter_parser(__doc__, "CIRKD checkpoint (.pth state dict)")
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
    return parser


def main(argv=None) -> int:
    args = argument_parser().parse_args(argv)
    result = read_and_convert(args, convert_cirkd_deeplabv3, backbone_only=args.backbone_only)
    if result is None:
        return 1
    state = {args.prefix + k: v for k, v in result.state.items()}
    model, model_key = build_model_from_config(args.config_file, args.model_key, args.opts)
    comparison = compare_state_dicts(model.state_dict(), state)
    allow_missing = allow_only(args.prefix + "backbone.") if args.backbone_only else (lambda k: False)
    errors = comparison.lines(limit=60, allow_missing=allow_missing)
    if errors:
        hints = []
        projection = args.prefix + "sem_seg_head.project.0.weight"
        if projection in state and projection in comparison.unexpected:
            hints.append(
                "the checkpoint's ASPP has a 1×1 projection (head.aspp.project.0.weight -> "
                f"{projection}) that `{model_key}` lacks: use a config with "
                "ASPPHead(project_channels=512), e.g. configs/cityscapes/deeplabv3_r101_cirkd.py, or pass "
                "--backbone-only to convert the backbone alone"
            )
        return report_misfit(args.src, result, f"`{model_key}` of '{args.config_file}'", errors, hints)
    return write_converted(
        result, state, comparison, dst=args.dst,
        checked=f"Checked against `{model_key}` ({type(model).__name__}) of '{args.config_file}': "
        "no unexpected or shape-mismatched keys.",
        not_provided=[k for k in comparison.missing if allow_missing(k)],
    )


if __name__ == "__main__":
    sys.exit(main())

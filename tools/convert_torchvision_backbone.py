#!/usr/bin/env python
"""Convert ImageNet backbone weights (torchvision, or semseg/APD deep-stem ResNets) to Segmentor backbone keys.

    # torchvision ResNet-50 (7×7 stem) -> DilatedResNet(depth=50, deep_stem=False)
    python tools/convert_torchvision_backbone.py --arch resnet50 resnet50-11ad3fa6.pth checkpoints/r50_tv.pth
    # semseg / APD "resnet18_v2" deep-stem ImageNet weights (initmodel/resnet18_v2.pth) -> deep_stem=True
    python tools/convert_torchvision_backbone.py --arch resnet18 --deep-stem resnet18_v2.pth checkpoints/r18_deep.pth
    # torchvision MobileNetV2 -> DilatedMobileNetV2, checked against a student config
    python tools/convert_torchvision_backbone.py --arch mobilenet_v2 mobilenet_v2-b0353104.pth \\
        checkpoints/mv2.pth --config-file configs/cityscapes/pspnet_mv2.py

Keys become ``backbone.*`` (the ImageNet classifier ``fc.*`` / ``features.18.*`` + ``classifier.*`` is
dropped), so the output ``{"model": state}`` is a ``train.init_checkpoint`` of a Segmentor config; Detectron2's
checkpointer loads it non-strictly and the head stays at its own initialisation. A distiller config can use
the same file: ``AtomicCheckpointer`` loads ``backbone.*`` into ``student.backbone.*`` (or write the prefix
into the file with ``--prefix student.``).

Checks: without ``--config-file`` the keys must load strictly (names and shapes) into the bare backbone
``--arch`` describes; with it, into the ``backbone`` of the config's model (``--model-key``, default
``model``): missing backbone keys, unexpected keys and shape mismatches are errors, and the model keys the
checkpoint does not provide (the head) are listed.

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
from apd.checkpoint.converters import convert_torchvision_mobilenet_v2, convert_torchvision_resnet
from apd.checkpoint.keys import compare_state_dicts

ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "mobilenet_v2")


def argument_parser():
    parser = converter_parser(__doc__, "ImageNet checkpoint (.pth state dict)")
    parser.add_argument("--arch", required=True, choices=ARCHS, help="architecture of SRC")
    parser.add_argument(
        "--deep-stem", action="store_true",
        help="SRC is a deep-stem ResNet (conv1..3/bn1..3, semseg/APD 'resnet*_v2'); target deep_stem=True",
    )
    parser.add_argument(
        "--prefix", default="",
        help="prepended to every key (after 'backbone.'), e.g. 'student.' for a distiller config",
    )
    parser.add_argument("--config-file", default=None, metavar="FILE",
                        help="optional LazyConfig whose model's backbone the weights must fit")
    parser.add_argument("--model-key", default="model", metavar="KEY",
                        help="config node to check against (default: model)")
    return parser


def reference_backbone(arch: str, deep_stem: bool):
    """The bare backbone ``arch`` converts to (BN norm: every ImageNet buffer has a slot)."""
    if arch == "mobilenet_v2":
        from apd.modeling.backbone import DilatedMobileNetV2

        return DilatedMobileNetV2(norm="BN")
    from apd.modeling.backbone import DilatedResNet

    return DilatedResNet(depth=int(arch[len("resnet"):]), deep_stem=deep_stem, norm="BN")


def main(argv=None) -> int:
    parser = argument_parser()
    args = parser.parse_args(argv)
    if args.deep_stem and args.arch == "mobilenet_v2":
        parser.error("--deep-stem applies to ResNets only")
    if args.arch == "mobilenet_v2":
        result = read_and_convert(args, convert_torchvision_mobilenet_v2)
    else:
        result = read_and_convert(args, convert_torchvision_resnet, deep_stem=args.deep_stem)
    if result is None:
        return 1
    state = {args.prefix + k: v for k, v in result.state.items()}
    backbone_prefix = args.prefix + "backbone."

    if args.config_file is None:
        target = f"a bare {args.arch} backbone" + (" (deep stem)" if args.deep_stem else "")
        comparison = compare_state_dicts(reference_backbone(args.arch, args.deep_stem).state_dict(),
                                         {k[len(backbone_prefix):]: v for k, v in state.items()})
        # report in the checkpoint's own names
        comparison.missing = [backbone_prefix + k for k in comparison.missing]
        comparison.unexpected = [backbone_prefix + k for k in comparison.unexpected]
        comparison.mismatched = [backbone_prefix + k for k in comparison.mismatched]
        comparison.extra_buffers = [backbone_prefix + k for k in comparison.extra_buffers]
        not_provided = []
    else:
        model, model_key = build_model_from_config(args.config_file, args.model_key, args.opts)
        target = f"`{model_key}` ({type(model).__name__}) of '{args.config_file}'"
        comparison = compare_state_dicts(model.state_dict(), state)
        not_provided = [k for k in comparison.missing if not k.startswith(backbone_prefix)]
    errors = comparison.lines(limit=60, allow_missing=allow_only(backbone_prefix))
    if errors:
        return report_misfit(args.src, result, target, errors)
    return write_converted(
        result, state, comparison, dst=args.dst, not_provided=not_provided,
        checked=f"Checked against {target}: every backbone tensor is provided, with matching shapes.",
        not_provided_title="Not in this checkpoint (keep their initialisation; expected for an ImageNet init)",
    )


if __name__ == "__main__":
    sys.exit(main())

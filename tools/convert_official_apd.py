#!/usr/bin/env python
"""Convert an official APD (or semseg) PSPNet / APD DeepLabV3 checkpoint to this project's Segmentor keys.

    # the released PSPNet-R101 teacher, checked against the teacher of a distillation config
    python tools/convert_official_apd.py pspnet101_fc_cityscapes.pth checkpoints/pspnet_r101_cityscapes.pth \\
        --config-file configs/cityscapes/apd_pspnet_r18_pspnet_r101.py
    # a released student, checked against a plain Segmentor config
    python tools/convert_official_apd.py cityscapes_psp18_psp101.pth checkpoints/apd_psp18_cityscapes.pth \\
        --config-file configs/cityscapes/pspnet_r18.py --model-key model

The source is the file the official code writes (``{"epoch", "state_dict": {"module.layer0.0.weight", ...},
"optimizer"}``; a bare state dict or a ``model_state_dict`` container works too). Both PSPNet layouts are
recognised: APD's ``model/pspnet.py`` (``ppm.merge`` + 1×1 ``cls.0``) and semseg's (``cls.{0,1,4}``); a
checkpoint with ``ppm.image_pool`` is the APD DeepLabV3. The keys are renamed by
``apd.checkpoint.converters.convert_official_apd`` and then checked strictly against the model built from
``--config-file`` (``model.teacher`` of a distiller config, else ``model``; ``teacher_weights`` is not
loaded): any missing, unexpected or shape-mismatched key is an error. The output ``{"model": state}`` is the
``model.teacher_weights`` of a distiller or the ``train.init_checkpoint`` of a Segmentor config.

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
)


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )
    parser.add_argument("src", metavar="SRC", help="official checkpoint (.pth)")
    parser.add_argument("dst", metavar="DST", help="output file (.pth), written atomically as {'model': state}")
    parser.add_argument(
        "--config-file", required=True, metavar="FILE",
        help="LazyConfig whose model the weights must fit (e.g. configs/cityscapes/pspnet_r101.py)",
    )
    parser.add_argument(
        "--model-key", default=None, metavar="KEY",
        help="config node to build and check against: model.teacher or model "
        "(default: model.teacher when the config's model has a teacher, else model)",
    )
    parser.add_argument(
        "--layout", choices=["auto", "apd", "semseg"], default="auto",
        help="PSPNet layout: apd (ppm.merge + cls.0 classifier) or semseg (cls.{0,1,4}); default: detect",
    )
    parser.add_argument(
        "--prefix", default="",
        help="prepended to every converted key, e.g. 'student.' to initialise a distiller's student "
        "with --model-key model (default: none)",
    )
    parser.add_argument(
        "--opts", nargs="*", default=[], metavar="KEY=VALUE",
        help="config overrides applied before building the model, e.g. model.sem_seg_head.num_classes=150",
    )
    parser.add_argument(
        "--allow-pickle", action="store_true",
        help="load SRC with weights_only=False (only for files you trust: unpickling runs code)",
    )
    return parser


def main(argv=None) -> int:
    args = argument_parser().parse_args(argv)
    try:
        checkpoint = read_checkpoint(args.src, allow_pickle=args.allow_pickle)
        result = convert("official_apd", checkpoint, layout=None if args.layout == "auto" else args.layout)
    except (ConversionError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    state = add_prefix(result.state, args.prefix)

    model, model_key = build_model_from_config(args.config_file, args.model_key, args.opts)
    comparison = compare_with_model(state, model)
    errors = comparison.errors()
    if errors:
        print(
            f"error: '{args.src}' converted ({result.source}) does not fit `{model_key}` of "
            f"'{args.config_file}':",
            file=sys.stderr,
        )
        for line in errors:
            print("  " + line, file=sys.stderr)
        return 1
    for key in comparison.extra_buffers:  # e.g. FrozenBN targets have no num_batches_tracked
        del state[key]

    print(format_conversion_report(result, state))
    print(f"Checked against `{model_key}` ({type(model).__name__}) of '{args.config_file}': "
          "no missing, unexpected or shape-mismatched keys.")
    atomic_torch_save({"model": state}, args.dst)
    print(f"Wrote {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Convert an official APD (or semseg) PSPNet / APD DeepLabV3 checkpoint to this project's Segmentor keys.

    # the released PSPNet-R101 teacher, checked against the teacher of a distillation config
    python tools/convert_official_apd.py pspnet101_fc_cityscapes.pth checkpoints/pspnet_r101_cityscapes.pth \\
        --config-file configs/apd_pspnet_r18.py
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
import sys

from apd.checkpoint.cli import (
    build_model_from_config,
    converter_parser,
    read_and_convert,
    report_misfit,
    write_converted,
)
from apd.checkpoint.converters import convert_official_apd
from apd.checkpoint.keys import compare_state_dicts


def argument_parser():
    parser = converter_parser(__doc__, "official checkpoint (.pth)")
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
    return parser


def main(argv=None) -> int:
    args = argument_parser().parse_args(argv)
    result = read_and_convert(args, convert_official_apd, layout=None if args.layout == "auto" else args.layout)
    if result is None:
        return 1
    state = {args.prefix + k: v for k, v in result.state.items()}
    model, model_key = build_model_from_config(args.config_file, args.model_key, args.opts)
    target = f"`{model_key}` of '{args.config_file}'"
    comparison = compare_state_dicts(model.state_dict(), state)
    errors = comparison.lines(limit=60)
    if errors:
        return report_misfit(args.src, result, target, errors)
    return write_converted(
        result, state, comparison, dst=args.dst,
        checked=f"Checked against `{model_key}` ({type(model).__name__}) of '{args.config_file}': "
        "no missing, unexpected or shape-mismatched keys.",
    )


if __name__ == "__main__":
    sys.exit(main())

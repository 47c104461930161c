#!/usr/bin/env python
"""Train or evaluate any config of this project (students, teachers, distillers) with Detectron2.

    python train_net.py --config-file configs/apd_deeplab_r18.py --num-gpus 8
    python train_net.py --config-file configs/apd_deeplab_r18.py --eval-only train.init_checkpoint=PATH
    python train_net.py --config-file ... --resume            # continue output_dir's last checkpoint
    python train_net.py --config-file ... key=value ...       # LazyConfig overrides

Config contract (LazyConfig, see configs/common/): ``model``; ``dataloader.{train,test,evaluator}``;
``optimizer`` (its ``params.model`` is set here once the model exists); ``lr_multiplier``; ``train``
(output_dir, init_checkpoint, max_iter, amp, ddp, checkpointer, eval_period, log_period, device, seed,
eval_teacher); and for APD ``adapter_optimizer`` (the teacher adapter's own optimiser, or None).
"""
import contextlib
import logging
import sys

import torch
from detectron2.config import instantiate
from detectron2.data import MetadataCatalog
from detectron2.engine import (
    create_ddp_model,
    default_argument_parser,
    default_setup,
    default_writers,
    hooks,
    launch,
)
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger
from omegaconf import OmegaConf

import apd  # noqa: F401  (registers backbones, heads, meta-archs, datasets)
from apd.checkpoint import AtomicCheckpointer
from apd.config import ConfigKeyError, load_config
from apd.data.datasets import check_dataset_root
from apd.engine.distill_trainer import DistillTrainer
from apd.engine.hooks import TeacherEvalHook, check_output_dir, keep_run_config
from apd.engine.sync_batchnorm import naive_sync_batchnorm
from apd.evaluation import format_per_class_table
from apd.modeling.meta_arch.teacher import TeacherWeightsError, needs_channel_swap

logger = logging.getLogger("apd")


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


def resolve_device(device: str) -> str:
    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"train.device={device} but CUDA is not available; use train.device=cpu (or auto)")
    return device


def do_test(cfg, model, *, log_prefix: str = ""):
    if "evaluator" not in cfg.dataloader or cfg.dataloader.evaluator is None:
        return {}
    results = inference_on_dataset(
        model, instantiate(cfg.dataloader.test), instantiate(cfg.dataloader.evaluator)
    )
    if comm.is_main_process() and results:
        if log_prefix:
            logger.info(f"{log_prefix} results:")
        print_csv_format(results)
        table = format_per_class_table(results)
        if table:
            logger.info("Per-class results:\n" + table)
    return results


def check_datasets(cfg) -> None:
    """Fail fast, with the expected path and the prepare script, when a dataset is not on disk."""
    for split in ("train", "test"):
        names = OmegaConf.select(cfg, f"dataloader.{split}.dataset.names", default=None)
        if names is None:
            continue
        for name in [names] if isinstance(names, str) else list(names):
            check_dataset_root(name)


class ConfigMismatchError(ValueError):
    """Two config values that must agree do not (class counts, pixel formats)."""


def check_model_matches_data(cfg) -> None:
    """Fail fast when the model and the data disagree on the class count or the pixel format.

    Compares (when present) ``model[.student|.teacher].sem_seg_head.num_classes``,
    ``dataloader.{train,test}.mapper.num_classes`` and ``len(stuff_classes)`` of every dataset's
    metadata; ``dataloader.{train,test}.mapper.image_format`` with the student's ``input_format``, which
    the teacher's must equal or be convertible to (RGB<->BGR).
    """
    student = "model.student" if OmegaConf.select(cfg, "model.student", default=None) is not None else "model"
    counts = {}
    for key in (f"{student}.sem_seg_head.num_classes", "model.teacher.sem_seg_head.num_classes",
                "dataloader.train.mapper.num_classes", "dataloader.test.mapper.num_classes"):
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None:
            counts[key] = int(value)
    for split in ("train", "test"):
        names = OmegaConf.select(cfg, f"dataloader.{split}.dataset.names", default=None) or []
        for name in [names] if isinstance(names, str) else list(names):
            classes = MetadataCatalog.get(name).get("stuff_classes", None)
            if classes is not None:
                counts[f"len(MetadataCatalog.get('{name}').stuff_classes)"] = len(classes)
    if counts and len(set(counts.values())) > 1:
        (ref, n), *others = counts.items()
        bad = ", ".join(f"{k}={v}" for k, v in others if v != n)
        raise ConfigMismatchError(f"Class counts disagree: {ref}={n} but {bad}.")
    fmt_key = f"{student}.input_format"
    fmt = OmegaConf.select(cfg, fmt_key, default=None)
    for split in ("train", "test"):
        key = f"dataloader.{split}.mapper.image_format"
        data_fmt = OmegaConf.select(cfg, key, default=None)
        if fmt is not None and data_fmt is not None and data_fmt != fmt:
            raise ConfigMismatchError(f"Pixel formats disagree: {key}={data_fmt} but {fmt_key}={fmt}.")
    teacher_fmt = OmegaConf.select(cfg, "model.teacher.input_format", default=None)
    try:
        needs_channel_swap(fmt, teacher_fmt)
    except ValueError as e:
        raise ConfigMismatchError(f"model.teacher.input_format={teacher_fmt}, {fmt_key}={fmt}: {e}") from e


def build_model(cfg, device: str):
    model = instantiate(cfg.model)
    model.to(device)
    if device == "cpu" and comm.get_world_size() > 1:
        # torch's SyncBatchNorm is CUDA-only: use Detectron2's NaiveSyncBatchNorm over gloo instead.
        model = naive_sync_batchnorm(model)
    logger.info("Model:\n{}".format(model) if comm.is_main_process() and cfg.train.get("log_model", False) else
                f"Model: {type(model).__name__} with {sum(p.numel() for p in model.parameters()):,} parameters")
    return model


def do_train(args, cfg, device: str):
    check_datasets(cfg)
    check_model_matches_data(cfg)
    model = build_model(cfg, device)
    if hasattr(model, "check_teacher_ready"):
        model.check_teacher_ready()  # refuse a random teacher before any heavy work

    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    adapter_optimizer = None
    if cfg.get("adapter_optimizer") is not None:
        cfg.adapter_optimizer.params.model = model
        adapter_optimizer = instantiate(cfg.adapter_optimizer)

    train_loader = instantiate(cfg.dataloader.train)
    ddp_kwargs = dict(cfg.train.ddp)
    if device == "cpu":
        ddp_kwargs["device_ids"] = None
    model = create_ddp_model(model, **ddp_kwargs)
    trainer = DistillTrainer(
        model,
        train_loader,
        optimizer,
        adapter_optimizer,
        amp=cfg.train.amp.enabled,
        amp_dtype=cfg.train.amp.get("dtype", "float16"),
        seed=cfg.train.get("seed", None),
        compile=cfg.train.get("compile", False),
    )
    checkpointer = AtomicCheckpointer(model, cfg.train.output_dir, trainer=trainer)
    bare = _unwrap(model)
    teacher_hook = None
    if cfg.train.get("eval_teacher", False) and hasattr(bare, "teacher"):
        teacher = bare.teacher_for_student_inputs() if hasattr(bare, "teacher_for_student_inputs") else bare.teacher
        teacher_hook = TeacherEvalHook(lambda: do_test(cfg, teacher, log_prefix="Teacher"))
    trainer.register_hooks(
        [
            hooks.IterationTimer(),
            hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
            teacher_hook,
            hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer)
            if comm.is_main_process()
            else None,
            hooks.EvalHook(cfg.train.eval_period, lambda: do_test(cfg, model)),
            hooks.PeriodicWriter(
                default_writers(cfg.train.output_dir, cfg.train.max_iter),
                period=cfg.train.log_period,
            )
            if comm.is_main_process()
            else None,
        ]
    )

    checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=args.resume)
    if args.resume and checkpointer.has_checkpoint():
        start_iter = trainer.iter + 1
    else:
        start_iter = 0
    if hasattr(train_loader, "set_start_iter"):
        train_loader.set_start_iter(start_iter)
    trainer.train(start_iter, cfg.train.max_iter)
    return trainer


# Mistakes of the user (paths, keys, weights): one clear line and exit status 2, no traceback.
USER_ERRORS = (FileNotFoundError, FileExistsError, ConfigKeyError, ConfigMismatchError, TeacherWeightsError)


def main(args):
    try:
        return _main(args)
    except USER_ERRORS as e:
        print(f"train_net.py: error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)


def _main(args):
    cfg = load_config(args.config_file, args.opts)
    if not args.eval_only and comm.is_main_process():
        check_output_dir(cfg.train.output_dir, resume=args.resume, overwrite=args.overwrite)
    # --eval-only into a training folder: default_setup would overwrite the run's config.yaml.
    keep = args.eval_only and comm.is_main_process()
    with keep_run_config(cfg.train.output_dir) if keep else contextlib.nullcontext():
        default_setup(cfg, args)
    # Detectron2 only sets up its own loggers: without this, apd's INFO lines (the teacher's score,
    # skipped samples, ...) reach neither the console nor log.txt.
    setup_logger(cfg.train.output_dir, distributed_rank=comm.get_rank(), name="apd")
    device = resolve_device(cfg.train.get("device", "auto"))

    if args.eval_only:
        check_datasets(cfg)
        check_model_matches_data(cfg)
        model = build_model(cfg, device)
        model = create_ddp_model(model, **({"device_ids": None} if device == "cpu" else {}))
        AtomicCheckpointer(model).load(cfg.train.init_checkpoint)
        return do_test(cfg, model)
    do_train(args, cfg, device)
    return None


def argument_parser():
    parser = default_argument_parser()
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="allow a new run to write into an output_dir that holds another run's checkpoints",
    )
    return parser


def invoke_main() -> None:
    args = argument_parser().parse_args()
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )


if __name__ == "__main__":
    invoke_main()

#!/usr/bin/env python
"""Train or evaluate any config of this project (students, teachers, distillers) with Detectron2.

    python train_net.py --config-file configs/apd_deeplab_r18.py --num-gpus 8
    python train_net.py --config-file configs/apd_deeplab_r18.py --eval-only train.init_checkpoint=PATH
    python train_net.py --config-file ... --resume            # continue output_dir's last checkpoint
    python train_net.py --config-file ... --overwrite         # old run moved to output_dir/previous_<time>/
    python train_net.py --config-file ... key=value ...       # LazyConfig overrides (type-checked)

The shape of Detectron2's tools/lazyconfig_train_net.py. Config contract (LazyConfig, see configs/common/):
``model``; ``dataloader.{train,test,evaluator}``; ``optimizer`` (its ``params.model`` is set here once the
model exists); ``lr_multiplier``; ``train`` (see configs/common/train.py); and for APD
``adapter_optimizer`` (the teacher adapter's own optimiser, or None).

Every user mistake (paths, keys, value types, weights, class counts, batch vs BN) is one line
``train_net.py: error: ...`` and exit status 2. All but the checks that need the built model run in
:func:`check_run`, before any process is spawned or file written.
"""
import contextlib
import logging
import multiprocessing
import os
import signal
import sys

from detectron2.config import instantiate
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
from torch.multiprocessing import ProcessExitedException, ProcessRaisedException

import apd  # noqa: F401  (registers backbones, heads, meta-archs, datasets)
from apd.checkpoint import AtomicCheckpointer
from apd.checkpoint.io import CheckpointError
from apd.config import ConfigValueError, load_config
from apd.engine.distill_trainer import DistillTrainer
from apd.data.samplers import check_loaders
from apd.engine.hooks import PeriodicCheckpointer, TeacherEvalHook, check_schedule
from apd.engine.resume import TeacherFingerprint, check_resume_checkpoint, check_weights
from apd.engine.preemption import forward_stop_signals, stop_on_signals, stopping
from apd.engine.run_dir import (
    check_output_dir,
    check_output_dir_free,
    keep_run_config,
    lock_output_dir,
    move_previous_run,
    read_run_config,
    restore_run_config,
    truncate_metrics,
)
from apd.evaluation import format_per_class_table
from apd.layers.batch_norm import check_batch_per_process
from apd.launch_checks import check_batch_divides, check_datasets, check_model_matches_data, resolve_device
from apd.errors import UserError
from apd.export import read_student_state, student_config
from apd.modeling.meta_arch.distiller import Distiller
from apd.solver.param_groups import check_optimizers

logger = logging.getLogger("apd")


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


def _frozen(model):
    """Sub-modules that never train (a distiller's teacher): no batch check."""
    return [model.teacher] if isinstance(model, Distiller) else []


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


def build_model(cfg, device: str):
    """``instantiate(cfg.model)`` on ``device``. The norm layers are the config's (``norm="SyncBN"`` /
    ``"naiveSyncBN"`` synchronise BN across processes, as in Detectron2)."""
    model = instantiate(cfg.model)
    model.to(device)
    logger.info("Model:\n{}".format(model) if comm.is_main_process() and cfg.train.get("log_model", False) else
                f"Model: {type(model).__name__} with {sum(p.numel() for p in model.parameters()):,} parameters")
    return model


def build_optimizers(cfg, model):
    """The student's optimiser and the teacher adapter's (None when the config has none)."""
    cfg.optimizer.params.model = model
    adapter_optimizer = None
    if cfg.get("adapter_optimizer") is not None:
        cfg.adapter_optimizer.params.model = model
        adapter_optimizer = instantiate(cfg.adapter_optimizer)
    return instantiate(cfg.optimizer), adapter_optimizer


def build_hooks(cfg, model, checkpointer):
    bare = _unwrap(model)
    teacher_hook = None
    if cfg.train.get("eval_teacher", False) and isinstance(bare, Distiller):
        teacher = bare.teacher_for_student_inputs()
        teacher_hook = TeacherEvalHook(lambda: do_test(cfg, teacher, log_prefix="Teacher"))
    main = comm.is_main_process()
    return [
        hooks.IterationTimer(),
        hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
        teacher_hook,
        PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer) if main else None,
        hooks.EvalHook(cfg.train.eval_period, lambda: do_test(cfg, model)),
        hooks.PeriodicWriter(default_writers(cfg.train.output_dir, cfg.train.max_iter), period=cfg.train.log_period)
        if main else None,
    ]


def resume_or_load(cfg, checkpointer, trainer, *, resume: bool) -> int:
    """Load the last checkpoint (``resume``) or ``train.init_checkpoint``; return the start iteration.

    ``--resume`` refuses a checkpoint of another model (keys, shapes) and, for a distiller, one trained
    against another teacher (apd.engine.resume).

    metrics.json is cut before the records this run logs again (a run killed after its last checkpoint
    logged some iterations already; apd.engine.run_dir.truncate_metrics).
    """
    checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=resume)
    start_iter = trainer.iter + 1 if resume and checkpointer.has_checkpoint() else 0
    if comm.is_main_process():
        cut = truncate_metrics(cfg.train.output_dir, start_iter)
        if cut:
            logger.info(f"metrics.json: cut {cut} records from iteration {start_iter} on (they are logged again)")
    return start_iter


def do_train(args, cfg, device: str):
    model = build_model(cfg, device)
    check_batch_per_process(cfg, model, world_size=comm.get_world_size(), skip=_frozen(model), device=device)
    if isinstance(model, Distiller):
        model.check_teacher_ready()  # refuse a random teacher before any heavy work
    optimizer, adapter_optimizer = build_optimizers(cfg, model)
    train_loader = instantiate(cfg.dataloader.train)
    model = create_ddp_model(model, **{**cfg.train.ddp, **({"device_ids": None} if device == "cpu" else {})})
    trainer = DistillTrainer(model, train_loader, optimizer, adapter_optimizer, amp=cfg.train.amp.enabled,
                             amp_dtype=cfg.train.amp.get("dtype", "float16"), seed=cfg.train.get("seed", None),
                             compile=cfg.train.get("compile", False))
    checkpointer = AtomicCheckpointer(model, cfg.train.output_dir, trainer=trainer)
    teacher = None
    if isinstance(_unwrap(model), Distiller):  # every checkpoint names its teacher (apd.engine.resume)
        teacher = TeacherFingerprint(_unwrap(model).teacher, cfg.model.get("teacher_weights"))
        checkpointer.add_checkpointable("teacher_fingerprint", teacher)
    if args.resume and checkpointer.has_checkpoint():  # another model or teacher: refuse before the writers
        check_resume_checkpoint(model, checkpointer.get_checkpoint_file(), teacher)
    trainer.register_hooks(build_hooks(cfg, model, checkpointer))

    start_iter = resume_or_load(cfg, checkpointer, trainer, resume=args.resume)
    if start_iter >= cfg.train.max_iter:  # --resume of a finished run: evaluating again would log twice
        logger.info(f"The run in {cfg.train.output_dir} has finished ({start_iter} of train.max_iter="
                    f"{cfg.train.max_iter} iterations): nothing to resume. Raise train.max_iter to train on, or "
                    "score it with --eval-only.")
        return trainer
    if hasattr(train_loader, "set_start_iter"):  # apd's positional loader; d2's R-CNN loaders have none
        train_loader.set_start_iter(start_iter)
    try:
        trainer.train(start_iter, cfg.train.max_iter)
    except BaseException as e:  # noqa: B036  (a stop signal: say at which iteration)
        if stopping() is not None:
            e.iteration = trainer.iter
        raise
    return trainer


def build_eval_model(cfg, device: str, *, allow_partial_weights: bool = False):
    """The model ``--eval-only`` scores, with the weights of ``train.init_checkpoint``.

    A distiller's inference is its student's, so for a distiller config only the student is built
    (``apd.export.student_config``) and loaded from the checkpoint's ``student.*`` keys (a distiller
    training checkpoint) or from an exported student checkpoint; every student key must be there. The
    teacher file is not read. Other configs: the model, loaded by the checkpointer; every tensor of the
    model must come from the file unless ``allow_partial_weights`` (``--allow-partial-weights``).

    Raises:
        CheckpointError: the checkpoint leaves model tensors uninitialised (count and first keys).
        StudentWeightsError: a distiller config's student keys are missing or mismatched.
    """
    spec = student_config(cfg.model)
    if spec.distiller is None:
        model = build_model(cfg, device)
        checkpointer = AtomicCheckpointer(model)
        checkpointer.load(cfg.train.init_checkpoint)
        left = uninitialised(model, checkpointer.incompatible)
        if left and not allow_partial_weights:
            raise CheckpointError(
                f"--eval-only: '{cfg.train.init_checkpoint}' (train.init_checkpoint) leaves {len(left)} of "
                f"{len(uninitialised(model, None))} model tensors uninitialised (first: {', '.join(left[:5])}), so a "
                "partly random model would be scored. Give the run's own checkpoint, or pass "
                "--allow-partial-weights to score it anyway.")
        if left:
            logger.warning(f"--allow-partial-weights: {len(left)} model tensors keep their random initial values "
                           f"(first: {', '.join(left[:5])})")
        return model
    model = instantiate(spec.node)
    model.load_state_dict(read_student_state(cfg.train.init_checkpoint, model, spec.prefix))
    logger.info(f"--eval-only of a {spec.distiller} config: evaluating its student "
                f"({type(model).__name__}) from {cfg.train.init_checkpoint}; the teacher is not built")
    return model.to(device)


def uninitialised(model, incompatible) -> list:
    """Model state keys a checkpoint load did not set (missing or of another shape), in model order;
    ``num_batches_tracked`` (a BN counter no inference reads) is not counted."""
    if incompatible is None:
        return [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    left = set(incompatible.missing_keys) | {k for k, *_ in incompatible.incorrect_shapes}
    return [k for k in model.state_dict() if k in left and not k.endswith("num_batches_tracked")]


def do_eval(cfg, device: str, *, allow_partial_weights: bool = False):
    model = build_eval_model(cfg, device, allow_partial_weights=allow_partial_weights)
    model = create_ddp_model(model, **({"device_ids": None} if device == "cpu" else {}))
    return do_test(cfg, model)


REPO_ROOT = os.path.dirname(os.path.abspath(__file__))


def resolve_output_dir(cfg, opts) -> None:
    """A relative ``train.output_dir`` written in the config (``./output/demo/apd``) is the config's run
    folder under the repository root, whatever folder ``train_net.py`` runs in (it was ``./output/`` of
    the current folder). One given on the command line stays relative to the current folder."""
    given = any(str(o).split("=", 1)[0].lstrip("+~") == "train.output_dir" for o in opts or ())
    if not given and cfg.train.output_dir and not os.path.isabs(cfg.train.output_dir):
        cfg.train.output_dir = os.path.normpath(os.path.join(REPO_ROOT, cfg.train.output_dir))


def check_run(args):
    """Every check that needs no model, run once before any process is spawned: returns the config.

    Raises :class:`apd.errors.UserError`. Writes nothing (:func:`claim_output_dir` takes the folder afterwards).
    """
    if args.overwrite and (args.resume or args.eval_only):
        raise ConfigValueError(f"--overwrite starts a new run; it cannot go with --{'resume' if args.resume else 'eval-only'}.")
    cfg = load_config(args.config_file, args.opts)
    resolve_output_dir(cfg, args.opts)
    resolve_device(cfg.train.get("device", "auto"))
    # Out-of-range numbers, each checked by its owner: one line naming the key and the allowed range.
    if args.eval_only:
        check_loaders(cfg, ("test",))
    else:
        check_schedule(cfg)
        check_optimizers(cfg)
        check_loaders(cfg)
    # --eval-only scores a distiller's student on the test split: no teacher file, no training split.
    splits = ("test",) if args.eval_only else ("train", "test")
    check_weights(cfg, eval_only=args.eval_only, resume=args.resume, need_teacher=not args.eval_only)
    if not args.eval_only:
        check_batch_divides(cfg, world_size=max(args.num_gpus, 1) * args.num_machines)
    check_datasets(cfg, splits)
    check_model_matches_data(cfg, splits)
    if args.machine_rank == 0:
        if args.eval_only:
            check_output_dir_free(cfg.train.output_dir)
        else:
            check_output_dir(cfg.train.output_dir, resume=args.resume, overwrite=args.overwrite)
    return cfg


def claim_output_dir(args, cfg) -> None:
    """Make this run the owner of ``train.output_dir`` (on the first machine), once every check passed.

    The lock (apd.engine.run_dir.lock_output_dir) is held by this, the launching process, until it exits;
    a second run into the folder is refused in :func:`check_run` or here. With ``--overwrite`` the old
    run is then moved aside (the path goes to ``args.previous_run`` and into log.txt).
    """
    args.previous_run = None
    if args.machine_rank != 0:
        return
    lock_output_dir(cfg.train.output_dir)
    if not args.eval_only:
        check_output_dir(cfg.train.output_dir, resume=args.resume, overwrite=args.overwrite)
        if args.overwrite:
            args.previous_run = move_previous_run(cfg.train.output_dir)


def main(args):
    """One training or evaluation process (the only one, or a worker spawned by ``launch``).

    SIGTERM/SIGINT stop it (apd.engine.preemption): log.txt says which signal at which iteration, and
    the process exits with status 128 + the signal's number. A spawned worker passes the signal to the
    launcher, which stops the other workers.
    """
    with stop_on_signals(notify_parent=multiprocessing.parent_process() is not None):
        try:
            return _main(args)
        except UserError as e:  # the user's mistake (apd.errors): one line, exit status 2, no traceback
            if stopping() is None:
                print(f"train_net.py: error: {e}", file=sys.stderr, flush=True)
                sys.exit(2)
            sys.exit(128 + stopping())
        except BaseException as e:  # noqa: B036
            if stopping() is None or isinstance(e, SystemExit):
                raise
            sys.exit(128 + stopping())  # RunStopped, or a peer's stop seen first (a closed connection)


def _log_stop(cfg, e: BaseException) -> None:
    """The line that says which signal stopped the run at which iteration, and what --resume will load."""
    iteration = getattr(e, "iteration", None)
    where = f"during iteration {iteration}" if iteration is not None else "before training started"
    tag = os.path.join(cfg.train.output_dir, "last_checkpoint")
    last = open(tag).read().strip() if os.path.isfile(tag) else None
    logger.warning(f"Stopped by {signal.Signals(stopping()).name} {where}; nothing was saved on the signal. " + (
        f"last_checkpoint names {last} (complete); --resume continues from it." if last else
        "No checkpoint was written yet; --resume starts from the beginning."))


def _main(args):
    cfg = load_config(args.config_file, args.opts)
    resolve_output_dir(cfg, args.opts)
    # --eval-only into a training folder: default_setup would overwrite the run's config.yaml.
    keep = args.eval_only and comm.is_main_process()
    run_config = read_run_config(cfg.train.output_dir) if args.resume and comm.is_main_process() else None
    with keep_run_config(cfg.train.output_dir) if keep else contextlib.nullcontext():
        default_setup(cfg, args)
    # Detectron2 only sets up its own loggers: without this, apd's INFO lines (the teacher's score,
    # skipped samples, ...) reach neither the console nor log.txt.
    setup_logger(cfg.train.output_dir, distributed_rank=comm.get_rank(), name="apd")
    if getattr(args, "previous_run", None):
        logger.info(f"--overwrite: the previous run in {cfg.train.output_dir} was moved to {args.previous_run}")
    device = resolve_device(cfg.train.get("device", "auto"))
    try:
        if args.eval_only:
            return do_eval(cfg, device, allow_partial_weights=args.allow_partial_weights)
        do_train(args, cfg, device)
    except UserError:  # a refused --resume (another model or teacher) leaves the run's config.yaml as it was
        restore_run_config(cfg.train.output_dir, run_config)
        raise
    except BaseException as e:  # noqa: B036
        if stopping() is not None:
            _log_stop(cfg, e)
        raise
    return None


def argument_parser():
    """Detectron2's parser with this project's usage text: LazyConfig ``key=value`` overrides."""
    parser = default_argument_parser(epilog=__doc__.split("\n\n")[1] + """

Overrides are key=value (Hydra's grammar, type-checked): lists as [a,b], null for None, and a value with
spaces, non-ASCII or special characters quoted inside the shell's quotes: "train.output_dir='my run'".
SIGTERM/SIGINT stop every process of a run (continue with --resume); a second run into an output_dir in
use is refused (docs/RELIABILITY.md §10).
""")
    for action in parser._actions:  # Detectron2's help text also describes yacs-style "KEY VALUE" pairs
        if action.dest == "opts":
            action.help = "config overrides, key=value (e.g. train.max_iter=1000 optimizer.lr=0.01)"
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start a new run in an output_dir that holds another run: the old run's files are moved "
        "into output_dir/previous_<UTC time>/ first",
    )
    parser.add_argument(
        "--allow-partial-weights",
        action="store_true",
        help="--eval-only: score weights that leave some model tensors at their random initial values "
        "(refused without this flag)",
    )
    return parser


def invoke_main() -> None:
    args = argument_parser().parse_args()
    try:
        cfg = check_run(args)
        claim_output_dir(args, cfg)
    except UserError as e:  # the user's mistake (apd.errors): one line, exit status 2, no traceback
        print(f"train_net.py: error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    with forward_stop_signals() as received:  # a SIGTERM/SIGINT here reaches every worker
        try:
            launch(
                main,
                args.num_gpus,
                num_machines=args.num_machines,
                machine_rank=args.machine_rank,
                dist_url=args.dist_url,
                args=(args,),
            )
        except (ProcessExitedException, ProcessRaisedException) as e:
            if received:
                print(f"train_net.py: stopped by {signal.Signals(received[0]).name}: every worker process has "
                      f"exited. {os.path.join(cfg.train.output_dir, 'last_checkpoint')} names the last complete "
                      "checkpoint; --resume continues from it.", file=sys.stderr, flush=True)
                sys.exit(128 + received[0])
            if getattr(e, "exit_code", None) == 2:  # a worker printed its one-line user error
                sys.exit(2)
            raise


if __name__ == "__main__":
    invoke_main()

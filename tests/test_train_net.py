"""train_net.py end to end on generated Cityscapes-format data (subprocesses, a few iterations each; runs that
check_run refuses before launch go through the script's entry point in-process)."""
import argparse
import importlib.util
import json
import os
import shutil
import sys

import numpy as np
import pytest
import torch
from detectron2.config import LazyConfig, instantiate

from helpers import TINY_TRAIN_OVERRIDES, run_script

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY = list(TINY_TRAIN_OVERRIDES)


def _run(args, root, check=True):
    return run_script("train_net.py", args, cwd=REPO, datasets_root=root, threads=2, check=check)


def _metrics(out):
    with open(os.path.join(out, "metrics.json")) as f:
        return [json.loads(line) for line in f if line.strip()]


def _invoke_main(monkeypatch, capsys, args):
    """``python train_net.py args`` for a run that check_run refuses (it raises before ``launch``): the
    script's entry point in this process; returns (exit status, stderr)."""
    train_net = _train_net_module()
    monkeypatch.setattr(sys, "argv", ["train_net.py", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        train_net.invoke_main()
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.slow
def test_train_evaluate_checkpoint_and_resume(demo_datasets_root, register_datasets_at, tmp_path, monkeypatch,
                                              capsys):
    out = str(tmp_path / "run")
    cfg = ["--config-file", "configs/demo/pspnet_r18_demo.py", f"train.output_dir={out}"]
    _run(cfg + TINY + ["train.max_iter=3", "train.eval_period=3", "train.checkpointer.period=2"],
         demo_datasets_root)
    metrics = _metrics(out)
    iters = [m["iteration"] for m in metrics if "total_loss" in m]
    assert iters == [0, 1, 2]
    last_train = [m for m in metrics if "total_loss" in m][-1]
    assert all(k in last_train for k in ("loss_sem_seg", "loss_aux", "lr", "time", "eta_seconds"))
    evals = [m for m in metrics if "sem_seg/mIoU" in m]
    assert len(evals) == 1 and 0.0 <= evals[0]["sem_seg/mIoU"] <= 100.0
    for f in ("model_0000001.pth", "model_final.pth", "last_checkpoint", "config.yaml", "log.txt"):
        assert os.path.exists(os.path.join(out, f)), f
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(out))

    # a new run into the same folder without --resume is refused, nothing is overwritten (the refusal is
    # check_run's, before any process is spawned: train_net's entry point in-process, no new interpreter)
    before = os.path.getmtime(os.path.join(out, "model_final.pth"))
    register_datasets_at(demo_datasets_root)
    code, stderr = _invoke_main(monkeypatch, capsys, cfg + TINY + ["train.max_iter=3"])
    assert code == 2 and "--resume" in stderr
    assert os.path.getmtime(os.path.join(out, "model_final.pth")) == before

    # --resume continues after the last checkpoint (iteration 2 -> starts at 3)
    _run(["--resume"] + cfg + TINY + ["train.max_iter=5", "train.eval_period=100"], demo_datasets_root)
    iters = [m["iteration"] for m in _metrics(out) if "total_loss" in m]
    assert iters == [0, 1, 2, 3, 4]


def test_missing_dataset_root_is_one_clear_line(tmp_path, register_datasets_at, monkeypatch, capsys):
    # The dataset names registered under a root that does not exist, as Detectron2 does at import from
    # $DETECTRON2_DATASETS; check_run refuses before launch, so train_net's entry point runs in-process.
    register_datasets_at(tmp_path / "nowhere")
    code, stderr = _invoke_main(monkeypatch, capsys, ["--config-file", "configs/demo/pspnet_r18_demo.py",
                                                      f"train.output_dir={tmp_path}/o"])
    assert code == 2
    last = stderr.strip().splitlines()[-1]
    assert "nowhere/cityscapes/leftImg8bit/train" in last and "prepare_cityscapes.py" in last
    assert "Traceback" not in stderr


def _train_net_module():
    spec = importlib.util.spec_from_file_location("train_net", os.path.join(REPO, "train_net.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _test_split_only(demo_root, dest):
    """The demo Cityscapes without its training split."""
    for sub in ("leftImg8bit/val", "gtFine/val"):
        shutil.copytree(os.path.join(demo_root, "cityscapes", sub), os.path.join(dest, "cityscapes", sub))
    return dest


APD_DEMO = "configs/demo/apd_pspnet_r18_demo.py"


@pytest.mark.slow
def test_eval_only_of_a_distiller_needs_neither_teacher_file_nor_training_split(
        demo_datasets_root, register_datasets_at, tmp_path):
    train_net = _train_net_module()
    teacher_file = tmp_path / "teacher.pth"
    torch.manual_seed(0)
    teacher = instantiate(LazyConfig.load("configs/demo/pspnet_r18_wide_demo.py").model)
    torch.save({"model": teacher.state_dict()}, teacher_file)
    cfg = LazyConfig.load(APD_DEMO)
    cfg.model.teacher_weights = str(teacher_file)
    torch.manual_seed(1)
    distiller = instantiate(cfg.model)
    with torch.no_grad():  # BN statistics that differ from a fresh model's
        for name, buf in distiller.student.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_()
    checkpoint = tmp_path / "model_final.pth"
    torch.save({"model": distiller.state_dict(), "iteration": 9}, checkpoint)
    assert any(k.startswith("distill_heads.") for k in distiller.state_dict())
    exported = tmp_path / "student.pth"
    torch.save({"model": distiller.student.state_dict()}, exported)

    # Oracle: the full distiller (teacher loaded) evaluated on the full demo data.
    register_datasets_at(demo_datasets_root)
    cfg.dataloader.test.num_workers = 0
    expected = train_net.do_test(cfg, distiller.eval())
    assert 0 < expected["sem_seg"]["mIoU"] < 100

    # No teacher file, no training split on disk.
    teacher_file.unlink()
    register_datasets_at(_test_split_only(demo_datasets_root, tmp_path / "data"))
    args = train_net.argument_parser().parse_args(
        ["--config-file", APD_DEMO, "--eval-only", f"model.teacher_weights={teacher_file}",
         f"train.init_checkpoint={checkpoint}", "dataloader.test.num_workers=0", f"train.output_dir={tmp_path / 'out'}"])
    cfg = train_net.check_run(args)  # passes: the test split and the checkpoint are all it needs
    for path in (checkpoint, exported):
        cfg.train.init_checkpoint = str(path)
        student = train_net.build_eval_model(cfg, "cpu")
        assert type(student) is type(distiller.student)
        np.testing.assert_equal(train_net.do_test(cfg, student), expected)  # NaN (absent class) == NaN
    # Training does need both (the negative control of the two checks skipped above).
    with pytest.raises(FileNotFoundError, match="Teacher weights not found"):
        train_net.check_run(argparse.Namespace(**{**vars(args), "eval_only": False}))
    with pytest.raises(FileNotFoundError, match="leftImg8bit/train"):
        train_net.check_run(argparse.Namespace(**{**vars(args), "eval_only": False,
                                                  "opts": args.opts[1:] + [f"model.teacher_weights={exported}"]}))


@pytest.mark.slow
def test_eval_model_of_an_rcnn_distiller_config_is_its_student_without_the_teacher(tmp_path):
    train_net = _train_net_module()
    cfg = LazyConfig.load("configs/COCO-InstanceSegmentation/apd_mask_rcnn_R34_to_R18_FPN_demo.py")
    cfg.model.teacher_weights = None
    torch.manual_seed(0)
    distiller = instantiate(cfg.model)
    torch.save({"model": distiller.state_dict()}, tmp_path / "model_final.pth")
    assert any(k.startswith("distill_heads.") for k in distiller.state_dict())
    cfg.model.teacher_weights = str(tmp_path / "no_such_teacher.pth")
    cfg.train.init_checkpoint = str(tmp_path / "model_final.pth")
    student = train_net.build_eval_model(cfg, "cpu")
    assert type(student) is type(distiller.student)
    torch.testing.assert_close(student.state_dict(), distiller.student.state_dict(), rtol=0, atol=0)


def test_overwrite_with_resume_or_eval_only_is_refused_before_anything_else(tmp_path):
    train_net = _train_net_module()
    for flag in ("resume", "eval_only"):
        args = argparse.Namespace(config_file=str(tmp_path / "not_read.py"), opts=[], overwrite=True, machine_rank=0,
                                  resume=flag == "resume", eval_only=flag == "eval_only")
        with pytest.raises(train_net.ConfigValueError, match="--overwrite starts a new run; it cannot go with --"):
            train_net.check_run(args)


def test_eval_model_from_weights_that_leave_tensors_uninitialised_is_refused_unless_allowed(tmp_path):
    """The demo PSPNet's own init_checkpoint is the ImageNet stand-in: the backbone only. --eval-only of it
    scored a random head (mIoU 0.68, exit status 0); now it is refused naming the count and first keys."""
    train_net = _train_net_module()
    cfg = LazyConfig.load("configs/demo/pspnet_r18_demo.py")
    cfg.train.init_checkpoint = os.path.join(REPO, "checkpoints/demo/standin_r18_quarter.pth")
    model = instantiate(cfg.model)
    head = [k for k in model.state_dict() if k.startswith("sem_seg_head.") and not k.endswith("num_batches_tracked")]
    with pytest.raises(train_net.CheckpointError) as refused:
        train_net.build_eval_model(cfg, "cpu")
    message = str(refused.value)
    every = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    assert f"leaves {len(head)} of {len(every)} model tensors uninitialised" in message
    assert f"(first: {', '.join(head[:5])})" in message and "--allow-partial-weights" in message
    # Asked for explicitly, it is built; the run's own complete checkpoint needs no flag.
    partial = train_net.build_eval_model(cfg, "cpu", allow_partial_weights=True)
    complete = tmp_path / "model_final.pth"
    torch.save({"model": partial.state_dict()}, complete)
    cfg.train.init_checkpoint = str(complete)
    torch.testing.assert_close(train_net.build_eval_model(cfg, "cpu").state_dict(), partial.state_dict())


def test_unknown_loss_key_in_a_config_file_is_one_line_and_exit_status_2(demo_datasets_root, tmp_path):
    # The distiller refuses the key when it is built (apd.errors.ConfigKeyError), after launch: train_net.py
    # catches apd.errors.UserError there too.
    config = tmp_path / "apd_unknown_loss_key.py"
    config.write_text(
        "from detectron2.config import LazyConfig\n\n"
        f"_cfg = LazyConfig.load({os.path.join(REPO, 'configs/demo/apd_pspnet_r18_demo.py')!r})\n"
        "model, dataloader, optimizer, lr_multiplier, train = (_cfg.model, _cfg.dataloader, _cfg.optimizer,\n"
        "                                                      _cfg.lr_multiplier, _cfg.train)\n"
        "adapter_optimizer = _cfg.adapter_optimizer\n"
        "model.loss_weights['loss_nope'] = 1.0\n"
    )
    out = tmp_path / "run"
    proc = _run(["--config-file", str(config), f"train.output_dir={out}", *TINY], demo_datasets_root, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("train_net.py: error: model.loss_weights has keys no distillation term produces: "
                           "['loss_nope']"), last


@pytest.mark.parametrize("override,message", [
    ("train.checkpointer.period=0", "train.checkpointer.period=0 is out of range: an integer ≥ 1."),
    ("train.log_period=0", "train.log_period=0 is out of range: an integer ≥ 1."),
    ("train.max_iter=0", "train.max_iter=0 is out of range: an integer ≥ 1."),
    ("train.max_iter=-1", "train.max_iter=-1 is out of range: an integer ≥ 1."),
    ("train.eval_period=-5", "train.eval_period=-5 is out of range: an integer ≥ 0 (0: evaluate at the end only)."),
    ("train.checkpointer.max_to_keep=0", "train.checkpointer.max_to_keep=0 is out of range: an integer ≥ 1, or null"),
    ("dataloader.train.mapper.augmentations.crop_size=[a,b]",
     "dataloader.train.mapper.augmentations.crop_size=['a', 'b'] is out of range: (height, width), two integers ≥ 1."),
    ("dataloader.train.mapper.augmentations.crop_size=[64,0]", "crop_size=[64, 0] is out of range"),
    ("dataloader.train.mapper.augmentations.crop_size=[64]", "crop_size=[64] is out of range"),
    ("optimizer.lr=-0.01", "optimizer.lr=-0.01 is out of range: a finite number ≥ 0."),
    ("optimizer.lr=inf", "optimizer.lr=inf is out of range: a finite number ≥ 0."),
    ("optimizer.momentum=1.5", "optimizer.momentum=1.5 is out of range: a number in [0, 1]."),
    ("optimizer.weight_decay=-1e-4", "optimizer.weight_decay=-0.0001 is out of range"),
    ("adapter_optimizer.lr=-1e-5", "adapter_optimizer.lr=-1e-05 is out of range: a finite number ≥ 0."),
    ("adapter_optimizer.betas=[0.9,1.0]", "adapter_optimizer.betas=[0.9, 1.0] is out of range: two numbers in [0, 1)."),
    ("dataloader.train.num_workers=-1", "dataloader.train.num_workers=-1 is out of range: an integer ≥ 0."),
    ("dataloader.test.num_workers=-2", "dataloader.test.num_workers=-2 is out of range: an integer ≥ 0."),
])
def test_out_of_range_numbers_are_one_line_naming_the_key_before_anything_is_written(
        override, message, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    code, stderr = _invoke_main(monkeypatch, capsys, ["--config-file", APD_DEMO, f"train.output_dir={out}", override])
    assert code == 2
    assert stderr.startswith("train_net.py: error: ") and message in stderr and len(stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_help_shows_key_value_overrides():
    text = _train_net_module().argument_parser().format_help()
    assert "key=value" in text and "train.output_dir='my run'" in text
    assert "MODEL.WEIGHTS" not in text and "PATH.KEY VALUE" not in text


def test_the_configs_relative_run_folder_is_under_the_repository_not_the_current_folder(tmp_path, monkeypatch):
    """--eval-only (or training) without train.output_dir wrote into ./output/ of whatever folder it ran in."""
    train_net = _train_net_module()
    monkeypatch.chdir(tmp_path)
    cfg = LazyConfig.load(os.path.join(REPO, APD_DEMO))
    assert cfg.train.output_dir == "./output/demo/apd"
    train_net.resolve_output_dir(cfg, ["train.max_iter=3"])
    assert cfg.train.output_dir == os.path.join(REPO, "output", "demo", "apd")
    cfg.train.output_dir = "runs/mine"  # given on the command line: relative to the current folder
    train_net.resolve_output_dir(cfg, ["train.output_dir=runs/mine"])
    assert cfg.train.output_dir == "runs/mine"

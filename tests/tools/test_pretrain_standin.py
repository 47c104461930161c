"""tools/pretrain_standin.py: the stand-in backbone goes through the ImageNet converter into the demo configs'
``train.init_checkpoint`` format, the committed weights fit the demo models, and the teacher's convergence check."""
import json
import os
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools"))
import pretrain_standin  # noqa: E402


def _demo_model(config):
    from detectron2.config import LazyConfig, instantiate

    cfg = LazyConfig.load(os.path.join(REPO, config))
    if "teacher_weights" in cfg.model:
        cfg.model.teacher_weights = None
    return instantiate(cfg.model)


def test_export_writes_the_backbone_like_an_imagenet_checkpoint(tmp_path):
    torch.manual_seed(0)
    seg = _demo_model("configs/demo/pspnet_r18_demo.py")
    final = tmp_path / "model_final.pth"
    torch.save({"model": seg.state_dict(), "iteration": 199}, final)  # a Segmentor run's final checkpoint
    dst = tmp_path / "standin.pth"
    pretrain_standin.export_backbone(str(final), "configs/demo/pspnet_r18_demo.py", str(dst))
    state = torch.load(dst, map_location="cpu")["model"]
    backbone = {k: v for k, v in seg.state_dict().items() if k.startswith("backbone.")}
    # every backbone tensor, no head; floats stored as fp16 (what loading casts back to fp32)
    assert set(state) == {k for k in backbone if not k.endswith("num_batches_tracked")} or set(state) == set(backbone)
    for k, v in state.items():
        ref = backbone[k]
        assert v.shape == ref.shape
        if ref.is_floating_point():
            assert v.dtype == torch.float16 and torch.equal(v, ref.half())
    # the distillation configs get the converter's --prefix student. version
    dst2 = tmp_path / "standin_student.pth"
    pretrain_standin.export_backbone(str(final), "configs/demo/apd_pspnet_r18_demo.py", str(dst2), prefix="student.")
    assert set(torch.load(dst2, map_location="cpu")["model"]) == {"student." + k for k in state}


def test_committed_standins_fit_the_demo_backbones():
    for config, name in [(c, f) for c, f in ((w[1], w[2]) for w in pretrain_standin.WIDTHS.values())] + [
            pretrain_standin.STUDENT_PREFIXED]:
        model = _demo_model(config)
        expected = {k: v.shape for k, v in model.state_dict().items()
                    if ".backbone." in "." + k and "teacher." not in k}
        state = torch.load(os.path.join(REPO, "checkpoints", "demo", name), map_location="cpu")["model"]
        assert set(state) <= set(expected) and len(state) >= len(expected) - sum(
            k.endswith("num_batches_tracked") for k in expected), name
        assert all(state[k].shape == expected[k] for k in state), name
    total = sum(os.path.getsize(os.path.join(REPO, "checkpoints", "demo", f))
                for f in os.listdir(os.path.join(REPO, "checkpoints", "demo")))
    assert total < 20 * 2**20  # the committed demo weights stay under 20 MB in all


def test_teacher_curve_and_convergence_check(tmp_path):
    rows = [{"iteration": 9, "total_loss": 2.0}, {"iteration": 49, "sem_seg/mIoU": 20.0},
            {"iteration": 99, "sem_seg/mIoU": 30.0}, {"iteration": 149, "sem_seg/mIoU": 34.5},
            {"iteration": 199, "sem_seg/mIoU": 35.0}]
    (tmp_path / "metrics.json").write_text("\n".join(json.dumps(r) for r in rows))
    curve, best, converged = pretrain_standin.teacher_curve(str(tmp_path), plateau=1.0)
    assert curve == [(49, 20.0), (99, 30.0), (149, 34.5), (199, 35.0)] and best == 35.0
    assert not converged  # 30.0 is one of the last three and 5 below the best
    with open(tmp_path / "metrics.json", "a") as f:
        f.write("\n" + json.dumps({"iteration": 249, "sem_seg/mIoU": 34.2}))
    assert pretrain_standin.teacher_curve(str(tmp_path), plateau=1.0)[2]


def test_schedule_check_compares_the_final_scores_of_two_schedules(tmp_path):
    short = tmp_path / "short"
    short.mkdir()
    rows = [{"iteration": 499, "sem_seg/mIoU": 36.0}, {"iteration": 1000, "sem_seg/mIoU": 42.5}]
    (short / "metrics.json").write_text("\n".join(json.dumps(r) for r in rows))
    check = pretrain_standin.schedule_check(str(short), [(999, 41.0), (2000, 48.7)], plateau=1.0)
    assert check["shorter_last_iteration"] == 1000 and check["last_iteration"] == 2000
    assert check["gain"] == pytest.approx(6.2) and not check["converged"]
    assert pretrain_standin.schedule_check(str(short), [(1999, 43.4)], plateau=1.0)["converged"]
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "metrics.json").write_text(json.dumps({"iteration": 9, "total_loss": 1.0}))
    with pytest.raises(FileNotFoundError, match="empty"):
        pretrain_standin.schedule_check(str(empty), [(1999, 48.7)], plateau=1.0)


def test_ade_benchmark_standins_learn_cityscapes_format_scenes_and_fit_the_ade_configs():
    """The ADE20K-format benchmark's stand-ins never see ADE20K-format data: their configs train on the
    Cityscapes-format set (a data set of its own, seed 100), and their export targets are the
    configs/demo/ade models (150 classes) with the same backbones."""
    from detectron2.config import LazyConfig

    bench = pretrain_standin.BENCHMARKS["ade"]
    assert bench["standin_data"]["args"][:2] == ["--datasets", "cityscapes"]
    assert bench["data"]["args"][:2] == ["--datasets", "ade20k"] and bench["dest"] == "checkpoints/demo/ade"
    for width, (standin, target, _) in bench["widths"].items():
        cfg = LazyConfig.load(os.path.join(REPO, standin))
        assert cfg.dataloader.train.dataset.names == "cityscapes_fine_sem_seg_train", width
        assert cfg.train.init_checkpoint == "", width
        tgt = LazyConfig.load(os.path.join(REPO, target)).model
        assert tgt.sem_seg_head.num_classes == 150 and tgt.backbone == cfg.model.backbone, width
    assert pretrain_standin.BENCHMARKS["cityscapes"]["widths"] is pretrain_standin.WIDTHS


def test_data_ready_counts_the_val_labels(tmp_path):
    spec = dict(args=[], val_dir="cityscapes/gtFine/val", val_suffix="_labelTrainIds.png", num_val=2)
    assert not pretrain_standin.data_ready(str(tmp_path), spec)
    city = tmp_path / "cityscapes" / "gtFine" / "val" / "demo"
    city.mkdir(parents=True)
    (city / "a_gtFine_labelTrainIds.png").write_bytes(b"")
    (city / "a_gtFine_labelIds.png").write_bytes(b"")
    assert not pretrain_standin.data_ready(str(tmp_path), spec)
    (city / "b_gtFine_labelTrainIds.png").write_bytes(b"")
    assert pretrain_standin.data_ready(str(tmp_path), spec)


def test_committed_ade_checkpoints_fit_the_ade_benchmark_models():
    """The ADE20K-format benchmark's committed stand-ins fit its student configs, and its teacher loads into
    its teacher config (150 classes) with every key."""
    bench = pretrain_standin.BENCHMARKS["ade"]
    dest = os.path.join(REPO, bench["dest"])
    quarter = bench["widths"]["quarter"]
    for config, name in [(quarter[1], quarter[2]), bench["student_prefixed"]]:
        model = _demo_model(config)
        expected = {k: v.shape for k, v in model.state_dict().items()
                    if ".backbone." in "." + k and "teacher." not in k}
        state = torch.load(os.path.join(dest, name), map_location="cpu")["model"]
        assert set(state) <= set(expected) and len(state) >= len(expected) - sum(
            k.endswith("num_batches_tracked") for k in expected), name
        assert all(state[k].shape == expected[k] for k in state), name
    teacher = _demo_model(bench["teacher"])
    state = torch.load(os.path.join(dest, pretrain_standin.TEACHER_FILE), map_location="cpu")["model"]
    teacher.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    assert teacher.sem_seg_head.num_classes == 150

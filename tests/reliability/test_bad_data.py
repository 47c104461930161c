"""Reliability §3: bad training data stops a run naming the file, or is skipped and counted; crops
without a valid pixel or with a single class give finite losses.

The mapper's own checks (truncated/corrupt image or label, label size, out-of-range ids, skip counter)
are unit-tested in tests/data/test_dataset_mapper.py; here they go through the resumable loader (and
its worker processes) and train_net.py, whose log must show what was skipped.
"""
import glob
import os
import re
import shutil

import numpy as np
import pytest
import torch
from detectron2.data import transforms as T
from PIL import Image

from apd.data.dataset_mapper import BadSampleError, SemSegDatasetMapper
from apd.data.samplers import ResumableTrainLoader

from reliability_helpers import APD_DEMO, TINY, read_metrics


def _cityscapes_copy(demo_root, dest):
    shutil.copytree(os.path.join(demo_root, "cityscapes"), os.path.join(dest, "cityscapes"))
    images = sorted(glob.glob(os.path.join(dest, "cityscapes/leftImg8bit/train/*/*.png")))
    labels = sorted(glob.glob(os.path.join(dest, "cityscapes/gtFine/train/*/*_labelTrainIds.png")))
    assert len(images) == len(labels) == 3
    return images, labels


def _truncate(path):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


def _put_label_id(path, value):
    label = np.array(Image.open(path))
    label[:8, :8] = value
    Image.fromarray(label).save(path)


@pytest.mark.slow
def test_corrupt_training_image_stops_the_run_naming_the_file(demo_datasets_root, teacher_weights, tmp_path,
                                                              run_train_net):
    images, _ = _cityscapes_copy(demo_datasets_root, tmp_path / "data")
    for path in images:
        _truncate(path)
    out = tmp_path / "run"
    proc = run_train_net(["--config-file", APD_DEMO, f"train.output_dir={out}",
                          f"model.teacher_weights={teacher_weights}",
                          "train.max_iter=2", "train.eval_teacher=False", *TINY], tmp_path / "data", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]  # a UserError: one line
    named = re.findall(r"train_net\.py: error: Cannot read image (\S+\.png)", proc.stderr)
    assert named and named[0] in images, proc.stderr[-3000:]
    assert not [f for f in os.listdir(out) if f.endswith(".pth")]


@pytest.mark.slow
def test_skipped_bad_samples_are_counted_in_the_log(demo_datasets_root, teacher_weights, tmp_path, run_train_net):
    images, labels = _cityscapes_copy(demo_datasets_root, tmp_path / "data")
    _truncate(images[0])
    _put_label_id(labels[1], 19)  # 19 classes: ids 0..18 and 255 are valid
    out = tmp_path / "run"
    run_train_net(["--config-file", APD_DEMO, f"train.output_dir={out}",
                   f"model.teacher_weights={teacher_weights}",
                   "train.max_iter=2", "train.eval_teacher=False", "dataloader.train.mapper.skip_bad_samples=True",
                   *TINY], tmp_path / "data")
    log = (out / "log.txt").read_text()
    # Two iterations of batch 2 read positions 0..3: every image of the first epoch, the bad ones included.
    skipped = re.findall(r"Skipping bad training sample \((\d+) so far\): (.*)", log)
    assert [n for n, _ in skipped][:2] == ["1", "2"]
    messages = "\n".join(m for _, m in skipped)
    assert f"Cannot read image {images[0]}" in messages and f"Label {labels[1]} has ids [19]" in messages
    records = [m for m in read_metrics(out) if "total_loss" in m]
    assert [m["iteration"] for m in records] == [0, 1]
    assert records[-1]["data/skipped_samples"] >= 2
    assert all(np.isfinite(m["total_loss"]) for m in records)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_loader_error_names_the_file_from_worker_processes(tmp_path, num_workers):
    image = np.random.RandomState(0).randint(0, 256, (16, 24, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    _truncate(tmp_path / "a.png")
    Image.fromarray(np.zeros((16, 24), dtype=np.uint8)).save(tmp_path / "a_label.png")
    record = {"file_name": str(tmp_path / "a.png"), "sem_seg_file_name": str(tmp_path / "a_label.png")}
    mapper = SemSegDatasetMapper(is_train=True, augmentations=[], num_classes=19)
    loader = ResumableTrainLoader([record], mapper, 1, num_workers=num_workers, seed=0)
    with pytest.raises(BadSampleError) as err:  # re-raised in the main process, same type and message
        next(iter(loader))
    assert f"Cannot read image {tmp_path / 'a.png'}" in str(err.value)


def _crop_batch(tmp_path, labels):
    """Mapped training samples (random 64×128 crops of 128×256 images) with the given label maps."""
    mapper = SemSegDatasetMapper(is_train=True, augmentations=[T.RandomCrop("absolute", (64, 128))],
                                 num_classes=19)
    batch = []
    for i, label in enumerate(labels):
        image = np.random.RandomState(i).randint(0, 256, (128, 256, 3), dtype=np.uint8)
        Image.fromarray(image).save(tmp_path / f"{i}.png")
        Image.fromarray(label).save(tmp_path / f"{i}_label.png")
        batch.append(mapper({"file_name": str(tmp_path / f"{i}.png"),
                             "sem_seg_file_name": str(tmp_path / f"{i}_label.png")}))
    return batch


@pytest.mark.parametrize("case", ["no_valid_pixel", "one_class_only"])
def test_crop_without_valid_pixel_or_object_gives_finite_losses(tmp_path, apd_demo_distiller, case):
    model, _ = apd_demo_distiller
    ignore = np.full((128, 256), 255, dtype=np.uint8)
    road = np.zeros((128, 256), dtype=np.uint8)  # class 0 only: no other object anywhere in the crop
    labels = [ignore, ignore] if case == "no_valid_pixel" else [road, ignore]
    batch = _crop_batch(tmp_path, labels)
    losses = model(batch)
    assert set(losses) == {"loss_sem_seg", "loss_aux", "loss_kd", "loss_apd", "loss_pa", "loss_adapt"}
    for name, value in losses.items():
        assert torch.isfinite(value), (name, value)
    if case == "no_valid_pixel":
        # Nothing to learn from the labels: every label-driven term is exactly 0; KD (labels unused) is not.
        for name in ("loss_sem_seg", "loss_aux", "loss_apd", "loss_pa", "loss_adapt"):
            assert losses[name].item() == 0.0, name
        assert losses["loss_kd"].item() > 0
    sum(losses.values()).backward()
    grads = [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None]
    assert grads and [n for n, g in grads if not torch.isfinite(g).all()] == []


@pytest.mark.slow  # one train_net.py run, ~20 s
def test_cityscapes_protocol_scores_the_teacher_before_step_0_and_the_student_after(
        demo_datasets_root, teacher_weights, tmp_path, run_train_net, metrics):
    """The official Cityscapes evaluator (cityscapesscripts) end to end in train_net.py: before step 0
    for the teacher, at the end for the student, with the per-class table in log.txt. With NumPy 2.4
    this run died inside cityscapesscripts (np.in1d) after the teacher's inference pass."""
    out = tmp_path / "run"
    run_train_net(["--config-file", APD_DEMO, f"train.output_dir={out}", f"model.teacher_weights={teacher_weights}",
                   "train.max_iter=1", "train.eval_teacher=True",
                   "dataloader.evaluator._target_=apd.evaluation.CityscapesSemSegEvaluator", *TINY],
                  demo_datasets_root)
    log = open(os.path.join(out, "log.txt")).read()
    teacher = log.index("Teacher score before distillation: teacher/sem_seg/mIoU=")
    assert teacher < log.index(" iter: 0 ")
    assert log.count("Per-class results:") == 2 and "| road " in log
    first = metrics(out)[0]
    assert {"teacher/sem_seg/mIoU", "teacher/sem_seg/iIoU", "teacher/sem_seg/IoU-road"} <= set(first)
    assert all(0.0 <= first[k] <= 100.0 for k in ("teacher/sem_seg/mIoU", "teacher/sem_seg/iIoU"))

"""Reliability §6: config mistakes stop train_net.py with one line naming the keys, before heavy work.

Unit tests of the key checks on configs/common/optim.py are in tests/test_config_checks.py, and the
distiller's own student/teacher checks in tests/modeling/meta_arch/test_semantic_seg_distiller.py.
"""
import pytest
from detectron2.config import LazyConfig

from apd import launch_checks as checks  # the checks train_net.py runs
from apd.config import (
    ConfigKeyError, ConfigValueError, check_overrides, load_config,
)
from apd.launch_checks import check_batch_divides
from apd.engine.resume import check_weights

from reliability_helpers import APD_DEMO, TINY

STUDENT_DEMO = "configs/demo/pspnet_r18_demo.py"
DATASET = "len(MetadataCatalog.get('cityscapes_fine_sem_seg_train').stuff_classes)"




RCNN_APD_DEMO = "configs/COCO-InstanceSegmentation/apd_mask_rcnn_R34_to_R18_FPN_demo.py"
RCNN_DEMO = "configs/COCO-InstanceSegmentation/mask_rcnn_R_18_FPN_demo.py"


def _cfg(path, **values):
    cfg = LazyConfig.load(path)
    for key, value in values.items():
        LazyConfig.apply_overrides(cfg, [f"{key}={value}"])
    return cfg


def test_unknown_key_is_one_line_before_any_setup(demo_datasets_root, tmp_path, run_train_net):
    out = tmp_path / "run"
    proc = run_train_net(["--config-file", APD_DEMO, f"train.output_dir={out}", "train.max_itr=5", *TINY],
                         demo_datasets_root, check=False)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("train_net.py: error: Config key 'train.max_itr' does not exist")
    assert "Traceback" not in proc.stderr
    assert not out.exists()  # nothing was set up, not even the output folder


def test_unknown_key_inside_a_model_node_lists_the_valid_ones():
    with pytest.raises(ConfigKeyError) as err:
        load_config(APD_DEMO, ["model.student.sem_seg_head.num_clases=19"])
    msg = str(err.value)
    assert "'model.student.sem_seg_head.num_clases' does not exist" in msg and "'num_classes'" in msg


@pytest.mark.parametrize(
    "path, overrides, named",
    [
        # the data's mapper disagrees with the model (the test mapper follows the train one)
        (APD_DEMO, {"dataloader.train.mapper.num_classes": 18},
         ["model.student.sem_seg_head.num_classes=19", "dataloader.train.mapper.num_classes=18",
          "dataloader.test.mapper.num_classes=18"]),
        # student, teacher and mappers agree with each other, not with the dataset
        (APD_DEMO, {"model.student.sem_seg_head.num_classes": 20, "model.teacher.sem_seg_head.num_classes": 20,
                    "dataloader.train.mapper.num_classes": 20},
         ["model.student.sem_seg_head.num_classes=20", f"{DATASET}=19"]),
        # the teacher alone
        (APD_DEMO, {"model.teacher.sem_seg_head.num_classes": 18},
         ["model.student.sem_seg_head.num_classes=19", "model.teacher.sem_seg_head.num_classes=18"]),
        # a plain segmentor (no student/teacher)
        (STUDENT_DEMO, {"model.sem_seg_head.num_classes": 21},
         ["model.sem_seg_head.num_classes=21", "dataloader.train.mapper.num_classes=19", f"{DATASET}=19"]),
        # R-CNNs: the distiller's student, and a plain Mask R-CNN, against the COCO thing classes
        (RCNN_APD_DEMO, {"model.student.roi_heads.num_classes": 81},
         ["model.student.roi_heads.num_classes=81", "model.teacher.roi_heads.num_classes=80",
          "len(MetadataCatalog.get('coco_2017_train').thing_classes)=80"]),
        (RCNN_DEMO, {"model.roi_heads.num_classes": 79},
         ["model.roi_heads.num_classes=79", "len(MetadataCatalog.get('coco_2017_val').thing_classes)=80"]),
    ],
)
def test_class_count_mismatch_names_both_keys(path, overrides, named):
    with pytest.raises(checks.ConfigMismatchError) as err:
        checks.check_model_matches_data(_cfg(path, **overrides))
    msg = str(err.value)
    assert msg.startswith("Class counts disagree: ")
    for key in named:
        assert key in msg, (key, msg)


@pytest.mark.parametrize(
    "overrides, named",
    [
        ({"dataloader.train.mapper.image_format": "BGR"},
         ["dataloader.train.mapper.image_format=BGR", "model.student.input_format=RGB"]),
        ({"model.teacher.input_format": "L"}, ["model.teacher.input_format=L", "model.student.input_format=RGB"]),
    ],
)
def test_pixel_format_mismatch_names_both_keys(overrides, named):
    with pytest.raises(checks.ConfigMismatchError) as err:
        checks.check_model_matches_data(_cfg(APD_DEMO, **overrides))
    for key in named:
        assert key in str(err.value)


def test_consistent_configs_pass():
    checks.check_model_matches_data(_cfg(RCNN_APD_DEMO))
    checks.check_model_matches_data(_cfg(RCNN_DEMO))
    checks.check_model_matches_data(_cfg(APD_DEMO))
    checks.check_model_matches_data(_cfg(STUDENT_DEMO))
    # A BGR teacher under an RGB student is converted by the distiller, not an error.
    checks.check_model_matches_data(_cfg(APD_DEMO, **{"model.teacher.input_format": "BGR"}))


def test_train_net_stops_on_class_count_mismatch_before_building_the_model(
        demo_datasets_root, teacher_weights, tmp_path, run_train_net):
    out = tmp_path / "run"
    proc = run_train_net(["--config-file", APD_DEMO, f"train.output_dir={out}",
                          f"model.teacher_weights={teacher_weights}",
                          "dataloader.train.mapper.num_classes=18", *TINY], demo_datasets_root, check=False)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("train_net.py: error: Class counts disagree: model.student.sem_seg_head.num_classes=19")
    assert "dataloader.train.mapper.num_classes=18" in last and "Traceback" not in proc.stderr
    # Checked before any process is spawned: nothing is built or written, not even log.txt.
    assert not out.exists()


# ------------------------------------------------------------------------- values of the wrong type
@pytest.fixture(scope="module")
def apd_demo_cfg():
    return LazyConfig.load(APD_DEMO)


@pytest.mark.parametrize(
    "override, message",
    [
        # words for booleans: the truthy string "no" would invert the user's intent
        ("dataloader.train.mapper.skip_bad_samples=no", "is a word, not a boolean"),
        ("model.save_teacher=no", "is a word, not a boolean"),
        ("train.eval_teacher=off", "is a word, not a boolean"),
        ("train.amp.enabled=yes", "is a word, not a boolean"),
        ("train.amp.enabled=1", "expected true or false, got 1"),
        ("train.compile=yes", "is a word, not a boolean"),
        ("train.max_iter=abc", "expected an integer, got 'abc'"),
        ("train.max_iter=1e3", "expected an integer, got 1000.0"),
        ("optimizer.lr=fast", "expected a number, got 'fast'"),
        ("dataloader.train.mapper.augmentations.crop_size=64", "expected a list or null, got 64"),
        ("train.output_dir=5", "quote it to mean the string"),
        # the value replaced is None: the signature's annotation (Optional[Mapping]) decides
        ("model.student.sliding_window=yes", "expected a mapping or null, got 'yes'"),
        ("model.student.sliding_window=None", 'is the string "None"; write model.student.sliding_window=null'),
        ("train.max_iter=1,2", "is a sweep"),
    ],
)
def test_override_of_the_wrong_type_is_one_line_naming_the_key(apd_demo_cfg, override, message):
    with pytest.raises(ConfigValueError) as err:
        check_overrides(apd_demo_cfg, [override])  # what load_config runs before applying them
    msg = str(err.value)
    assert message in msg and override in msg and "\n" not in msg, msg
    if "a word" in message:
        key = override.split("=")[0]
        assert f"write {key}=true or {key}=false" in msg


def test_overrides_of_the_right_type_pass():
    cfg = load_config(APD_DEMO, [
        "dataloader.train.mapper.skip_bad_samples=true", "model.save_teacher=True", "train.eval_teacher=FALSE",
        "train.amp.enabled=false", "train.max_iter=7", "optimizer.lr=1", "model.loss_weights.loss_kd=0.5",
        "dataloader.train.mapper.augmentations.crop_size=[64,128]", "dataloader.train.mapper.augmentations.rotate=null",
        "model.student.sliding_window={crop_size:[64,64]}", "train.output_dir='5'", "model.teacher_weights=null",
        "train.init_checkpoint=''", "model.student.backbone.norm=BN", "train.compile={backend:aot_eager}",
    ])
    assert cfg.dataloader.train.mapper.skip_bad_samples is True and cfg.model.save_teacher is True
    assert cfg.train.eval_teacher is False and cfg.train.max_iter == 7 and cfg.train.output_dir == "5"
    assert cfg.model.student.sliding_window.crop_size == [64, 64] and cfg.model.teacher_weights is None


@pytest.mark.slow
def test_word_boolean_stops_train_net_before_anything_is_written(demo_datasets_root, tmp_path, run_train_net):
    out = tmp_path / "run"
    proc = run_train_net(["--config-file", APD_DEMO, f"train.output_dir={out}", "model.save_teacher=no", *TINY],
                         demo_datasets_root, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "train_net.py: error: Config override 'model.save_teacher=no' is a word, not a boolean (it would be the "
        "truthy string 'no'); write model.save_teacher=true or model.save_teacher=false.")
    assert not out.exists()


# ---------------------------------------------------------------------------------------- weights
def test_eval_only_without_weights_and_missing_checkpoint_paths_are_refused(tmp_path):
    cfg = _cfg(STUDENT_DEMO)
    cfg.train.output_dir = str(tmp_path / "run")
    cfg.train.init_checkpoint = ""
    with pytest.raises(ConfigValueError, match="--eval-only needs weights: train.init_checkpoint is empty"):
        check_weights(cfg, eval_only=True)
    check_weights(cfg, eval_only=False)  # training from the configs' own init is fine
    cfg.train.init_checkpoint = str(tmp_path / "modle_final.pth")
    for eval_only in (True, False):
        with pytest.raises(FileNotFoundError, match="Checkpoint not found: '.*modle_final.pth' "
                                                    r"\(config key train.init_checkpoint\)"):
            check_weights(cfg, eval_only=eval_only)
    with pytest.raises(FileNotFoundError, match='train.init_checkpoint=""'):
        check_weights(cfg, eval_only=False)  # training: says how to start from random weights instead
    # --resume from a checkpoint in the folder does not load init_checkpoint: no reason to refuse
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last_checkpoint").write_text("model_0000001.pth")
    check_weights(cfg, eval_only=False, resume=True)
    cfg.train.init_checkpoint = "https://example.com/model.pth"  # remote: left to the checkpointer
    check_weights(cfg, eval_only=False)

    apd = _cfg(APD_DEMO, **{"model.teacher_weights": str(tmp_path / "techer.pth")})
    with pytest.raises(FileNotFoundError, match=r"Teacher weights not found: '.*techer.pth' \(config key "
                                                r"model.teacher_weights\)"):
        check_weights(apd, eval_only=False)
    check_weights(apd, eval_only=False, need_teacher=False)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_mistyped_checkpoint_path_is_one_line_and_status_2(mode, demo_datasets_root, tmp_path, run_train_net):
    out = tmp_path / "run"
    missing = tmp_path / "modle_final.pth"
    args = ["--config-file", STUDENT_DEMO, f"train.output_dir={out}", f"train.init_checkpoint={missing}", *TINY]
    proc = run_train_net((["--eval-only"] if mode == "eval" else []) + args, demo_datasets_root, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"train_net.py: error: Checkpoint not found: '{missing}' (config key train.init_checkpoint).")
    # training says how to train from random weights instead; an evaluation needs real weights
    assert ('train.init_checkpoint=""' in last) == (mode == "train")
    assert not out.exists()


@pytest.mark.slow
def test_eval_only_without_weights_is_refused(demo_datasets_root, tmp_path, run_train_net):
    proc = run_train_net(["--eval-only", "--config-file", STUDENT_DEMO, f"train.output_dir={tmp_path / 'run'}",
                          "train.init_checkpoint=", *TINY], demo_datasets_root, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("train_net.py: error: --eval-only needs weights")


def test_batch_that_the_processes_cannot_share_is_refused_before_spawning():
    cfg = _cfg(STUDENT_DEMO)
    for total, world in ((3, 2), (1, 2), (0, 1), (6, 4)):
        cfg.dataloader.train.total_batch_size = total
        with pytest.raises(ConfigValueError, match=rf"total_batch_size={total} must be a positive multiple of "
                                                   rf"the number of processes \({world} ="):
            check_batch_divides(cfg, world_size=world)
    for total, world in ((2, 2), (8, 8), (1, 1), (12, 4)):
        cfg.dataloader.train.total_batch_size = total
        check_batch_divides(cfg, world_size=world)


@pytest.mark.slow
def test_two_processes_with_an_odd_batch_is_one_line_and_nothing_written(demo_datasets_root, tmp_path,
                                                                         run_train_net):
    out = tmp_path / "run"
    proc = run_train_net(["--num-gpus", "2", "--dist-url", "auto", "--config-file", STUDENT_DEMO,
                          f"train.output_dir={out}", *TINY, "dataloader.train.total_batch_size=3"],
                         demo_datasets_root, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "total_batch_size=3 must be a positive multiple of the number of processes (2" in proc.stderr
    assert not out.exists()

"""Reliability §6: config mistakes stop train_net.py with one line naming the keys, before heavy work.

Unit tests of the key checks on configs/common/optim.py are in tests/test_config_checks.py, and the
distiller's own student/teacher checks in tests/modeling/meta_arch/test_semantic_seg_distiller.py.
"""
import importlib.util
import os

import pytest
from detectron2.config import LazyConfig

from apd.config import ConfigKeyError, load_config

from reliability_helpers import APD_DEMO, REPO, TINY

STUDENT_DEMO = "configs/demo/pspnet_r18_demo.py"
DATASET = "len(MetadataCatalog.get('cityscapes_fine_sem_seg_train').stuff_classes)"


@pytest.fixture(scope="module")
def train_net():
    spec = importlib.util.spec_from_file_location("train_net", os.path.join(REPO, "train_net.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    ],
)
def test_class_count_mismatch_names_both_keys(train_net, path, overrides, named):
    with pytest.raises(train_net.ConfigMismatchError) as err:
        train_net.check_model_matches_data(_cfg(path, **overrides))
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
def test_pixel_format_mismatch_names_both_keys(train_net, overrides, named):
    with pytest.raises(train_net.ConfigMismatchError) as err:
        train_net.check_model_matches_data(_cfg(APD_DEMO, **overrides))
    for key in named:
        assert key in str(err.value)


def test_consistent_configs_pass(train_net):
    train_net.check_model_matches_data(_cfg(APD_DEMO))
    train_net.check_model_matches_data(_cfg(STUDENT_DEMO))
    # A BGR teacher under an RGB student is converted by the distiller, not an error.
    train_net.check_model_matches_data(_cfg(APD_DEMO, **{"model.teacher.input_format": "BGR"}))


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
    log = (out / "log.txt").read_text()
    assert "Model: SemanticSegDistiller" not in log and "Loaded teacher weights" not in log

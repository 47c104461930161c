"""tools/predict.py: the student of a run on a folder of images and a short video, with each kind of
weights file (distiller checkpoint, exported student checkpoint, TorchScript).

The student's classifier is set to predict one known class everywhere (weights 0, bias +10 for that
class), so the label PNGs have a known content whichever weights file carries it.
"""
import importlib.util
import os

import cv2
import numpy as np
import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
APD_DEMO = "configs/demo/apd_pspnet_r18_demo.py"
PERSON = 11  # Cityscapes trainId of "person" ...
PERSON_LABEL_ID = 24  # ... and its labelId in the official label table (cityscapesscripts' labels.py)
NO_TEACHER = "model.teacher_weights=/nonexistent/teacher.pth"  # building the teacher would fail
HEIGHT, WIDTH = 40, 72


def load_tool(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def predict_tool():
    return load_tool("predict")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """{kind: path} of the same student (predicting PERSON everywhere) as a distiller training
    checkpoint, the exported student checkpoint and the TorchScript export."""
    tmp = tmp_path_factory.mktemp("predict_weights")
    cfg = LazyConfig.load(os.path.join(ROOT, APD_DEMO))
    cfg.model.teacher_weights = None
    torch.manual_seed(0)
    distiller = instantiate(cfg.model)
    classifier = distiller.student.sem_seg_head.classifier
    with torch.no_grad():
        classifier.weight.zero_()
        classifier.bias.zero_()
        classifier.bias[PERSON] = 10.0
    checkpoint = str(tmp / "model_final.pth")
    torch.save({"model": distiller.state_dict(), "iteration": 5}, checkpoint)
    export = str(tmp / "export")
    rc = load_tool("export_student").main([
        "--config-file", APD_DEMO, "--checkpoint", checkpoint, "--output-dir", export,
        "--format", "checkpoint,torchscript", "--height", "64", "--width", "128", NO_TEACHER,
    ])
    assert rc == 0
    return {
        "distiller": checkpoint,
        "student": os.path.join(export, "model_student.pth"),
        "torchscript": os.path.join(export, "student.ts"),
    }


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A folder of three generated images (two PNG, one JPEG) and a 4-frame mp4v video."""
    tmp = tmp_path_factory.mktemp("predict_inputs")
    rng = np.random.default_rng(0)
    folder = tmp / "images"
    folder.mkdir()
    for name in ("a.png", "b.png", "c.jpg"):
        Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    video = str(tmp / "clip.mp4")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for _ in range(4):
        writer.write(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8))
    writer.release()
    return str(folder), video


def read_png(path):
    return np.asarray(Image.open(path))


def count_frames(path):
    capture = cv2.VideoCapture(path)
    n = 0
    while capture.read()[0]:
        n += 1
    capture.release()
    return n


@pytest.mark.parametrize("kind", ["distiller", "student", "torchscript"])
def test_predict_images_and_video_with_each_kind_of_weights(predict_tool, weights, inputs, tmp_path, kind, capsys):
    folder, video = inputs
    out = str(tmp_path / "out")
    rc = predict_tool.main([
        "--config-file", APD_DEMO, "--weights", weights[kind], "--input", folder,
        "--video-input", video, "--video-labels", "--output", out, NO_TEACHER,
    ])
    assert rc == 0, capsys.readouterr().err
    expected_kind = {"distiller": "distiller checkpoint", "student": "student checkpoint",
                     "torchscript": "TorchScript"}[kind]
    assert f"({expected_kind})" in capsys.readouterr().out
    for name in ("a", "b", "c"):
        train_ids = read_png(os.path.join(out, f"{name}_trainIds.png"))
        assert train_ids.shape == (HEIGHT, WIDTH) and train_ids.dtype == np.uint8
        assert np.all(train_ids == PERSON)
        label_ids = read_png(os.path.join(out, f"{name}_labelIds.png"))
        assert label_ids[HEIGHT // 2, WIDTH // 3] == PERSON_LABEL_ID
        drawing = read_png(os.path.join(out, f"{name}.png"))
        assert drawing.shape == (HEIGHT, WIDTH, 3)
    assert not os.path.exists(os.path.join(out, "notes.png"))
    assert count_frames(os.path.join(out, "clip.mp4")) == 4
    frames = sorted(os.listdir(os.path.join(out, "clip")))
    assert frames == [f"{i:06d}_{ids}.png" for i in range(4) for ids in ("labelIds", "trainIds")]
    assert np.all(read_png(os.path.join(out, "clip", "000003_trainIds.png")) == PERSON)


def test_overlay_blends_the_dataset_colours_over_the_image(predict_tool, weights, inputs, tmp_path):
    from cityscapesscripts.helpers.labels import trainId2label

    folder, _ = inputs
    out = str(tmp_path / "out")
    image = os.path.join(folder, "a.png")
    assert predict_tool.main(["--config-file", APD_DEMO, "--weights", weights["student"], "--input", image,
                              "--output", out, "--opacity", "1.0"]) == 0
    person_rgb = np.array(trainId2label[PERSON].color, dtype=np.uint8)
    assert np.all(read_png(os.path.join(out, "a.png")) == person_rgb)
    assert predict_tool.main(["--config-file", APD_DEMO, "--weights", weights["student"], "--input", image,
                              "--output", out, "--opacity", "0.0"]) == 0
    np.testing.assert_array_equal(read_png(os.path.join(out, "a.png")), read_png(image))


def test_expand_inputs_files_folders_globs_and_errors(predict_tool, inputs, tmp_path):
    folder, _ = inputs
    a, b, c = (os.path.join(folder, n) for n in ("a.png", "b.png", "c.jpg"))
    assert predict_tool.expand_inputs([folder]) == [a, b, c]
    assert predict_tool.expand_inputs([os.path.join(folder, "*.png"), c]) == [a, b, c]
    with pytest.raises(FileNotFoundError, match="missing.png"):
        predict_tool.expand_inputs([str(tmp_path / "missing.png")])
    with pytest.raises(FileNotFoundError, match="holds no image"):
        predict_tool.expand_inputs([str(tmp_path)])
    assert predict_tool.unique_names(["x/a.png", "y/a.jpg", "a_1.png", "z/a.png"]) == ["a", "a_1", "a_1_1", "a_2"]


def test_weights_kinds_are_told_apart(predict_tool, weights):
    assert predict_tool.is_torchscript(weights["torchscript"])
    assert not predict_tool.is_torchscript(weights["student"])
    assert not predict_tool.is_torchscript(weights["distiller"])


def test_label_id_table_only_for_cityscapes_classes(predict_tool):
    from detectron2.data import MetadataCatalog

    names = MetadataCatalog.get("cityscapes_fine_sem_seg_val").stuff_classes
    table = predict_tool.cityscapes_label_ids(19, names)
    assert table[0] == 7 and table[PERSON] == PERSON_LABEL_ID and table[18] == 33  # road, person, bicycle
    assert predict_tool.cityscapes_label_ids(19, [f"class{i}" for i in range(19)]) is None
    assert predict_tool.cityscapes_label_ids(150, names) is None


def test_errors_name_the_problem(predict_tool, weights, inputs, tmp_path, capsys):
    folder, _ = inputs
    out = str(tmp_path / "out")
    assert predict_tool.main(["--config-file", APD_DEMO, "--weights", str(tmp_path / "none.pth"),
                              "--input", folder, "--output", out]) == 2
    assert "none.pth" in capsys.readouterr().err
    assert predict_tool.main(["--config-file", APD_DEMO, "--weights", weights["student"], "--output", out]) == 2
    assert "--input" in capsys.readouterr().err
    wrong = "configs/demo/pspnet_r18_wide_demo.py"  # another width: the student's keys do not fit
    assert predict_tool.main(["--config-file", wrong, "--weights", weights["student"], "--input", folder,
                              "--output", out]) == 2
    assert "shape mismatch" in capsys.readouterr().err

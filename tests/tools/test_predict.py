"""tools/predict.py: the student of a run on a folder of images and a short video, with each kind of
weights file (distiller checkpoint, exported student checkpoint, TorchScript).

The student's classifier is set to predict one known class everywhere (weights 0, bias +10 for that
class), so the label PNGs have a known content whichever weights file carries it.
"""
import os

import cv2
import numpy as np
import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from PIL import Image

from helpers import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
APD_DEMO = "configs/demo/apd_pspnet_r18_demo.py"
PERSON = 11  # Cityscapes trainId of "person" ...
PERSON_LABEL_ID = 24  # ... and its labelId in the official label table (cityscapesscripts' labels.py)
NO_TEACHER = "model.teacher_weights=/nonexistent/teacher.pth"  # building the teacher would fail
HEIGHT, WIDTH = 40, 72


def load_tool(name):
    return load_script(os.path.join(ROOT, "tools", f"{name}.py"))


@pytest.fixture(scope="module")
def predict_tool():
    return load_tool("predict")


@pytest.fixture(scope="module")
def distiller_checkpoint(tmp_path_factory):
    """A distiller training checkpoint whose student predicts PERSON everywhere."""
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
    return checkpoint


@pytest.fixture(scope="module")
def weights(distiller_checkpoint, tmp_path_factory):
    """{kind: path} of the same student as a distiller training checkpoint, the exported student
    checkpoint and the TorchScript export (tools/export_student.py)."""
    checkpoint = distiller_checkpoint
    export = str(tmp_path_factory.mktemp("predict_export"))
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


def check_predictions(predict_tool, weights_file, expected_kind, inputs, out, capsys):
    """Run predict.py on the image folder and the video; check every output."""
    from cityscapesscripts.helpers.labels import trainId2label

    from apd.visualization import overlay

    folder, video = inputs
    rc = predict_tool.main([
        "--config-file", APD_DEMO, "--weights", weights_file, "--input", folder, NO_TEACHER,  # an override
        "--video-input", video, "--video-labels", "--output", out,
    ])
    assert rc == 0, capsys.readouterr().err
    assert f"({expected_kind})" in capsys.readouterr().out
    person = np.broadcast_to(np.array(trainId2label[PERSON].color, dtype=np.uint8), (HEIGHT, WIDTH, 3))
    for name in ("a", "b", "c"):
        train_ids = read_png(os.path.join(out, f"{name}_trainIds.png"))
        assert train_ids.shape == (HEIGHT, WIDTH) and train_ids.dtype == np.uint8
        assert np.all(train_ids == PERSON)
        label_ids = read_png(os.path.join(out, f"{name}_labelIds.png"))
        assert label_ids[HEIGHT // 2, WIDTH // 3] == PERSON_LABEL_ID
        drawing = read_png(os.path.join(out, f"{name}.png"))  # half image, half the person colour
        image = np.asarray(Image.open([os.path.join(folder, f) for f in os.listdir(folder) if f.startswith(name)][0]))
        if name != "c":  # the JPEG is decoded by two libraries; the PNGs are exact
            np.testing.assert_array_equal(drawing, overlay(image, person, 0.5))
        assert drawing.shape == (HEIGHT, WIDTH, 3)
    assert not os.path.exists(os.path.join(out, "notes.png"))
    assert count_frames(os.path.join(out, "clip.mp4")) == 4
    frames = sorted(os.listdir(os.path.join(out, "clip")))
    assert frames == [f"{i:06d}_{ids}.png" for i in range(4) for ids in ("labelIds", "trainIds")]
    assert np.all(read_png(os.path.join(out, "clip", "000003_trainIds.png")) == PERSON)


def test_predict_with_a_distiller_checkpoint(predict_tool, distiller_checkpoint, inputs, tmp_path, capsys):
    check_predictions(predict_tool, distiller_checkpoint, "distiller checkpoint", inputs, str(tmp_path), capsys)


@pytest.mark.slow
@pytest.mark.parametrize("kind,expected", [("student", "student checkpoint"), ("torchscript", "TorchScript")])
def test_predict_with_exported_weights(predict_tool, weights, inputs, tmp_path, kind, expected, capsys):
    check_predictions(predict_tool, weights[kind], expected, inputs, str(tmp_path), capsys)


def test_overlay_weights_image_and_colours():
    from apd.visualization import overlay

    image = np.array([[[0, 100, 255]]], dtype=np.uint8)
    colors = np.array([[[255, 0, 0]]], dtype=np.uint8)
    np.testing.assert_array_equal(overlay(image, colors, 0.0), image)
    np.testing.assert_array_equal(overlay(image, colors, 1.0), colors)
    np.testing.assert_array_equal(overlay(image, colors, 0.5), [[[128, 50, 128]]])  # 127.5 rounds to even
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, colors, 1.5)


def test_expand_inputs_files_folders_globs_and_errors(predict_tool, inputs, tmp_path):
    folder, _ = inputs
    a, b, c = (os.path.join(folder, n) for n in ("a.png", "b.png", "c.jpg"))
    assert predict_tool.expand_inputs([folder]) == [a, b, c]
    assert predict_tool.expand_inputs([os.path.join(folder, "*.png"), c]) == [a, b, c]
    with pytest.raises(FileNotFoundError, match="missing.png"):
        predict_tool.expand_inputs([str(tmp_path / "missing.png")])
    with pytest.raises(FileNotFoundError, match="holds no image"):
        predict_tool.expand_inputs([str(tmp_path)])
    assert predict_tool.split_overrides([folder, "train.seed=3", os.path.join(folder, "*.png")]) == (
        [folder, os.path.join(folder, "*.png")], ["train.seed=3"])
    assert predict_tool.unique_names(["x/a.png", "y/a.jpg", "a_1.png", "z/a.png"]) == ["a", "a_1", "a_1_1", "a_2"]


@pytest.mark.slow
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


def test_errors_name_the_problem(predict_tool, distiller_checkpoint, inputs, tmp_path, capsys):
    folder, _ = inputs
    out = str(tmp_path / "out")
    assert predict_tool.main(["--config-file", APD_DEMO, "--weights", str(tmp_path / "none.pth"),
                              "--input", folder, "--output", out]) == 2
    assert "none.pth" in capsys.readouterr().err
    assert predict_tool.main(["--config-file", APD_DEMO, "--weights", distiller_checkpoint, "--output", out]) == 2
    assert "--input" in capsys.readouterr().err
    wrong = "configs/demo/pspnet_r18_wide_demo.py"  # another model: the student keys do not fit
    assert predict_tool.main(["--config-file", wrong, "--weights", distiller_checkpoint, "--input", folder,
                              "--output", out]) == 2
    assert "does not hold the weights of the configured student" in capsys.readouterr().err


@pytest.mark.slow
def test_predict_with_an_rcnn_distiller_draws_instances(predict_tool, inputs, tmp_path, capsys):
    """Mask R-CNN demo distiller (R34 → R18, random weights, the student's box classifier biased to
    "person"): only the student is built, and the drawing is Detectron2's instance visualisation."""
    config = "configs/COCO-InstanceSegmentation/apd_mask_rcnn_R34_to_R18_FPN_demo.py"
    cfg = LazyConfig.load(os.path.join(ROOT, config))
    cfg.model.teacher_weights = None
    torch.manual_seed(0)
    distiller = instantiate(cfg.model)
    student = getattr(distiller, "student", distiller)
    with torch.no_grad():
        student.roi_heads.box_predictor.cls_score.bias[0] = 20.0  # COCO class 0: person, score ≈ 1
    checkpoint = str(tmp_path / "model_final.pth")
    torch.save({"model": distiller.state_dict()}, checkpoint)
    folder, _ = inputs
    image = os.path.join(folder, "a.png")
    out = str(tmp_path / "out")
    rc = predict_tool.main(["--config-file", config, "--weights", checkpoint, "--input", image,
                            "--output", out, NO_TEACHER])
    assert rc == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "instances student" in printed and "(distiller checkpoint)" in printed
    drawing = read_png(os.path.join(out, "a.png"))
    assert drawing.shape == (HEIGHT, WIDTH, 3)
    assert np.abs(drawing.astype(int) - read_png(image)).max() > 50  # boxes and labels drawn
    assert not os.path.exists(os.path.join(out, "a_trainIds.png"))


def test_test_protocol_of_detection_configs_is_empty(predict_tool):
    """R-CNN test mappers hold a list of augmentations, not a node with ``base_size``: reading it must
    not raise (it did, ``Index 'base_size' (str) is not an int``), and their protocol is a plain resize."""
    for config in ("COCO-Detection/faster_rcnn_R_18_FPN_1x_demo.py",
                   "COCO-InstanceSegmentation/apd_mask_rcnn_R34_to_R18_FPN_demo.py"):
        assert predict_tool.test_protocol(LazyConfig.load(os.path.join(ROOT, "configs", config))) == "", config


def test_test_protocol_line_names_the_costly_steps_and_their_switches(predict_tool):
    from apd.config import load_config

    line = predict_tool.test_protocol(load_config(os.path.join(ROOT, "configs", "apd_pspnet_r18.py")))
    assert "resized to 2048 wide" in line and "sliding 713×713 windows with flip" in line
    switches = line.split("add ", 1)[1].split()
    assert switches == ["dataloader.test.mapper.augmentations.base_size=null", "model.student.sliding_window=null"]
    # the switches it prints are valid overrides, and with them nothing costly is left
    assert predict_tool.test_protocol(load_config(os.path.join(ROOT, "configs", "apd_pspnet_r18.py"), switches)) == ""


def test_unreadable_inputs_are_named_skipped_and_listed_at_the_end(predict_tool, distiller_checkpoint, tmp_path,
                                                                   capsys):
    """A truncated JPEG stopped the run there without a name; a 16-bit PNG was predicted as a saturated
    image with exit status 0. Both are now read by the project's reader: named, skipped, listed, status 2."""
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in ("a.png", "d.png", "b.jpg"):
        Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)).save(folder / name)
    data = (folder / "b.jpg").read_bytes()
    (folder / "b.jpg").write_bytes(data[: len(data) // 2])  # truncated download
    Image.fromarray(rng.integers(0, 4096, (HEIGHT, WIDTH), dtype=np.uint16)).save(folder / "c.png")
    assert Image.open(folder / "c.png").mode.startswith("I;16")
    out = tmp_path / "out"
    rc = predict_tool.main(["--config-file", APD_DEMO, "--weights", distiller_checkpoint, "--input", str(folder),
                            "--output", str(out), NO_TEACHER])
    err = capsys.readouterr().err
    assert rc == 2
    bad = [str(folder / "b.jpg"), str(folder / "c.png")]
    for path in bad:
        assert f"[predict] skipping {path}: " in err
    assert f"predict.py: error: skipped 2 of 4 images that cannot be read (the others were written): " \
           f"{', '.join(bad)}" in err
    assert sorted(f for f in os.listdir(out) if f.endswith("_trainIds.png")) == ["a_trainIds.png", "d_trainIds.png"]
    assert not any(f.startswith(("b", "c")) for f in os.listdir(out))

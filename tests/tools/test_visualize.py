"""apd.visualization (palettes, colouring, panel layout) and tools/visualize.py on generated Cityscapes data.

The end-to-end test runs the tool in-process on the demo dataset with random demo models (teacher,
APD student, baseline student) saved as training-style checkpoints.
"""
import importlib.util
import os

import numpy as np
import pytest
import torch
from cityscapesscripts.helpers.labels import trainId2label
from detectron2.config import LazyConfig, instantiate
from detectron2.data import MetadataCatalog
from detectron2.data import detection_utils as utils
from PIL import Image

from apd.visualization import (
    GAP_COLOR,
    IGNORE_COLOR,
    PANEL_GAP,
    colorize,
    compose_panels,
    dataset_palette,
    generic_palette,
    resize_panel,
    sample_pixels_per_class,
    stack_rows,
    title_height,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
APD_DEMO = "configs/demo/apd_pspnet_r18_demo.py"
STUDENT_DEMO = "configs/demo/pspnet_r18_demo.py"
TEACHER_DEMO = "configs/demo/pspnet_r18_wide_demo.py"
# Official Cityscapes colours by train id, read from cityscapesscripts (independently of apd).
CITYSCAPES_COLORS = np.array([trainId2label[i].color for i in range(19)], dtype=np.uint8)


def load_tool(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------ palettes
def test_generic_palette_is_bit_interleaved_from_one():
    # i+1 = 1 → bit 0 goes to red's MSB: (128, 0, 0); 2 → green (0, 128, 0); 3 → (128, 128, 0);
    # 4 → blue (0, 0, 128); 8 = 0b001000 → second bit-plane of red: (64, 0, 0).
    palette = generic_palette(8)
    expected = [(128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128), (0, 128, 128),
                (128, 128, 128), (64, 0, 0)]
    assert [tuple(int(v) for v in c) for c in palette] == expected
    ade = generic_palette(150)  # ADE20K: 150 distinct colours, none black (the ignore colour)
    assert len({tuple(c) for c in ade}) == 150 and not (ade == 0).all(axis=1).any()


def test_cityscapes_palette_is_the_official_train_id_colours():
    palette = dataset_palette(MetadataCatalog.get("cityscapes_fine_sem_seg_val"), 19)
    np.testing.assert_array_equal(palette, CITYSCAPES_COLORS)
    assert tuple(palette[0]) == (128, 64, 128)  # road


def test_palette_prefers_stuff_colors_and_falls_back_to_generic():
    class Meta(dict):
        def get(self, key, default=None):
            return dict.get(self, key, default)

    given = [(1, 2, 3), (4, 5, 6)]
    np.testing.assert_array_equal(dataset_palette(Meta(stuff_colors=given), 2), np.array(given, np.uint8))
    # Unknown class names (not Cityscapes') → generic palette; also without metadata.
    np.testing.assert_array_equal(dataset_palette(Meta(stuff_classes=["wall", "cat"]), 2), generic_palette(2))
    np.testing.assert_array_equal(dataset_palette(None, 3), generic_palette(3))


def test_colorize_maps_ids_and_ignore():
    palette = np.array([[10, 20, 30], [40, 50, 60]], dtype=np.uint8)
    labels = np.array([[0, 1, 255], [1, 7, 0]])  # 255 = ignore, 7 ≥ K = 2 → ignore colour too
    expected = np.array([[[10, 20, 30], [40, 50, 60], IGNORE_COLOR], [[40, 50, 60], IGNORE_COLOR, [10, 20, 30]]])
    np.testing.assert_array_equal(colorize(labels, palette), expected.astype(np.uint8))


# ------------------------------------------------------------------------------------------- layout
def test_compose_panels_layout_keeps_panel_pixels():
    a = np.full((10, 20, 3), 7, np.uint8)
    b = np.random.default_rng(0).integers(0, 255, (10, 20, 3), dtype=np.uint8)
    canvas = compose_panels([a, b], ["a", "b"])
    # Width 2·20 + 8 (gap) = 48; height 32 (title bar, panels ≤ 1024 px wide) + 10 = 42.
    assert canvas.shape == (42, 48, 3) and title_height(20) == 32 and PANEL_GAP == 8
    np.testing.assert_array_equal(canvas[32:, :20], a)
    np.testing.assert_array_equal(canvas[32:, 28:], b)
    assert (canvas[:, 20:28] == GAP_COLOR).all()
    assert title_height(2048) == 64  # 2048 / 32
    with pytest.raises(ValueError, match="panel 1"):
        compose_panels([a, b[:5]], ["a", "b"])


def test_stack_rows_and_nearest_resize_keep_palette_colours():
    rows = stack_rows([np.zeros((3, 4, 3), np.uint8), np.ones((5, 4, 3), np.uint8)])
    assert rows.shape == (3 + 8 + 5, 4, 3)
    labels = colorize(np.random.default_rng(1).integers(0, 19, (64, 128)), CITYSCAPES_COLORS)
    small = resize_panel(labels, 50, is_label=True)
    assert small.shape == (25, 50, 3)  # 64 · 50 / 128 = 25
    assert {tuple(c) for c in small.reshape(-1, 3)} <= {tuple(c) for c in CITYSCAPES_COLORS}


def test_sample_pixels_per_class_caps_each_class_and_skips_ignore():
    labels = np.array([0] * 10 + [1] * 3 + [255] * 5 + [2] * 4)
    idx = sample_pixels_per_class(labels, per_class=4, num_classes=3, seed=0)
    # class 0: 4 of 10, class 1: all 3, class 2: all 4; no ignore pixel.
    assert np.bincount(labels[idx], minlength=3).tolist() == [4, 3, 4]
    assert len(set(idx.tolist())) == len(idx)
    np.testing.assert_array_equal(idx, sample_pixels_per_class(labels, 4, 3, seed=0))


# --------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Random demo teacher, APD distiller (student + APD head, no teacher keys) and baseline checkpoints."""
    tmp_path = tmp_path_factory.mktemp("vis_ckpts")
    teacher = instantiate(LazyConfig.load(TEACHER_DEMO).model)
    torch.save({"model": teacher.state_dict()}, tmp_path / "teacher.pth")
    cfg = LazyConfig.load(APD_DEMO)
    cfg.model.teacher_weights = None
    torch.manual_seed(1)
    distiller = instantiate(cfg.model)
    torch.save({"model": distiller.state_dict(), "iteration": 1}, tmp_path / "apd.pth")
    torch.manual_seed(2)
    baseline = instantiate(LazyConfig.load(STUDENT_DEMO).model)
    torch.save({"model": baseline.state_dict()}, tmp_path / "baseline.pth")
    return tmp_path, distiller.student.eval()


@pytest.mark.slow
def test_visualize_writes_panels_in_palette_colours_and_tsne(demo_datasets, checkpoints, tmp_path):
    ckpt_dir, student = checkpoints
    out = tmp_path / "vis"
    argv = ["--config-file", APD_DEMO, "--student-weights", str(ckpt_dir / "apd.pth"),
            "--teacher-weights", str(ckpt_dir / "teacher.pth"),
            "--baseline-config", STUDENT_DEMO, "--baseline-weights", str(ckpt_dir / "baseline.pth"),
            "--dataset", "cityscapes_fine_sem_seg_val", "--num", "1", "--output-dir", str(out),
            "--grid", str(out / "grid.png"), "--tsne", "--tsne-per-class", "15"]
    assert load_tool("visualize").main(argv) == 0

    from detectron2.data import DatasetCatalog

    record = sorted(DatasetCatalog.get("cityscapes_fine_sem_seg_val"), key=lambda r: r["file_name"])[0]
    stem = os.path.splitext(os.path.basename(record["file_name"]))[0]
    row = np.asarray(Image.open(out / f"{stem}.png").convert("RGB"))
    h, w = 256, 512  # generated Cityscapes images
    # 5 panels (image, GT, teacher, student, baseline): 5·512 + 4·8 = 2592 wide, 32 + 256 = 288 high.
    assert row.shape == (288, 2592, 3)
    panels = [row[32:, j * (w + 8): j * (w + 8) + w] for j in range(5)]
    np.testing.assert_array_equal(panels[0], utils.read_image(record["file_name"], format="RGB"))

    gt = np.asarray(Image.open(record["sem_seg_file_name"]), dtype=np.int64)
    expected_gt = np.where((gt < 19)[..., None], CITYSCAPES_COLORS[np.minimum(gt, 18)], 0).astype(np.uint8)
    np.testing.assert_array_equal(panels[1], expected_gt)
    assert (gt == 255).any()  # the generated labels do contain ignore pixels (black in the panel)

    official = {tuple(c) for c in CITYSCAPES_COLORS}
    for panel in panels[2:]:
        assert {tuple(c) for c in panel.reshape(-1, 3)} <= official
    # The student panel is the student's own argmax, coloured.
    image = torch.as_tensor(utils.read_image(record["file_name"], format="RGB").transpose(2, 0, 1).copy())
    with torch.no_grad():
        pred = student([{"image": image, "height": h, "width": w}])[0]["sem_seg"].argmax(0).numpy()
    np.testing.assert_array_equal(panels[3], CITYSCAPES_COLORS[pred])

    grid = np.asarray(Image.open(out / "grid.png").convert("RGB"))
    np.testing.assert_array_equal(grid, row)  # one image: the grid is that row

    tsne = np.asarray(Image.open(out / "tsne.png").convert("RGB"))
    # 3 scatters (teacher, student, baseline) of 5 in + 2.5 in legend at 100 dpi: 1750 × 500.
    assert tsne.shape == (500, 1750, 3)
    colours = {tuple(c) for c in tsne.reshape(-1, 3)}
    present = np.unique(gt[gt < 19])
    assert all(tuple(CITYSCAPES_COLORS[c]) in colours for c in present)


def test_visualize_images_without_labels_and_refuses_random_teacher(demo_datasets, checkpoints, tmp_path, capsys):
    ckpt_dir, _ = checkpoints
    photo = np.random.default_rng(0).integers(0, 255, (40, 72, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    tool = load_tool("visualize")
    base = ["--config-file", APD_DEMO, "--student-weights", str(ckpt_dir / "apd.pth"),
            "--images", str(tmp_path / "photo.png"), "--output-dir", str(tmp_path / "vis")]
    assert tool.main(base + ["--teacher-weights", str(ckpt_dir / "teacher.pth")]) == 0
    row = np.asarray(Image.open(tmp_path / "vis" / "photo.png").convert("RGB"))
    # image | teacher | student (no ground truth): 3·72 + 2·8 = 232 wide, 32 + 40 high.
    assert row.shape == (72, 232, 3)
    np.testing.assert_array_equal(row[32:, :72], photo)

    # No teacher weights (the demo config's default path does not exist here): an error, not a random teacher.
    assert tool.main(base + ["model.teacher_weights=" + str(tmp_path / "missing.pth")]) == 2
    assert "missing.pth" in capsys.readouterr().err

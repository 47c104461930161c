"""Pictures of segmentation results: dataset palettes, coloured label maps, side-by-side panels, t-SNE.

Used by ``tools/visualize.py``. Images are H×W×3 uint8 RGB numpy arrays throughout.

- :func:`dataset_palette`: K×3 colours of a dataset: Detectron2's ``stuff_colors`` when the metadata
  has them, the official Cityscapes colours (cityscapesscripts) when the class names are Cityscapes',
  else :func:`generic_palette` (a fixed, distinct colour per class id).
- :func:`colorize`: label ids → palette colours; ``ignore_value`` and ids outside [0, K) → ``ignore_color``.
- :func:`overlay`: a coloured label map blended over the photograph (``tools/predict.py``).
- :func:`compose_panels`: panels side by side, each under a title bar; :func:`stack_rows` stacks rows.
- :func:`sample_pixels_per_class` and :func:`save_tsne_figure`: the paper's feature analysis, one
  t-SNE scatter per model of the same pixels, coloured by their ground-truth class.
"""
from typing import Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "IGNORE_COLOR",
    "PANEL_GAP",
    "GAP_COLOR",
    "TSNE_PANEL_INCHES",
    "TSNE_LEGEND_INCHES",
    "generic_palette",
    "dataset_palette",
    "colorize",
    "overlay",
    "title_height",
    "compose_panels",
    "stack_rows",
    "resize_panel",
    "sample_pixels_per_class",
    "tsne_embed",
    "save_tsne_figure",
]

IGNORE_COLOR = (0, 0, 0)  # Cityscapes' colour of "unlabeled"
PANEL_GAP = 8  # pixels between panels and between rows
GAP_COLOR = (255, 255, 255)
TITLE_BAR_COLOR = (40, 40, 40)
TITLE_TEXT_COLOR = (255, 255, 255)
TSNE_PANEL_INCHES = 5.0  # each t-SNE scatter is 5×5 inches
TSNE_LEGEND_INCHES = 2.5  # plus a legend column on the right


def generic_palette(num_classes: int) -> np.ndarray:
    """K×3 uint8: class i gets the bit-interleaved colour of the number i+1 (the PASCAL VOC scheme,
    shifted by one so that no class is black, the ignore colour). Distinct for K < 2**24 − 1."""
    palette = np.zeros((num_classes, 3), dtype=np.uint8)
    for i in range(num_classes):
        code, rgb = i + 1, [0, 0, 0]
        for bit in range(8):
            for channel in range(3):
                rgb[channel] |= ((code >> channel) & 1) << (7 - bit)
            code >>= 3
        palette[i] = rgb
    return palette


def _cityscapes_colors(names: Sequence[str]) -> Optional[np.ndarray]:
    from cityscapesscripts.helpers.labels import name2label  # a dependency (pyproject.toml)

    if not names or not all(n in name2label for n in names):
        return None
    return np.array([name2label[n].color for n in names], dtype=np.uint8)


def dataset_palette(metadata, num_classes: int) -> np.ndarray:
    """K×3 uint8 colours for a dataset's classes (see the module docstring for the order of sources).

    Args:
        metadata: a Detectron2 ``Metadata`` (``MetadataCatalog.get(name)``) or None.
        num_classes: K, the model's number of classes.
    """
    get = (lambda key: metadata.get(key, None)) if metadata is not None else (lambda key: None)
    colors = get("stuff_colors")
    if colors is not None and len(colors) >= num_classes:
        return np.array([tuple(c) for c in colors[:num_classes]], dtype=np.uint8)
    names = get("stuff_classes")
    if names is not None and len(names) >= num_classes:
        colors = _cityscapes_colors(list(names[:num_classes]))
        if colors is not None:
            return colors
    return generic_palette(num_classes)


def colorize(labels: np.ndarray, palette: np.ndarray, ignore_color: Tuple[int, int, int] = IGNORE_COLOR) -> np.ndarray:
    """H×W integer label ids → H×W×3 uint8: ``palette[id]`` for ids in [0, K), ``ignore_color`` otherwise
    (the ignore value 255 included)."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"colorize: labels must be H×W, got shape {labels.shape}")
    palette = np.asarray(palette, dtype=np.uint8)
    table = np.concatenate([palette, np.array([ignore_color], dtype=np.uint8)])
    ids = labels.astype(np.int64)
    ids = np.where((ids >= 0) & (ids < len(palette)), ids, len(palette))
    return table[ids]


def overlay(image: np.ndarray, colors: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``(1 − alpha)·image + alpha·colors`` rounded to uint8 (both H×W×3); alpha 0 gives the image back,
    alpha 1 the colours."""
    if image.shape != colors.shape:
        raise ValueError(f"overlay: image {image.shape} and colours {colors.shape} differ in shape")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay: alpha must be in [0, 1], got {alpha}")
    blend = (1.0 - alpha) * image.astype(np.float32) + alpha * colors.astype(np.float32)
    return np.clip(np.rint(blend), 0, 255).astype(np.uint8)


def title_height(width: int) -> int:
    """Height of a panel's title bar: 32 px, or width/32 for panels wider than 1024 px."""
    return max(32, int(width) // 32)


def _title_bar(text: str, width: int) -> np.ndarray:
    import cv2

    height = title_height(width)
    bar = np.empty((height, width, 3), dtype=np.uint8)
    bar[:] = TITLE_BAR_COLOR
    scale = height / 48.0
    thickness = max(1, height // 24)
    (text_w, text_h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    if text_w > width - 4:  # shrink long titles (file names) to fit the panel
        scale *= (width - 4) / text_w
        (text_w, text_h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x = max(2, (width - text_w) // 2)
    y = (height + text_h) // 2
    cv2.putText(bar, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, TITLE_TEXT_COLOR, thickness, cv2.LINE_AA)
    return bar


def compose_panels(panels: Sequence[np.ndarray], titles: Sequence[str]) -> np.ndarray:
    """Panels (each H×W×3 uint8, same size) side by side, ``PANEL_GAP`` px apart, each under its title.

    Output: (title_height(W) + H) × (n·W + (n−1)·PANEL_GAP) × 3; panel j's pixels are copied unchanged
    to rows [title_height(W), …) and columns [j·(W + PANEL_GAP), …).
    """
    if len(panels) == 0 or len(panels) != len(titles):
        raise ValueError(f"compose_panels: {len(panels)} panels for {len(titles)} titles")
    height, width = panels[0].shape[:2]
    for i, panel in enumerate(panels):
        if panel.shape != (height, width, 3) or panel.dtype != np.uint8:
            raise ValueError(
                f"compose_panels: panel {i} ('{titles[i]}') is {panel.shape} {panel.dtype}, "
                f"expected {(height, width, 3)} uint8"
            )
    bar = title_height(width)
    n = len(panels)
    canvas = np.empty((bar + height, n * width + (n - 1) * PANEL_GAP, 3), dtype=np.uint8)
    canvas[:] = GAP_COLOR
    for j, (panel, title) in enumerate(zip(panels, titles)):
        x = j * (width + PANEL_GAP)
        canvas[:bar, x : x + width] = _title_bar(title, width)
        canvas[bar:, x : x + width] = panel
    return canvas


def stack_rows(rows: Sequence[np.ndarray]) -> np.ndarray:
    """Rows (same width) one under the other, ``PANEL_GAP`` px apart."""
    width = rows[0].shape[1]
    if any(r.shape[1] != width for r in rows):
        raise ValueError(f"stack_rows: rows have widths {[r.shape[1] for r in rows]}")
    gap = np.empty((PANEL_GAP, width, 3), dtype=np.uint8)
    gap[:] = GAP_COLOR
    parts = []
    for i, row in enumerate(rows):
        if i:
            parts.append(gap)
        parts.append(row)
    return np.concatenate(parts, axis=0)


def resize_panel(panel: np.ndarray, width: int, is_label: bool) -> np.ndarray:
    """Resize to ``width`` keeping the aspect ratio; nearest neighbour for coloured label maps (their
    pixels stay palette colours), area averaging for photographs."""
    import cv2

    h, w = panel.shape[:2]
    if width == w:
        return panel
    height = max(1, round(h * width / w))
    interpolation = cv2.INTER_NEAREST if is_label else cv2.INTER_AREA
    return cv2.resize(panel, (int(width), int(height)), interpolation=interpolation)


# ------------------------------------------------------------------------------------------- t-SNE
def sample_pixels_per_class(
    labels: np.ndarray, per_class: int, num_classes: int, seed: int = 0
) -> np.ndarray:
    """Indices into flat ``labels`` (N,), at most ``per_class`` per class id in [0, K), drawn without
    replacement with a fixed seed; ignored ids are never drawn. Sorted by class, then index."""
    labels = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(num_classes):
        where = np.flatnonzero(labels == c)
        if len(where) > per_class:
            where = np.sort(rng.choice(where, size=per_class, replace=False))
        chosen.append(where)
    return np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)


def tsne_embed(features: np.ndarray, seed: int = 0, num_threads: int = 1) -> np.ndarray:
    """N×C features → N×2 t-SNE coordinates (scikit-learn Barnes-Hut, PCA init, perplexity
    min(30, (N−1)/3)). ``num_threads`` caps scikit-learn's OpenMP threads: on a shared or busy machine
    its default (all cores) can be 10× slower than one thread."""
    try:
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits
    except ImportError as e:
        raise ImportError("The t-SNE plot needs scikit-learn: pip install scikit-learn") from e
    n = len(features)
    if n < 5:
        raise ValueError(f"t-SNE needs at least 5 sampled pixels, got {n}")
    perplexity = float(min(30.0, (n - 1) / 3.0))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed)
    with threadpool_limits(limits=num_threads):
        return tsne.fit_transform(np.asarray(features, dtype=np.float32))


def save_tsne_figure(
    path: str,
    embeddings: Sequence[Tuple[str, np.ndarray]],
    labels: np.ndarray,
    palette: np.ndarray,
    class_names: Optional[Sequence[str]] = None,
    dpi: int = 100,
) -> Tuple[int, int]:
    """One scatter per (title, N×2 embedding), points coloured ``palette[label]``, legend of the classes
    present on the right. The PNG is (TSNE_PANEL_INCHES·M + TSNE_LEGEND_INCHES)·dpi wide and
    TSNE_PANEL_INCHES·dpi high for M embeddings. Returns (width, height) in pixels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    labels = np.asarray(labels)
    colors = np.asarray(palette, dtype=np.float64)[labels] / 255.0
    m = len(embeddings)
    size = (TSNE_PANEL_INCHES * m + TSNE_LEGEND_INCHES, TSNE_PANEL_INCHES)
    fig = plt.figure(figsize=size, dpi=dpi)
    panel_w = TSNE_PANEL_INCHES / size[0]
    for j, (title, points) in enumerate(embeddings):
        ax = fig.add_axes((j * panel_w + 0.02 * panel_w, 0.04, 0.96 * panel_w, 0.86))
        ax.scatter(points[:, 0], points[:, 1], c=colors, s=10, linewidths=0)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    present = sorted(set(int(c) for c in labels))
    names = list(class_names) if class_names is not None else [str(c) for c in range(len(palette))]
    handles = [Patch(facecolor=np.asarray(palette[c]) / 255.0, edgecolor="none", label=names[c]) for c in present]
    fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return int(round(size[0] * dpi)), int(round(size[1] * dpi))

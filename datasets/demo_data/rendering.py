"""Textures and the renderer: a scene's shapes and object map to an RGB image, and the image writer."""
import zlib
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Style:
    palette: tuple  # base colours (RGB in [0, 1]); one per instance is drawn
    pattern: str = "grain"  # grain | blobs | stripes | checker | grid | flat
    amp: float = 0.06
    period: float = 8.0
    angle: float = 0.0  # radians, for stripes
    jitter: float = 0.04  # per-instance colour noise
    structure: str = ""  # sky | road | windows | car | bus | truck | person | light | sign | framed


STYLES = {
    "sky": Style(((0.50, 0.68, 0.92), (0.62, 0.75, 0.93), (0.76, 0.78, 0.82)), "flat", structure="sky"),
    "road": Style(((0.33, 0.32, 0.35), (0.38, 0.36, 0.38)), "grain", 0.07, structure="road"),
    "sidewalk": Style(((0.58, 0.50, 0.53), (0.62, 0.60, 0.58)), "grid", 0.08, 11),
    "building": Style(((0.55, 0.50, 0.45), (0.70, 0.65, 0.55), (0.45, 0.42, 0.42), (0.62, 0.45, 0.38),
                       (0.75, 0.73, 0.70)), "blobs", 0.04, 10, structure="windows"),
    "house": Style(((0.72, 0.55, 0.40), (0.80, 0.78, 0.70)), "stripes", 0.05, 5, np.pi / 2,
                   structure="windows"),
    "skyscraper": Style(((0.45, 0.55, 0.65), (0.55, 0.58, 0.60)), "flat", structure="windows"),
    "wall": Style(((0.62, 0.60, 0.54), (0.70, 0.66, 0.60), (0.55, 0.60, 0.65)), "blobs", 0.06, 14),
    "fence": Style(((0.45, 0.40, 0.32), (0.40, 0.42, 0.40)), "grid", 0.22, 6),
    "pole": Style(((0.48, 0.48, 0.50), (0.40, 0.40, 0.38)), "stripes", 0.05, 3),
    "traffic light": Style(((0.12, 0.12, 0.12),), "flat", structure="light"),
    "traffic sign": Style(((0.85, 0.78, 0.10), (0.12, 0.30, 0.75), (0.80, 0.12, 0.12), (0.90, 0.90, 0.90)),
                          "flat", jitter=0.02, structure="sign"),
    "vegetation": Style(((0.26, 0.42, 0.16), (0.32, 0.48, 0.20), (0.22, 0.36, 0.18)), "blobs", 0.14, 3),
    "trunk": Style(((0.36, 0.26, 0.18),), "stripes", 0.06, 3),
    "terrain": Style(((0.55, 0.58, 0.32), (0.48, 0.52, 0.30)), "grain", 0.12),
    "person": Style(((0.85, 0.65, 0.52), (0.60, 0.42, 0.30), (0.95, 0.80, 0.70)), "flat", structure="person"),
    "car": Style(((0.75, 0.10, 0.10), (0.10, 0.20, 0.60), (0.85, 0.85, 0.85), (0.08, 0.08, 0.10),
                  (0.55, 0.56, 0.58), (0.20, 0.45, 0.30)), "flat", structure="car"),
    "truck": Style(((0.85, 0.85, 0.82), (0.20, 0.30, 0.60), (0.70, 0.20, 0.15)), "grain", 0.03,
                   structure="truck"),
    "bus": Style(((0.90, 0.78, 0.20), (0.80, 0.15, 0.15), (0.20, 0.45, 0.75)), "flat", structure="bus"),
    "bicycle": Style(((0.10, 0.10, 0.12), (0.55, 0.10, 0.10)), "flat"),
    "motorcycle": Style(((0.15, 0.15, 0.18), (0.30, 0.30, 0.60), (0.65, 0.10, 0.10)), "grain", 0.05,
                        structure="car"),
    "ego vehicle": Style(((0.10, 0.10, 0.13),), "grain", 0.03),
    "static": Style(((0.50, 0.40, 0.30), (0.35, 0.35, 0.30)), "checker", 0.1, 4),
    "ceiling": Style(((0.88, 0.88, 0.85), (0.80, 0.82, 0.85)), "grid", 0.04, 20),
    "floor": Style(((0.55, 0.40, 0.28), (0.62, 0.50, 0.36), (0.50, 0.50, 0.52)), "stripes", 0.08, 7, np.pi / 2),
    "rug": Style(((0.60, 0.20, 0.20), (0.25, 0.30, 0.55), (0.70, 0.60, 0.40)), "checker", 0.12, 5),
    "curtain": Style(((0.70, 0.60, 0.45), (0.45, 0.15, 0.20)), "stripes", 0.12, 6, 0.0),
    "mountain": Style(((0.45, 0.45, 0.50), (0.40, 0.38, 0.34)), "blobs", 0.1, 8),
    "tree": Style(((0.24, 0.40, 0.15), (0.30, 0.46, 0.20)), "blobs", 0.14, 3),
    "plant": Style(((0.20, 0.50, 0.22), (0.35, 0.55, 0.15)), "blobs", 0.16, 2),
    "grass": Style(((0.30, 0.55, 0.20), (0.38, 0.60, 0.25)), "stripes", 0.08, 2.5),
    "earth": Style(((0.50, 0.40, 0.30), (0.45, 0.38, 0.28)), "blobs", 0.08, 6),
    "sand": Style(((0.82, 0.74, 0.56),), "grain", 0.06),
    "water": Style(((0.20, 0.40, 0.62), (0.15, 0.35, 0.45)), "stripes", 0.1, 5, np.pi / 2),
    "snow": Style(((0.92, 0.93, 0.96),), "grain", 0.04),
    "window": Style(((0.60, 0.75, 0.85),), "flat", structure="framed"),
    "door": Style(((0.45, 0.30, 0.20), (0.75, 0.75, 0.72)), "stripes", 0.05, 4, structure="framed"),
    "painting": Style(((0.70, 0.40, 0.20), (0.20, 0.50, 0.40), (0.60, 0.50, 0.70)), "blobs", 0.3, 5,
                      structure="framed"),
    "tv": Style(((0.08, 0.08, 0.10),), "flat", structure="framed"),
    "mirror": Style(((0.80, 0.82, 0.85),), "blobs", 0.06, 12, structure="framed"),
    "cabinet": Style(((0.55, 0.38, 0.24), (0.85, 0.85, 0.80)), "grid", 0.08, 16, structure="framed"),
    "shelf": Style(((0.60, 0.45, 0.30),), "grid", 0.15, 9),
    "stop sign": Style(((0.80, 0.10, 0.10),), "flat", jitter=0.02, structure="sign"),
    "sign": Style(((0.85, 0.78, 0.10), (0.12, 0.30, 0.75), (0.90, 0.90, 0.90)), "flat", structure="sign"),
}


def style_of(concept):
    if concept in STYLES:
        return STYLES[concept]
    # classes without a hand-made look (and "other" clutter): a fixed random look per name
    rng = np.random.default_rng(zlib.crc32(concept.encode()))
    patterns = ["grain", "blobs", "stripes", "checker", "grid"]
    return Style(palette=tuple(tuple(rng.uniform(0.1, 0.9, 3)) for _ in range(2)),
                 pattern=patterns[rng.integers(len(patterns))], amp=float(rng.uniform(0.05, 0.2)),
                 period=float(rng.uniform(3, 12)), angle=float(rng.uniform(0, np.pi)))


def smooth_noise(h, w, cell, rng):
    """Zero-mean noise with features about `cell` pixels wide (bicubic upsampling of white noise)."""
    cell = max(1, int(round(cell)))
    small = rng.standard_normal((h // cell + 3, w // cell + 3)).astype(np.float32)
    big = cv2.resize(small, (small.shape[1] * cell, small.shape[0] * cell), interpolation=cv2.INTER_CUBIC)
    return big[cell:cell + h, cell:cell + w]


def _pattern(style, yy, xx, rng):
    h, w = yy.shape
    if style.pattern == "grain":
        return np.clip(rng.standard_normal((h, w)).astype(np.float32) * 0.5, -1, 1)
    if style.pattern == "blobs":
        return np.clip(smooth_noise(h, w, style.period, rng), -1.5, 1.5)
    if style.pattern == "stripes":
        phase = rng.uniform(0, 2 * np.pi)
        return np.sin(2 * np.pi * (xx * np.cos(style.angle) + yy * np.sin(style.angle)) / style.period + phase)
    if style.pattern == "checker":
        p = style.period
        return np.where((np.floor(xx / p) + np.floor(yy / p)) % 2 == 0, 1.0, -1.0).astype(np.float32)
    if style.pattern == "grid":
        p, t = style.period, max(1.0, style.period / 6)
        return np.where((xx % p < t) | (yy % p < t), -1.0, 0.3).astype(np.float32)
    return np.zeros((h, w), np.float32)


def _box_coords(yy, xx):
    """Relative coordinates (fy, fx) in [0, 1] inside the shape's bounding box (the crop)."""
    h, w = yy.shape
    return (yy - yy[0, 0]) / max(1, h - 1), (xx - xx[0, 0]) / max(1, w - 1)


def _structure(style, shape, tex, yy, xx, mask, rng):
    kind = style.structure
    if not kind:
        return tex
    fy, fx = _box_coords(yy, xx)

    def put(region, colour):
        tex[region] = np.asarray(colour, np.float32)

    if kind == "sky":
        tex *= (0.85 + 0.2 * np.clip(fy, 0, 1))[..., None]  # brighter towards the horizon
        clouds = smooth_noise(*yy.shape, 20, rng) > rng.uniform(0.6, 1.4)
        put(clouds, np.full(3, rng.uniform(0.85, 0.97)))
    elif kind == "road":
        h, w = yy.shape  # without a street layout: lanes converge to the top centre of the crop
        vx, hz = shape.params.get("vanishing_point", (xx[0, 0] + w / 2, yy[0, 0]))
        half = shape.params.get("half", w / 2)
        depth = np.clip((yy - hz) / max(1.0, yy.max() - hz), 0, 1)
        for offset in rng.choice([-0.5, 0.0, 0.5], size=rng.integers(1, 3), replace=False):
            line_x = vx + offset * half * depth
            dashes = (np.sqrt(depth) * 14 + rng.uniform()) % 1 < 0.55
            put((np.abs(xx - line_x) < 0.5 + 2.5 * depth) & dashes & (depth > 0.05), (0.82, 0.82, 0.78))
    elif kind == "windows":
        sx, sy = rng.uniform(7, 16), rng.uniform(8, 18)
        cx, cy = (fx * (xx.shape[1] - 1)) / sx, (fy * (yy.shape[0] - 1)) / sy
        inside = (cx % 1 > 0.25) & (cx % 1 < 0.75) & (cy % 1 > 0.3) & (cy % 1 < 0.75) & (fy > 0.05) & (fy < 0.9)
        lit = rng.random((int(cy.max()) + 2, int(cx.max()) + 2)) < 0.2
        lit = lit[cy.astype(int), cx.astype(int)]
        put(inside & ~lit, (0.18, 0.22, 0.28))
        put(inside & lit, (0.85, 0.80, 0.50))
    elif kind in ("car", "bus", "truck"):
        glass = (0.15, 0.18, 0.24)
        if kind == "car":
            put((fy < 0.42) & (fy > 0.12) & (fx > 0.18) & (fx < 0.82), glass)
            put(((fx < 0.1) | (fx > 0.9)) & (fy > 0.5) & (fy < 0.62), (0.85, 0.15, 0.10))
        elif kind == "bus":
            put((fy > 0.12) & (fy < 0.42) & (fx > 0.04) & (fx < 0.96) & ((fx * 8) % 1 > 0.1), glass)
        else:
            put((fy > 0.35) & (fy < 0.55) & (fx > 0.72), glass)
        put(fy > 0.88, (0.06, 0.06, 0.07))
    elif kind == "person":
        shirt = rng.uniform(0.05, 0.9, 3)
        trousers = rng.uniform(0.05, 0.45, 3)
        put((fy >= 0.15) & (fy < 0.56), shirt)
        put(fy >= 0.56, trousers)
    elif kind == "light":
        lamp = shape.params.get("lamp", int(rng.integers(3)))
        colour = [(0.95, 0.15, 0.10), (0.95, 0.75, 0.10), (0.20, 0.90, 0.35)][lamp]
        centre = (lamp + 0.5) / 3
        put((fx - 0.5) ** 2 * 4 + ((fy - centre) * 3) ** 2 * 4 < 0.5, colour)
    elif kind in ("sign", "framed"):
        m = mask.astype(np.uint8)
        t = max(1, int(round(min(mask.shape) * (0.12 if kind == "sign" else 0.08))))
        inner = cv2.erode(m, np.ones((2 * t + 1, 2 * t + 1), np.uint8)).astype(bool)
        border = (0.95, 0.95, 0.95) if kind == "sign" else rng.uniform(0.1, 0.5, 3)
        put(mask & ~inner, border)
    return tex


def render_image(shapes, objmap, rng):
    """RGB uint8 image: each shape's texture where it is on top, then lighting, blur and noise."""
    H, W = objmap.shape
    img = 0.4 + 0.08 * smooth_noise(H, W, 6, rng)[..., None].repeat(3, axis=2)  # unlabeled clutter
    for idx, shape in enumerate(shapes, start=1):
        pts = np.concatenate([np.asarray(p) for p in shape.polygons])
        x0, y0 = np.maximum(pts.min(axis=0), 0)
        x1, y1 = np.minimum(pts.max(axis=0), [W - 1, H - 1])
        mask = objmap[y0:y1 + 1, x0:x1 + 1] == idx
        if not mask.any():
            continue
        srng = np.random.default_rng(shape.seed)
        style = style_of(shape.style)
        yy, xx = np.mgrid[y0:y1 + 1, x0:x1 + 1].astype(np.float32)
        base = np.asarray(style.palette[srng.integers(len(style.palette))], np.float32)
        base = base + style.jitter * srng.standard_normal(3).astype(np.float32)
        tex = base + style.amp * _pattern(style, yy, xx, srng)[..., None]
        tex = _structure(style, shape, tex.astype(np.float32), yy, xx, mask, srng)
        img[y0:y1 + 1, x0:x1 + 1][mask] = tex[mask]
    gain = rng.uniform(0.75, 1.15) * (1 + 0.04 * rng.standard_normal(3))
    light = 1 + 0.12 * smooth_noise(H, W, max(H, W) // 3, rng)
    img = img * gain[None, None, :] * light[..., None]
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 0.6)
    img = img + rng.normal(0, 0.025, img.shape)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def save_rgb(path, rgb, jpeg_quality=None):
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if jpeg_quality else []
    if not cv2.imwrite(path, np.ascontiguousarray(rgb[..., ::-1]), params):
        raise OSError(f"could not write {path}")

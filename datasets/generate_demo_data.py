#!/usr/bin/env python
"""Generate small synthetic datasets in the real on-disk formats of Cityscapes, ADE20K,
PASCAL-Context and COCO 2017, then run the real preparation scripts on them.

The scenes are drawn from polygons: street scenes for Cityscapes (sky, buildings, road,
sidewalks, vegetation, poles with signs and lights, cars, persons, riders, ...), indoor and
outdoor scenes for ADE20K, PASCAL-Context and COCO. Every class has its own colour and texture
(stripes, tiles, windows, foliage, ...), instances vary in colour, images get illumination
changes and noise, objects occlude each other and thin structures (poles, fences, bicycles)
are a few pixels wide: learnable, but a bigger model does better than a small one.
Output is a deterministic function of ``--seed`` (each image has its own random stream, so
``--datasets`` and the counts do not change the other images).

Usage::

    python datasets/generate_demo_data.py --root datasets/demo --seed 0
    DETECTRON2_DATASETS=datasets/demo python train_net.py ...

Layout written under ``--root`` (see datasets/README.md)::

    cityscapes/leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    cityscapes/gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_{polygons.json,instanceIds.png,
                                                                labelIds.png,labelTrainIds.png}
    ADEChallengeData2016/{images,annotations,annotations_detectron2}/{training,validation}/ADE_*
    VOCdevkit/VOC2010/{JPEGImages,trainval,ImageSets/SegmentationContext}   (PASCAL-Context release)
    pascal_context/{images,annotations_detectron2/pc59,annotations_detectron2/pc60}/{train,val}
    coco/{train2017,val2017}/*.jpg, coco/annotations/instances_{train,val}2017.json
"""
import argparse
import importlib.util
import json
import os
import sys
import time
import zlib
from dataclasses import dataclass, field

import cv2
import numpy as np
import scipy.io
from PIL import Image, ImageDraw

ALL_DATASETS = ("cityscapes", "ade20k", "pascal_context", "coco")
_HERE = os.path.dirname(os.path.abspath(__file__))


def _load_sibling(name):
    """Import ``datasets/<name>.py`` (this folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(_HERE, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rng(seed, *keys):
    """Independent random stream for (seed, dataset, split, index)."""
    words = [seed] + [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
    return np.random.default_rng(words)


# ---------------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------------
def clip_polygon(points, width, height):
    """Sutherland-Hodgman clip of a polygon to [0, width-1] x [0, height-1]."""
    def clip(pts, inside, cross):
        out = []
        for i, cur in enumerate(pts):
            prev = pts[i - 1]
            if inside(cur):
                if not inside(prev):
                    out.append(cross(prev, cur))
                out.append(cur)
            elif inside(prev):
                out.append(cross(prev, cur))
        return out

    def at_x(c):
        return lambda p, q: (c, p[1] + (q[1] - p[1]) * (c - p[0]) / (q[0] - p[0]))

    def at_y(c):
        return lambda p, q: (p[0] + (q[0] - p[0]) * (c - p[1]) / (q[1] - p[1]), c)

    pts = [(float(x), float(y)) for x, y in points]
    for inside, cross in (
        (lambda p: p[0] >= 0, at_x(0.0)),
        (lambda p: p[0] <= width - 1, at_x(width - 1.0)),
        (lambda p: p[1] >= 0, at_y(0.0)),
        (lambda p: p[1] <= height - 1, at_y(height - 1.0)),
    ):
        if not pts:
            break
        pts = clip(pts, inside, cross)
    return pts


def to_int_polygon(points, width, height):
    """Clip, round to integer pixels (as Cityscapes stores them), drop repeats; None if degenerate."""
    out = []
    for x, y in clip_polygon(points, width, height):
        p = [int(round(x)), int(round(y))]
        if not out or p != out[-1]:
            out.append(p)
    if len(out) > 1 and out[0] == out[-1]:
        out.pop()
    if len(out) < 3:
        return None
    xs, ys = np.array(out).T
    area = 0.5 * abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1)))
    return out if area >= 1.0 else None


def place(template, x0, y0, w, h, flip=False):
    """Scale a unit-box template (x right, y down) into the box (x0, y0, w, h)."""
    return [(x0 + (1 - u if flip else u) * w, y0 + v * h) for u, v in template]


def regular_polygon(cx, cy, r, n, rotation=0.0):
    a = rotation + 2 * np.pi * np.arange(n) / n
    return list(zip(cx + r * np.cos(a), cy + r * np.sin(a)))


def blob(cx, cy, rx, ry, rng, n=16, roughness=0.25):
    a = 2 * np.pi * (np.arange(n) + rng.uniform(-0.3, 0.3, n)) / n
    r = 1 + roughness * rng.uniform(-1, 1, n)
    return list(zip(cx + rx * r * np.cos(a), cy + ry * r * np.sin(a)))


def wavy_line(y, amplitude, width, rng, n=12):
    """Points (x, y(x)) from x=0 to x=width-1 around height y."""
    xs = np.linspace(0, width - 1, n)
    ys = y + amplitude * (np.sin(xs / width * rng.uniform(2, 7) + rng.uniform(0, 6.3)) +
                          0.4 * rng.uniform(-1, 1, n))
    return list(zip(xs, ys))


# Silhouettes in a unit box (x right, y down), traced once around the outline.
TEMPLATES = {
    "person": [(0.40, 0.00), (0.60, 0.00), (0.64, 0.06), (0.60, 0.13), (0.54, 0.15), (0.80, 0.19),
               (0.88, 0.50), (0.79, 0.52), (0.74, 0.30), (0.72, 0.56), (0.70, 1.00), (0.54, 1.00),
               (0.50, 0.62), (0.46, 1.00), (0.30, 1.00), (0.28, 0.56), (0.26, 0.30), (0.21, 0.52),
               (0.12, 0.50), (0.20, 0.19), (0.46, 0.15), (0.40, 0.13), (0.36, 0.06)],
    "car_rear": [(0.00, 0.92), (0.00, 0.48), (0.08, 0.40), (0.18, 0.06), (0.82, 0.06), (0.92, 0.40),
                 (1.00, 0.48), (1.00, 0.92), (0.90, 1.00), (0.72, 1.00), (0.70, 0.95), (0.30, 0.95),
                 (0.28, 1.00), (0.10, 1.00)],
    "car_side": [(0.00, 0.85), (0.00, 0.55), (0.04, 0.45), (0.22, 0.40), (0.33, 0.08), (0.70, 0.08),
                 (0.82, 0.40), (0.97, 0.46), (1.00, 0.60), (1.00, 0.85), (0.90, 0.85), (0.86, 1.00),
                 (0.74, 1.00), (0.70, 0.85), (0.30, 0.85), (0.26, 1.00), (0.14, 1.00), (0.10, 0.85)],
    "bus": [(0.00, 0.95), (0.00, 0.06), (0.05, 0.00), (0.95, 0.00), (1.00, 0.06), (1.00, 0.95),
            (0.85, 0.95), (0.85, 1.00), (0.70, 1.00), (0.70, 0.95), (0.30, 0.95), (0.30, 1.00),
            (0.15, 1.00), (0.15, 0.95)],
    "truck": [(0.00, 0.90), (0.00, 0.00), (0.68, 0.00), (0.68, 0.30), (0.85, 0.30), (0.97, 0.50),
              (1.00, 0.55), (1.00, 0.90), (0.90, 0.90), (0.88, 1.00), (0.74, 1.00), (0.72, 0.90),
              (0.30, 0.90), (0.28, 1.00), (0.12, 1.00), (0.10, 0.90)],
    "bicycle": [(0.00, 0.70), (0.10, 0.45), (0.30, 0.42), (0.35, 0.20), (0.45, 0.20), (0.42, 0.42),
                (0.70, 0.42), (0.75, 0.25), (0.85, 0.25), (0.80, 0.45), (0.95, 0.50), (1.00, 0.70),
                (0.95, 0.95), (0.80, 1.00), (0.72, 0.90), (0.50, 0.72), (0.30, 0.90), (0.20, 1.00),
                (0.05, 0.95)],
    "quadruped": [(0.00, 0.25), (0.12, 0.10), (0.20, 0.12), (0.22, 0.30), (0.85, 0.30), (0.95, 0.20),
                  (1.00, 0.22), (0.90, 0.40), (0.88, 1.00), (0.80, 1.00), (0.78, 0.60), (0.30, 0.60),
                  (0.28, 1.00), (0.20, 1.00), (0.18, 0.50), (0.14, 0.35), (0.04, 0.35)],
    "chair": [(0.10, 0.00), (0.25, 0.00), (0.25, 0.52), (0.95, 0.52), (0.95, 0.62), (0.90, 0.62),
              (0.90, 1.00), (0.82, 1.00), (0.82, 0.62), (0.25, 0.62), (0.25, 1.00), (0.10, 1.00)],
    "table": [(0.00, 0.00), (1.00, 0.00), (1.00, 0.12), (0.92, 0.12), (0.92, 1.00), (0.84, 1.00),
              (0.84, 0.12), (0.16, 0.12), (0.16, 1.00), (0.08, 1.00), (0.08, 0.12), (0.00, 0.12)],
    "sofa": [(0.00, 0.25), (0.10, 0.22), (0.10, 0.00), (0.90, 0.00), (0.90, 0.22), (1.00, 0.25),
             (1.00, 0.90), (0.93, 0.90), (0.93, 1.00), (0.85, 1.00), (0.85, 0.90), (0.15, 0.90),
             (0.15, 1.00), (0.07, 1.00), (0.07, 0.90), (0.00, 0.90)],
    "bed": [(0.00, 0.30), (0.08, 0.30), (0.08, 0.00), (0.16, 0.00), (0.16, 0.45), (1.00, 0.45),
            (1.00, 1.00), (0.92, 1.00), (0.92, 0.85), (0.08, 0.85), (0.08, 1.00), (0.00, 1.00)],
    "bottle": [(0.38, 0.00), (0.62, 0.00), (0.62, 0.25), (0.90, 0.40), (0.90, 1.00), (0.10, 1.00),
               (0.10, 0.40), (0.38, 0.25)],
    "lamp": [(0.25, 0.00), (0.75, 0.00), (0.95, 0.30), (0.55, 0.30), (0.55, 0.92), (0.80, 0.92),
             (0.80, 1.00), (0.20, 1.00), (0.20, 0.92), (0.45, 0.92), (0.45, 0.30), (0.05, 0.30)],
    "boat": [(0.00, 0.55), (0.30, 0.55), (0.30, 0.20), (0.65, 0.20), (0.65, 0.55), (1.00, 0.55),
             (0.85, 1.00), (0.12, 1.00)],
    "airplane": [(0.00, 0.45), (0.10, 0.35), (0.45, 0.35), (0.30, 0.00), (0.42, 0.00), (0.65, 0.35),
                 (0.90, 0.35), (0.95, 0.10), (1.00, 0.10), (1.00, 0.55), (0.65, 0.60), (0.42, 1.00),
                 (0.30, 1.00), (0.45, 0.60), (0.10, 0.60)],
    "rect": [(0, 0), (1, 0), (1, 1), (0, 1)],
    "trapezoid": [(0.15, 0), (0.85, 0), (1, 1), (0, 1)],
}


# ---------------------------------------------------------------------------------------------
# Scenes: an ordered list of shapes (later shapes cover earlier ones, as in Cityscapes' json)
# ---------------------------------------------------------------------------------------------
@dataclass
class Shape:
    label: object  # dataset label: Cityscapes name, ADE / PASCAL-Context id, COCO category id or None
    style: str  # texture concept, see STYLES
    polygons: list  # list of integer polygons [[x, y], ...]
    seed: int  # per-instance texture stream
    params: dict = field(default_factory=dict)


class SceneBuilder:
    def __init__(self, rng, height, width):
        self.rng, self.H, self.W = rng, height, width
        self.shapes = []

    def add(self, label, style, *polygons, **params):
        polys = [p for p in (to_int_polygon(q, self.W, self.H) for q in polygons) if p is not None]
        if polys:
            self.shapes.append(Shape(label, style, polys, int(self.rng.integers(2**31)), params))


def rasterize(shapes, height, width):
    """int32 H×W map: 0 where no shape, i+1 where shape i is on top (PIL's polygon fill)."""
    canvas = Image.new("I", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for i, shape in enumerate(shapes, start=1):
        for poly in shape.polygons:
            draw.polygon([tuple(p) for p in poly], fill=i)
    return np.asarray(canvas, dtype=np.int32)


def street_scene(rng, H, W):
    """A Cityscapes-like street: Cityscapes label names, drawn back to front."""
    s = SceneBuilder(rng, H, W)
    hz = H * rng.uniform(0.36, 0.48)  # horizon
    vx = W * rng.uniform(0.38, 0.62)  # vanishing point x
    depth = H - 1 - hz

    def scale(y):  # 0 at the horizon, 1 at the bottom row
        return float(np.clip((y - hz) / depth, 0.02, 1.0))

    road_half = W * rng.uniform(0.45, 0.7)
    walk = W * rng.uniform(0.35, 0.7)

    def edge(y, offset):  # x of a line through the vanishing point with bottom offset `offset`
        return vx + offset * (y - hz) / depth

    def outer_y(x):  # y of the outer sidewalk line at x (buildings stand on it)
        off = -(road_half + walk) if x < vx else road_half + walk
        return hz + depth * (x - vx) / off

    s.add("sky", "sky", [(0, 0), (W - 1, 0), (W - 1, hz + 4), (0, hz + 4)], horizon=hz)
    # distant buildings around the vanishing point, then facades on both sides
    x = vx - W * rng.uniform(0.1, 0.2)
    while x < vx + W * 0.15:
        w = W * rng.uniform(0.03, 0.07)
        top = hz - H * rng.uniform(0.04, 0.2)
        s.add("building", "building", [(x, top), (x + w, top), (x + w, hz + 3), (x, hz + 3)])
        x += w
    for side in (-1, 1):  # walk from the image edge towards the vanishing point
        x_near = 0.0 if side < 0 else W - 1.0
        x_far = vx + side * W * rng.uniform(0.05, 0.12)
        x = x_near
        while (x_far - x) * side < 0:
            w = W * rng.uniform(0.08, 0.22)
            xb = x - side * w
            if (xb - x_far) * side < 0:
                xb = x_far
            t = abs(x - x_near) / abs(x_far - x_near)
            tops = [H * (rng.uniform(-0.1, 0.12) * (1 - t) + t * (hz / H - rng.uniform(0.08, 0.25)))
                    for _ in range(2)]
            label = "building" if rng.random() < 0.9 else "wall"
            s.add(label, label, [(x, tops[0]), (xb, tops[1]), (xb, outer_y(xb) + 3),
                                 (x, outer_y(x) + 3)])
            x = xb
    # ground: sidewalks (with optional terrain strip), road
    for side in (-1, 1):
        far = side * (road_half + walk)
        s.add("sidewalk", "sidewalk", [(vx + side * 2, hz), (edge(H - 1, far), H - 1),
                                       (edge(H - 1, side * road_half), H - 1)])
        if rng.random() < 0.5:
            inner = side * (road_half + walk * rng.uniform(0.35, 0.7))
            s.add("terrain", "terrain", [(vx + side * 3, hz), (edge(H - 1, far), H - 1),
                                         (edge(H - 1, inner), H - 1)])
    s.add("road", "road", [(vx - 2, hz), (vx + 2, hz), (vx + road_half, H - 1),
                           (vx - road_half, H - 1)], vanishing_point=(vx, hz), half=road_half)

    # standing things, drawn in order of their foot point (nearer on top)
    items = []  # (foot y, [(label, style, polygons, params)])

    def on_walk(side, y):
        a, b = edge(y, side * road_half), edge(y, side * (road_half + walk))
        return a + (b - a) * rng.uniform(0.1, 0.9)

    for _ in range(rng.integers(0, 4)):  # fences and walls along the sidewalk
        side = rng.choice([-1, 1])
        y0 = hz + depth * rng.uniform(0.05, 0.4)
        y1 = min(H - 1.0, y0 + depth * rng.uniform(0.2, 0.6))
        xa, xb = edge(y0, side * (road_half + walk * 0.9)), edge(y1, side * (road_half + walk * 0.9))
        ha, hb = H * 0.12 * scale(y0) + 2, H * 0.12 * scale(y1) + 2
        label = "fence" if rng.random() < 0.6 else "wall"
        items.append((y1, [(label, label, [[(xa, y0), (xb, y1), (xb, y1 - hb), (xa, y0 - ha)]], {})]))
    for _ in range(rng.integers(1, 5)):  # trees
        side = rng.choice([-1, 1])
        y = hz + depth * rng.uniform(0.05, 0.7)
        x = on_walk(side, y) + side * walk * 0.1 * scale(y)
        k = scale(y)
        trunk_h, trunk_w = H * 0.3 * k + 4, max(2.0, W * 0.012 * k)
        r = H * 0.18 * k + 5
        cy = y - trunk_h - 0.6 * r
        items.append((y, [
            ("vegetation", "trunk", [[(x - trunk_w, y), (x + trunk_w, y), (x + trunk_w, y - trunk_h - r * 0.3),
                                      (x - trunk_w, y - trunk_h - r * 0.3)]], {}),
            ("vegetation", "vegetation", [blob(x, cy, r * rng.uniform(0.9, 1.3), r, rng, n=18)], {}),
        ]))
    for _ in range(rng.integers(1, 6)):  # poles, with a traffic sign or light
        side = rng.choice([-1, 1])
        y = hz + depth * rng.uniform(0.08, 0.95)
        x = edge(y, side * (road_half + walk * rng.uniform(0.05, 0.3)))
        k = scale(y)
        pw, ph = max(1.0, 3.0 * k), H * 0.75 * k + 8
        parts = [("pole", "pole", [[(x - pw, y), (x + pw, y), (x + pw, y - ph), (x - pw, y - ph)]], {})]
        r = 9 * k + 3
        kind = rng.choice(["sign", "light", "none"], p=[0.5, 0.35, 0.15])
        if kind == "sign":
            n = int(rng.choice([3, 4, 8, 24]))
            parts.append(("traffic sign", "traffic sign",
                          [regular_polygon(x, y - ph + r, r, n, np.pi / 2 if n == 3 else np.pi / n)], {}))
        elif kind == "light":
            lw = 5 * k + 2
            parts.append(("traffic light", "traffic light",
                          [[(x - lw, y - ph), (x + lw, y - ph), (x + lw, y - ph + 5.5 * lw),
                            (x - lw, y - ph + 5.5 * lw)]], {"lamp": int(rng.integers(3))}))
        items.append((y, parts))
    for _ in range(rng.integers(1, 6)):  # vehicles on the road
        y = hz + depth * rng.uniform(0.12, 1.0)
        k = scale(y)
        label = str(rng.choice(["car", "car", "car", "truck", "bus"]))
        w = W * 0.3 * k * rng.uniform(0.8, 1.2) + 6
        if label == "car":
            tmpl, h = ("car_rear", w * 0.8) if rng.random() < 0.6 else ("car_side", w * 0.45)
            w = w if tmpl == "car_rear" else w * 1.7
        else:
            w, tmpl = w * 1.3, label
            h = w * (1.0 if label == "bus" else 0.8)
        x = edge(y, road_half * rng.uniform(-0.8, 0.8))
        items.append((y, [(label, label, [place(TEMPLATES[tmpl], x - w / 2, y - h, w, h,
                                                flip=rng.random() < 0.5)], {})]))
    for _ in range(rng.integers(0, 7)):  # pedestrians
        side = rng.choice([-1, 1])
        y = hz + depth * rng.uniform(0.1, 1.0)
        k = scale(y)
        h = H * 0.45 * k * rng.uniform(0.85, 1.1) + 8
        x = on_walk(side, y)
        items.append((y, [("person", "person", [place(TEMPLATES["person"], x - 0.19 * h, y - h, 0.38 * h, h)],
                           {})]))
    if rng.random() < 0.4:  # a rider on a bicycle or motorcycle
        y = hz + depth * rng.uniform(0.3, 1.0)
        k = scale(y)
        h = H * 0.42 * k + 8
        x = edge(y, road_half * rng.uniform(-0.9, 0.9))
        vehicle = "bicycle" if rng.random() < 0.6 else "motorcycle"
        bw, bh = 0.9 * h, 0.5 * h * (1.0 if vehicle == "bicycle" else 1.2)
        items.append((y, [
            (vehicle, vehicle, [place(TEMPLATES["bicycle"], x - bw / 2, y - bh, bw, bh)], {}),
            ("rider", "person", [place(TEMPLATES["person"], x - 0.19 * h, y - h - 0.15 * bh, 0.38 * h, h)], {}),
        ]))
    if rng.random() < 0.3:  # something void on the sidewalk
        side = rng.choice([-1, 1])
        y = hz + depth * rng.uniform(0.3, 1.0)
        x, r = on_walk(side, y), 12 * scale(y) + 3
        items.append((y, [("static", "static", [blob(x, y - r, r, r, rng, n=8, roughness=0.1)], {})]))

    for _, parts in sorted(items, key=lambda item: item[0]):
        for label, style, polys, params in parts:
            s.add(label, style, *polys, **params)
    if rng.random() < 0.4:  # the hood of the recording car
        e = H * rng.uniform(0.06, 0.12)
        s.add("ego vehicle", "ego vehicle", [(0, H - 1), (0, H - 1 - e), (W * 0.3, H - 1 - 1.5 * e),
                                             (W * 0.7, H - 1 - 1.5 * e), (W - 1, H - 1 - e), (W - 1, H - 1)])
    return s.shapes


# concept -> (template, height range as a fraction of the image height, width/height, grounded)
THING_SHAPES = {
    "person": ("person", (0.25, 0.6), 0.38, True),
    "car": ("car_side", (0.12, 0.3), 2.2, True),
    "bus": ("bus", (0.2, 0.45), 2.2, True),
    "truck": ("truck", (0.18, 0.4), 1.8, True),
    "bicycle": ("bicycle", (0.12, 0.3), 1.6, True),
    "motorbike": ("bicycle", (0.14, 0.3), 1.5, True),
    "dog": ("quadruped", (0.12, 0.3), 1.4, True),
    "cat": ("quadruped", (0.1, 0.25), 1.3, True),
    "horse": ("quadruped", (0.25, 0.45), 1.3, True),
    "cow": ("quadruped", (0.2, 0.4), 1.5, True),
    "sheep": ("quadruped", (0.12, 0.3), 1.4, True),
    "boat": ("boat", (0.12, 0.3), 2.0, True),
    "airplane": ("airplane", (0.1, 0.25), 2.0, False),
    "bird": ("blob", (0.04, 0.1), 1.5, False),
    "chair": ("chair", (0.2, 0.4), 0.6, True),
    "table": ("table", (0.15, 0.3), 1.8, True),
    "sofa": ("sofa", (0.2, 0.35), 2.0, True),
    "bed": ("bed", (0.2, 0.35), 2.2, True),
    "cabinet": ("rect", (0.3, 0.55), 0.7, True),
    "shelf": ("rect", (0.35, 0.6), 0.5, True),
    "door": ("rect", (0.45, 0.65), 0.45, True),
    "window": ("rect", (0.15, 0.3), 1.2, False),
    "painting": ("rect", (0.1, 0.25), 1.3, False),
    "mirror": ("ellipse", (0.12, 0.25), 0.7, False),
    "clock": ("circle", (0.06, 0.12), 1.0, False),
    "tv": ("rect", (0.12, 0.25), 1.6, False),
    "lamp": ("lamp", (0.2, 0.4), 0.5, True),
    "bottle": ("bottle", (0.06, 0.14), 0.4, False),
    "plant": ("plant", (0.15, 0.35), 0.8, True),
    "box": ("rect", (0.08, 0.2), 1.2, True),
    "pole": ("pole", (0.4, 0.8), 0.04, True),
    "sign": ("sign", (0.06, 0.12), 1.0, False),
    "stop sign": ("octagon", (0.06, 0.12), 1.0, False),
    "traffic light": ("light", (0.1, 0.18), 0.35, False),
    "tree": ("tree", (0.35, 0.7), 0.7, True),
    "fence": ("rect", (0.08, 0.15), 3.0, True),
    "bench": ("table", (0.08, 0.15), 2.5, True),
}
OUTDOOR = dict(top=["sky"], back=["building", "tree", "mountain", "house", "skyscraper"],
               ground=["road", "grass", "sidewalk", "earth", "sand", "water", "snow"],
               things=["person", "person", "car", "bus", "truck", "bicycle", "motorbike", "dog", "cat",
                       "horse", "cow", "sheep", "boat", "airplane", "bird", "pole", "sign", "stop sign",
                       "traffic light", "tree", "fence", "bench", "plant"])
INDOOR = dict(top=["ceiling"], back=["wall", "wall", "curtain"], ground=["floor", "floor", "rug"],
              things=["person", "chair", "chair", "table", "sofa", "bed", "cabinet", "shelf", "door",
                      "window", "painting", "mirror", "clock", "tv", "lamp", "bottle", "plant", "box",
                      "cat", "dog"])


def _thing_polygons(concept, x, foot, h, w, rng, flip):
    kind = THING_SHAPES[concept][0]
    if kind in TEMPLATES:
        return [place(TEMPLATES[kind], x - w / 2, foot - h, w, h, flip=flip)]
    cx, cy = x, foot - h / 2
    if kind == "circle":
        return [regular_polygon(cx, cy, h / 2, 24)]
    if kind == "octagon":
        return [regular_polygon(cx, cy, h / 2, 8, np.pi / 8)]
    if kind == "ellipse":
        return [[(cx + w / 2 * np.cos(a), cy + h / 2 * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 24, False)]]
    if kind == "blob":
        return [blob(cx, cy, w / 2, h / 2, rng)]
    if kind == "sign":
        return [regular_polygon(cx, cy, h / 2, int(rng.choice([3, 4, 24])), np.pi / 2)]
    if kind == "light":
        return [place(TEMPLATES["rect"], x - w / 2, foot - h, w, h)]
    if kind == "pole":
        return [place(TEMPLATES["rect"], x - max(1.0, w / 2), foot - h, max(2.0, w), h)]
    if kind == "plant":
        return [place(TEMPLATES["trapezoid"], x - w * 0.25, foot - h * 0.3, w * 0.5, h * 0.3, flip=True),
                blob(x, foot - h * 0.62, w / 2, h * 0.38, rng)]
    if kind == "tree":
        return [place(TEMPLATES["rect"], x - w * 0.06, foot - h * 0.5, w * 0.12, h * 0.5),
                blob(x, foot - h * 0.68, w / 2, h * 0.32, rng, n=18)]
    raise ValueError(f"unknown thing shape {kind!r} for {concept!r}")


def generic_scene(rng, H, W, vocab, other=None, num_things=(2, 7)):
    """
    Indoor or outdoor scene: a top band (sky/ceiling), a back band (buildings, trees,
    mountains / walls), a ground band, some unlabeled "other" blobs, then things sorted by depth.

    Args:
        vocab (dict): concept -> dataset label; concepts not in it are drawn as ``other``.
        other (callable or None): rng -> label for pixels of classes the dataset does not have
            (ADE20K: 0, PASCAL-Context: an id outside the 59 classes, COCO: None).
    """
    def label(concept):
        return vocab[concept] if concept in vocab else (other(rng) if other else None)

    s = SceneBuilder(rng, H, W)
    roles = OUTDOOR if rng.random() < 0.6 else INDOOR
    indoor = roles is INDOOR
    hz = H * rng.uniform(0.3, 0.55)
    top = str(rng.choice(roles["top"]))
    s.add(label(top), top, [(0, 0), (W - 1, 0)] + wavy_line(hz + 4, 0 if indoor else 3, W, rng)[::-1])
    # back band, in vertical slices
    ceiling = H * rng.uniform(0.12, 0.25) if indoor else 0
    x = 0.0
    while x < W - 1:
        w = W * rng.uniform(0.2, 0.6)
        concept = str(rng.choice(roles["back"]))
        if indoor:
            poly = [(x, ceiling), (x + w, ceiling), (x + w, hz + 4), (x, hz + 4)]
        elif concept in ("mountain", "tree"):
            ridge = wavy_line(hz - H * rng.uniform(0.1, 0.25), H * 0.06, W, rng, n=16)
            ridge = [(px, py) for px, py in ridge if x - W / 16 <= px <= x + w + W / 16]
            poly = ridge + [(x + w, hz + 4), (x, hz + 4)]
        else:
            t = hz - H * rng.uniform(0.1, 0.3)
            poly = [(x, t), (x + w, t), (x + w, hz + 4), (x, hz + 4)]
        s.add(label(concept), concept, poly)
        x += w
    # ground band, split by a slanted line
    g = wavy_line(hz, 0 if indoor else 2, W, rng)
    first = str(rng.choice(roles["ground"]))
    s.add(label(first), first, g + [(W - 1, H - 1), (0, H - 1)])
    if rng.random() < 0.6:
        second = str(rng.choice(roles["ground"]))
        xa, xb = W * rng.uniform(0.1, 0.9), W * rng.uniform(-0.5, 1.5)
        s.add(label(second), second, [(xa, hz), (W - 1, hz), (W - 1, H - 1), (xb, H - 1)])
    for _ in range(rng.integers(0, 3)):  # clutter of unknown classes
        r = H * rng.uniform(0.03, 0.1)
        s.add(other(rng) if other else None, f"other{int(rng.integers(1000))}",
              blob(W * rng.uniform(0, 1), H * rng.uniform(0.2, 1), r * rng.uniform(0.7, 2), r, rng))
    # things, far to near
    things = []
    for _ in range(rng.integers(*num_things)):
        concept = str(rng.choice(roles["things"]))
        _, (hmin, hmax), aspect, grounded = THING_SHAPES[concept]
        foot = hz + (H - 1 - hz) * rng.uniform(0.15, 1.0) if grounded else H * rng.uniform(0.15, hz / H + 0.1)
        depth_scale = 0.5 + 0.5 * (foot - hz) / (H - hz) if grounded else 1.0
        h = H * rng.uniform(hmin, hmax) * depth_scale
        if not grounded:
            foot += h / 2
        w = h * aspect * rng.uniform(0.85, 1.15)
        x = W * rng.uniform(0.05, 0.95)
        things.append((foot, concept, _thing_polygons(concept, x, foot, h, w, rng, rng.random() < 0.5)))
    for foot, concept, polys in sorted(things, key=lambda t: t[0]):
        s.add(label(concept), concept, *polys)
    return s.shapes


# ---------------------------------------------------------------------------------------------
# Textures
# ---------------------------------------------------------------------------------------------
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


def _save_rgb(path, rgb, jpeg_quality=None):
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if jpeg_quality else []
    if not cv2.imwrite(path, np.ascontiguousarray(rgb[..., ::-1]), params):
        raise OSError(f"could not write {path}")


# ---------------------------------------------------------------------------------------------
# Dataset writers
# ---------------------------------------------------------------------------------------------
CITYSCAPES_CITIES = {"train": ("aachen", "bochum", "bremen"), "val": ("frankfurt", "lindau")}


def write_cityscapes(root, seed, num_train, num_val, size=(256, 512)):
    """Cityscapes layout (leftImg8bit + gtFine polygons/instanceIds/labelIds, as the release ships
    them), then prepare_cityscapes (which adds labelTrainIds and keeps the labelIds)."""
    from cityscapesscripts.helpers.labels import name2label

    H, W = size
    base = os.path.join(root, "cityscapes")
    for split, count in (("train", num_train), ("val", num_val)):
        cities = CITYSCAPES_CITIES[split]
        for i in range(count):
            city = cities[i % len(cities)]
            stem = f"{city}_{i // len(cities):06d}_000019"
            img_dir = os.path.join(base, "leftImg8bit", split, city)
            gt_dir = os.path.join(base, "gtFine", split, city)
            os.makedirs(img_dir, exist_ok=True)
            os.makedirs(gt_dir, exist_ok=True)
            rng = _rng(seed, "cityscapes", split, i)
            shapes = street_scene(rng, H, W)
            objmap = rasterize(shapes, H, W)
            _save_rgb(os.path.join(img_dir, f"{stem}_leftImg8bit.png"), render_image(shapes, objmap, rng))
            annotation = {"imgHeight": H, "imgWidth": W,
                          "objects": [{"label": s.label, "polygon": s.polygons[0]} for s in shapes]}
            with open(os.path.join(gt_dir, f"{stem}_gtFine_polygons.json"), "w") as f:
                json.dump(annotation, f, indent=1)
            # instanceIds: labelId * 1000 + k for classes with instances, labelId otherwise
            lut = np.zeros(len(shapes) + 1, np.int64)
            counts = {}
            for idx, shape in enumerate(shapes, start=1):
                label = name2label[shape.label]
                if label.hasInstances:
                    k = counts.get(label.id, 0)
                    counts[label.id] = k + 1
                    lut[idx] = label.id * 1000 + k
                else:
                    lut[idx] = label.id
            instance_ids = lut[objmap].astype(np.uint16)
            if not cv2.imwrite(os.path.join(gt_dir, f"{stem}_gtFine_instanceIds.png"), instance_ids):
                raise OSError(f"could not write instanceIds for {stem}")
            # labelIds ship with the release too (the official evaluation's ground truth)
            label_ids = np.where(instance_ids >= 1000, instance_ids // 1000, instance_ids).astype(np.uint8)
            Image.fromarray(label_ids).save(os.path.join(gt_dir, f"{stem}_gtFine_labelIds.png"))
    _load_sibling("prepare_cityscapes").prepare_cityscapes(base, ("train", "val"))
    return base


def _ade_vocab():
    from detectron2.data.datasets.builtin_meta import ADE20K_SEM_SEG_CATEGORIES

    index = {name.split(",")[0].strip(): i + 1 for i, name in enumerate(ADE20K_SEM_SEG_CATEGORIES)}
    aliases = {"sign": "signboard", "stop sign": "signboard", "airplane": "plane", "dog": "animal",
               "cat": "animal", "horse": "animal", "cow": "animal", "sheep": "animal", "bird": "animal",
               "motorbike": "minibike"}
    concepts = set(THING_SHAPES) | {c for roles in (OUTDOOR, INDOOR) for k in ("top", "back", "ground")
                                    for c in roles[k]}
    vocab = {c: index[aliases.get(c, c)] for c in concepts if aliases.get(c, c) in index}
    return vocab


def write_ade20k(root, seed, num_train, num_val):
    """ADEChallengeData2016 layout (0 = other, 1..150), then prepare_ade20k."""
    base = os.path.join(root, "ADEChallengeData2016")
    vocab = _ade_vocab()
    for split, folder, prefix, count in (("train", "training", "ADE_train", num_train),
                                         ("val", "validation", "ADE_val", num_val)):
        img_dir = os.path.join(base, "images", folder)
        ann_dir = os.path.join(base, "annotations", folder)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(count):
            rng = _rng(seed, "ade20k", split, i)
            H, W = int(rng.integers(240, 321)), int(rng.integers(320, 401))
            shapes = generic_scene(rng, H, W, vocab, other=lambda r: 0)
            objmap = rasterize(shapes, H, W)
            labels = np.array([0] + [s.label for s in shapes], np.uint8)[objmap]
            name = f"{prefix}_{i + 1:08d}"
            _save_rgb(os.path.join(img_dir, f"{name}.jpg"), render_image(shapes, objmap, rng), 90)
            Image.fromarray(labels).save(os.path.join(ann_dir, f"{name}.png"))
    _load_sibling("prepare_ade20k").prepare_ade20k(base)
    return base


def _pascal_context_vocab():
    from apd.data.datasets.pascal_context import PASCAL_CONTEXT_59_CLASSES, PASCAL_CONTEXT_59_SOURCE_IDS

    index = dict(zip(PASCAL_CONTEXT_59_CLASSES, PASCAL_CONTEXT_59_SOURCE_IDS))
    aliases = {"tv": "tvmonitor", "plant": "pottedplant", "airplane": "aeroplane", "shelf": "shelves",
               "earth": "ground", "lamp": "light", "stop sign": "sign", "house": "building",
               "skyscraper": "building"}
    concepts = set(THING_SHAPES) | {c for roles in (OUTDOOR, INDOOR) for k in ("top", "back", "ground")
                                    for c in roles[k]}
    vocab = {c: index[aliases.get(c, c)] for c in concepts if aliases.get(c, c) in index}
    # the other 400 categories of the 459 (which ones is arbitrary here) are background
    others = np.array(sorted(set(range(1, 460)) - set(PASCAL_CONTEXT_59_SOURCE_IDS)))
    return vocab, lambda rng: int(others[rng.integers(len(others))])


def write_pascal_context(root, seed, num_train, num_val):
    """PASCAL-Context release layout (VOC JPEGImages, trainval/*.mat, split files), then
    prepare_pascal_context into <root>/pascal_context."""
    src = os.path.join(root, "VOCdevkit", "VOC2010")
    img_dir, mat_dir = os.path.join(src, "JPEGImages"), os.path.join(src, "trainval")
    split_dir = os.path.join(src, "ImageSets", "SegmentationContext")
    for d in (img_dir, mat_dir, split_dir):
        os.makedirs(d, exist_ok=True)
    vocab, other = _pascal_context_vocab()
    for split, year, count in (("train", 2008, num_train), ("val", 2009, num_val)):
        ids = []
        for i in range(count):
            rng = _rng(seed, "pascal_context", split, i)
            H, W = int(rng.integers(240, 301)), int(rng.integers(300, 381))
            shapes = generic_scene(rng, H, W, vocab, other=other)
            objmap = rasterize(shapes, H, W)
            label_map = np.array([0] + [s.label for s in shapes], np.uint16)[objmap]
            image_id = f"{year}_{i + 1:06d}"
            _save_rgb(os.path.join(img_dir, f"{image_id}.jpg"), render_image(shapes, objmap, rng), 90)
            scipy.io.savemat(os.path.join(mat_dir, f"{image_id}.mat"), {"LabelMap": label_map},
                             do_compression=True)
            ids.append(image_id)
        with open(os.path.join(split_dir, f"{split}.txt"), "w") as f:
            f.write("".join(f"{image_id}\n" for image_id in ids))
    dst = os.path.join(root, "pascal_context")
    _load_sibling("prepare_pascal_context").prepare_pascal_context(src, dst)
    return dst


# A subset of COCO's categories (real ids) that the scenes draw as instances.
COCO_VOCAB = {"person": 1, "bicycle": 2, "car": 3, "motorbike": 4, "airplane": 5, "bus": 6, "truck": 8,
              "boat": 9, "traffic light": 10, "stop sign": 13, "bench": 15, "bird": 16, "cat": 17,
              "dog": 18, "horse": 19, "sheep": 20, "cow": 21, "bottle": 44, "chair": 62, "sofa": 63,
              "plant": 64, "bed": 65, "table": 67, "tv": 72, "clock": 85}


def coco_polygons(mask):
    """COCO polygons ([x0, y0, x1, y1, ...], at least 3 points each) of a binary mask's outer contours."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        c = cv2.approxPolyDP(c, 0.8, True).reshape(-1, 2)
        if len(c) >= 3 and cv2.contourArea(c.astype(np.float32)) >= 4:
            polys.append([float(v) + 0.5 for v in c.reshape(-1)])  # pixel centres
    return polys


def write_coco(root, seed, num_train, num_val, min_area=64):
    """COCO 2017 layout: images + instances json (boxes, polygons, all 80 categories)."""
    from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES

    base = os.path.join(root, "coco")
    os.makedirs(os.path.join(base, "annotations"), exist_ok=True)
    categories = [{"supercategory": "object", "id": c["id"], "name": c["name"]}
                  for c in COCO_CATEGORIES if c["isthing"]]
    names = {c["id"]: c["name"] for c in categories}
    coco_names = {"motorbike": "motorcycle", "sofa": "couch", "plant": "potted plant", "table": "dining table"}
    for concept, cid in COCO_VOCAB.items():
        assert names[cid] == coco_names.get(concept, concept), (concept, cid, names[cid])
    for split, first_id, count in (("train", 1, num_train), ("val", 100001, num_val)):
        img_dir = os.path.join(base, f"{split}2017")
        os.makedirs(img_dir, exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            rng = _rng(seed, "coco", split, i)
            H, W = int(rng.integers(240, 321)), int(rng.integers(320, 428))
            shapes = generic_scene(rng, H, W, COCO_VOCAB, other=None, num_things=(3, 9))
            objmap = rasterize(shapes, H, W)
            image_id = first_id + i
            file_name = f"{image_id:012d}.jpg"
            _save_rgb(os.path.join(img_dir, file_name), render_image(shapes, objmap, rng), 90)
            images.append({"license": 1, "file_name": file_name, "height": H, "width": W, "id": image_id})
            for idx, shape in enumerate(shapes, start=1):
                if shape.label is None:
                    continue
                mask = objmap == idx
                area = int(mask.sum())
                polys = coco_polygons(mask) if area >= min_area else []
                if not polys:
                    continue
                ys, xs = np.nonzero(mask)
                annotations.append({
                    "segmentation": polys, "area": float(area), "iscrowd": 0, "image_id": image_id,
                    "bbox": [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
                             float(ys.max() - ys.min() + 1)],
                    "category_id": int(shape.label), "id": len(annotations) + first_id * 100,
                })
        data = {"info": {"description": "APD synthetic demo data in COCO format", "version": "1.0",
                         "year": 2017},
                "licenses": [{"id": 1, "name": "CC BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"}],
                "images": images, "annotations": annotations, "categories": categories}
        with open(os.path.join(base, "annotations", f"instances_{split}2017.json"), "w") as f:
            json.dump(data, f)
    return base


WRITERS = {"cityscapes": write_cityscapes, "ade20k": write_ade20k,
           "pascal_context": write_pascal_context, "coco": write_coco}


def generate(root, seed=0, num_train=24, num_val=8, datasets=ALL_DATASETS):
    """Write the requested datasets under ``root``; returns {dataset: folder}."""
    unknown = set(datasets) - set(WRITERS)
    if unknown:
        raise ValueError(f"Unknown dataset(s) {sorted(unknown)}; choose from {list(WRITERS)}")
    return {name: WRITERS[name](root, seed, num_train, num_val) for name in datasets}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="datasets/demo", help="output folder (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-train", type=int, default=24)
    parser.add_argument("--num-val", type=int, default=8)
    parser.add_argument("--datasets", default=",".join(ALL_DATASETS),
                        help="comma-separated subset of: " + ",".join(ALL_DATASETS))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        out = generate(args.root, args.seed, args.num_train, args.num_val, args.datasets.split(","))
    except ValueError as e:
        sys.exit(f"error: {e}")
    for name, folder in out.items():
        print(f"{name}: {folder}")
    print(f"Done in {time.perf_counter() - start:.1f}s. Use it with DETECTRON2_DATASETS={args.root}")


if __name__ == "__main__":
    main()

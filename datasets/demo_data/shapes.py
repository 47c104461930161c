"""Polygon geometry, the class templates, the :class:`Shape` of a scene and its rasterisation."""
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw


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


# Scenes are ordered lists of shapes (later shapes cover earlier ones, as in Cityscapes' json).
@dataclass
class Shape:
    label: object  # dataset label: Cityscapes name, ADE / PASCAL-Context id, COCO category id or None
    style: str  # texture concept, see STYLES
    polygons: list  # list of integer polygons [[x, y], ...]
    seed: int  # per-instance texture stream
    params: dict = field(default_factory=dict)


def rasterize(shapes, height, width):
    """int32 H×W map: 0 where no shape, i+1 where shape i is on top (PIL's polygon fill)."""
    canvas = Image.new("I", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for i, shape in enumerate(shapes, start=1):
        for poly in shape.polygons:
            draw.polygon([tuple(p) for p in poly], fill=i)
    return np.asarray(canvas, dtype=np.int32)

"""Scene composition: street scenes (Cityscapes names) and indoor / outdoor scenes (any vocabulary)."""
import zlib

import numpy as np

from .shapes import TEMPLATES, Shape, blob, place, regular_polygon, to_int_polygon, wavy_line


def rng_for(seed, *keys):
    """Independent random stream for (seed, dataset, split, index)."""
    words = [seed] + [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
    return np.random.default_rng(words)


class SceneBuilder:
    def __init__(self, rng, height, width):
        self.rng, self.H, self.W = rng, height, width
        self.shapes = []

    def add(self, label, style, *polygons, **params):
        polys = [p for p in (to_int_polygon(q, self.W, self.H) for q in polygons) if p is not None]
        if polys:
            self.shapes.append(Shape(label, style, polys, int(self.rng.integers(2**31)), params))


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

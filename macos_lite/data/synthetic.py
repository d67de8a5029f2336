"""The embedded synthetic dataset: procedural images of object categories, with ground truth.

A small, offline stand-in for the semantic matching and co-segmentation benchmarks (PF-WILLOW,
TSS): every image shows one *instance* of a category (car, plane, fish, quadruped, bottle) in its
own pose, on a cluttered background, with a foreground mask and ten named keypoints per category.
Two images of the same category form a matching pair; the ground truth is for evaluation only.

How an image is made
--------------------
1. A category *builder* draws the instance: part proportions (wheel size, leg length, ...) and
   colours from the category's palette. The object is a list of parts (ellipses, rounded boxes,
   capsules, convex polygons) in a canonical *object frame* (x to the front, y down, about
   2 units long), and its keypoints are part landmarks in the same frame.
2. A pose (scale, rotation of up to 30 degrees, aspect, shear, translation) maps the object frame
   to normalised image coordinates; a small smooth random deformation adds the non-rigid change.
   Together: ``p_image = pose(p_object)`` with ``p_object + d(p_object) = p_canonical``.
3. Rendering runs the map backwards: every pixel is taken into the canonical frame and tested
   against the parts' signed distances. The mask is therefore exact (pixel centres inside a
   part), and keypoints are the exact forward map of the canonical landmarks.
4. The background (gradient, soft texture, distractor shapes) is painted first, the object on
   top, then global lighting and pixel noise.

So between two instances the keypoints move by an affine map (the two poses) plus a mild
non-affine residual (proportions, deformation): an affine/TPS model can align them, the identity
cannot. Image ``i`` is drawn from a random stream seeded by ``(seed, split, i)`` alone, so it never
depends on which other images were rendered, and the same seed gives the same scene at any size.

Taught in notebook 00 (setup and data).
"""

from __future__ import annotations

import colorsys
import functools
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch.utils.data import Dataset

CATEGORIES: tuple[str, ...] = ("car", "plane", "fish", "quadruped", "bottle")
NUM_KEYPOINTS = 10
KEYPOINT_NAMES: dict[str, tuple[str, ...]] = {
    "car": ("front_wheel", "rear_wheel", "headlight", "taillight", "front_bumper", "rear_bumper",
            "roof_front", "roof_rear", "windshield_base", "rear_window_base"),
    "plane": ("nose", "cockpit", "tail_end", "wing_root", "left_wingtip", "right_wingtip",
              "left_engine", "right_engine", "left_stabilizer_tip", "right_stabilizer_tip"),
    "fish": ("snout", "eye", "gill", "pectoral_fin", "dorsal_fin_tip", "pelvic_fin_tip",
             "anal_fin_tip", "tail_base", "tail_upper_tip", "tail_lower_tip"),
    "quadruped": ("nose", "eye", "ear_tip", "withers", "tail_base", "tail_tip",
                  "front_near_hoof", "front_far_hoof", "hind_near_hoof", "hind_far_hoof"),
    "bottle": ("cap_top_left", "cap_top_right", "neck_left", "neck_right", "shoulder_left",
               "shoulder_right", "label_top", "label_bottom", "base_left", "base_right"),
}
SPLITS: tuple[str, ...] = ("train", "val", "test")


# ----------------------------------------------------------------------------------------------
# Shapes: signed distance (negative inside, in the units of the frame they live in) and bounds.
# ----------------------------------------------------------------------------------------------

def _as_float(value):
    """Python floats (also inside tuples): numpy scalars would silently promote float32 to float64."""
    return tuple(_as_float(v) for v in value) if isinstance(value, (tuple, list)) else float(value)


class _Shape:
    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name, _as_float(getattr(self, f.name)))


def _rotate_into(x, y, cx, cy, angle):
    """Coordinates relative to ``(cx, cy)`` in a local frame rotated by ``angle`` (radians)."""
    c, s = math.cos(angle), math.sin(angle)
    dx, dy = x - cx, y - cy
    return c * dx + s * dy, -s * dx + c * dy


@dataclass(frozen=True)
class Ellipse(_Shape):
    """Ellipse of centre ``(cx, cy)`` and semi-axes ``(rx, ry)``, rotated by ``angle``."""

    cx: float
    cy: float
    rx: float
    ry: float
    angle: float = 0.0

    def sd(self, x, y):
        px, py = _rotate_into(x, y, self.cx, self.cy, self.angle)
        k0 = np.hypot(px / self.rx, py / self.ry)
        k1 = np.hypot(px / self.rx**2, py / self.ry**2)
        # first-order distance (k0 - 1) / |grad k0|; the centre (k1 = 0) is deep inside anyway
        ratio = np.divide(k0, k1, out=np.full_like(k0, min(self.rx, self.ry)), where=k1 > 0)
        return (k0 - 1.0) * ratio

    def bounds(self):
        c, s = math.cos(self.angle), math.sin(self.angle)
        hx, hy = math.hypot(self.rx * c, self.ry * s), math.hypot(self.rx * s, self.ry * c)
        return self.cx - hx, self.cy - hy, self.cx + hx, self.cy + hy


@dataclass(frozen=True)
class Box(_Shape):
    """Rectangle of half sizes ``(hx, hy)`` with corners rounded by ``radius``."""

    cx: float
    cy: float
    hx: float
    hy: float
    angle: float = 0.0
    radius: float = 0.0

    def sd(self, x, y):
        px, py = _rotate_into(x, y, self.cx, self.cy, self.angle)
        qx = np.abs(px) - (self.hx - self.radius)
        qy = np.abs(py) - (self.hy - self.radius)
        outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
        return outside + np.minimum(np.maximum(qx, qy), 0.0) - self.radius

    def bounds(self):
        c, s = abs(math.cos(self.angle)), abs(math.sin(self.angle))
        hx, hy = self.hx * c + self.hy * s, self.hx * s + self.hy * c
        return self.cx - hx, self.cy - hy, self.cx + hx, self.cy + hy


@dataclass(frozen=True)
class Capsule(_Shape):
    """All points within ``radius`` of the segment ``a -> b`` (limbs, tails, necks)."""

    a: tuple[float, float]
    b: tuple[float, float]
    radius: float

    def sd(self, x, y):
        (ax, ay), (bx, by) = self.a, self.b
        ex, ey = bx - ax, by - ay
        t = np.clip(((x - ax) * ex + (y - ay) * ey) / max(ex * ex + ey * ey, 1e-12), 0.0, 1.0)
        return np.hypot(x - ax - t * ex, y - ay - t * ey) - self.radius

    def bounds(self):
        (ax, ay), (bx, by), r = self.a, self.b, self.radius
        return min(ax, bx) - r, min(ay, by) - r, max(ax, bx) + r, max(ay, by) + r


@dataclass(frozen=True)
class Polygon(_Shape):
    """Convex polygon, vertices in either winding order (concave outlines = several parts)."""

    vertices: tuple[tuple[float, float], ...]

    def sd(self, x, y):
        v = self.vertices
        edges = list(zip(v, v[1:] + v[:1]))
        # +1 when counter-clockwise in (x, y) (shoelace formula): decides which side is outside
        winding = math.copysign(1.0, sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in edges))
        out = None
        for (x0, y0), (x1, y1) in edges:
            length = math.hypot(x1 - x0, y1 - y0)
            nx, ny = winding * (y1 - y0) / length, -winding * (x1 - x0) / length  # outward normal
            d = (x - x0) * nx + (y - y0) * ny
            out = d if out is None else np.maximum(out, d)  # exact distance inside, close outside
        return out

    def bounds(self):
        xs, ys = zip(*self.vertices)
        return min(xs), min(ys), max(xs), max(ys)


@dataclass(frozen=True)
class Part:
    """A shape with its paint: base colour, top-to-bottom shading, optional pattern, opacity.

    ``pattern`` is ``None``, ``("stripes", colour2, frequency, angle, phase)`` or
    ``("spots", colour2, frequency, phase_x, phase_y)``; patterns live in the part's frame, so
    they move and deform with the object.
    """

    shape: Ellipse | Box | Capsule | Polygon
    colour: np.ndarray
    shade: float = 0.25
    pattern: tuple | None = None
    opacity: float = 1.0

    def colour_at(self, x, y):
        """Colour field ``(h, w, 3)`` at frame coordinates ``x, y`` of shape ``(h, w)``."""
        x0, y0, x1, y1 = self.shape.bounds()
        t = (y - 0.5 * (y0 + y1)) / max(0.5 * (y1 - y0), 1e-6)  # -1 at the top, +1 at the bottom
        light = (1.0 - self.shade * t)[..., None]
        if self.pattern is None:
            return self.colour * light
        kind, colour2, freq = self.pattern[:3]
        if kind == "stripes":
            angle, phase = self.pattern[3:]
            wave = np.sin(2 * math.pi * freq * (x * math.cos(angle) + y * math.sin(angle)) + phase)
            mix = np.clip(3.0 * wave + 0.5, 0.0, 1.0)
        else:  # spots
            px, py = self.pattern[3:]
            wave = np.sin(2 * math.pi * freq * x + px) * np.sin(2 * math.pi * freq * y + py)
            mix = np.clip(4.0 * (wave - 0.45), 0.0, 1.0)
        return (self.colour + mix[..., None] * (colour2 - self.colour)) * light


# ----------------------------------------------------------------------------------------------
# Colours
# ----------------------------------------------------------------------------------------------

def _hsv(h, s, v) -> np.ndarray:
    """RGB (3,) float32 from hue (wraps), saturation and value (clipped to [0, 1])."""
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)),
                    dtype=np.float32)


def _palette_colour(rng, palette) -> np.ndarray:
    """One ``(h, s, v)`` entry of a category palette, jittered in hue, saturation and brightness."""
    h, s, v = palette[rng.integers(len(palette))]
    return _hsv(h + rng.uniform(-0.03, 0.03), s + rng.uniform(-0.1, 0.1), v + rng.uniform(-0.1, 0.1))


def _darker(colour, factor) -> np.ndarray:
    """The same hue, ``factor`` times as bright."""
    return (colour * factor).astype(np.float32)


def _stripes_or_spots(rng, colour2, p_stripes, p_spots, freq, angle=(-0.3, 0.3)):
    """A random pattern (or None) with the given probabilities.

    ``freq``: range of frequencies in cycles per unit; ``angle``: range of the stripes' normal
    (0: vertical bands across an object pointing along x, pi/2: horizontal lines).
    """
    u = rng.uniform()
    f = rng.uniform(*freq)
    if u < p_stripes:
        return ("stripes", colour2, f, rng.uniform(*angle), rng.uniform(0, 2 * np.pi))
    if u < p_stripes + p_spots:
        return ("spots", colour2, f, rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi))
    return None


def _toward(point, target, fraction):
    """``point`` moved ``fraction`` of the way to ``target`` (keeps tip keypoints inside a part)."""
    return tuple(p + fraction * (q - p) for p, q in zip(point, target))


def _centroid(*points):
    return tuple(np.mean(points, axis=0))


# ----------------------------------------------------------------------------------------------
# Categories. Object frame: x to the front of the object, y down; about 2 units long.
# Each builder returns (parts painted back to front, keypoints (10, 2) in the same frame).
# ----------------------------------------------------------------------------------------------

_CAR_PAINT = ((0.0, 0.8, 0.8), (0.6, 0.7, 0.75), (0.13, 0.85, 0.95), (0.33, 0.6, 0.55),
              (0.0, 0.03, 0.95), (0.6, 0.05, 0.72), (0.75, 0.5, 0.55), (0.08, 0.85, 0.9))


def _car(rng):
    half_len = rng.uniform(0.85, 1.0)
    half_h = rng.uniform(0.16, 0.24)
    wheel_r = rng.uniform(0.15, 0.21)
    wheel_x = rng.uniform(0.55, 0.68) * half_len
    cabin_h = rng.uniform(0.2, 0.3)
    base_y, top = -half_h + 0.03, -half_h - cabin_h
    base_front, base_rear = rng.uniform(0.3, 0.5) * half_len, rng.uniform(-0.75, -0.55) * half_len
    roof_front = base_front - rng.uniform(0.25, 0.4)
    roof_rear = base_rear + rng.uniform(0.08, 0.22)
    wheel_y = half_h * 0.8

    paint = _palette_colour(rng, _CAR_PAINT)
    glass = _hsv(0.58 + rng.uniform(-0.04, 0.04), rng.uniform(0.15, 0.35), rng.uniform(0.35, 0.6))
    tyre = _hsv(0.0, 0.0, rng.uniform(0.08, 0.18))
    hub = _hsv(0.0, 0.0, rng.uniform(0.6, 0.85))
    pattern = _stripes_or_spots(rng, _hsv(0, 0, 0.95), 0.2, 0.0, (0.8, 1.2))

    def front_edge(y):  # x of the windshield line at height y
        return base_front + (roof_front - base_front) * (y - base_y) / (top - base_y)

    def rear_edge(y):
        return base_rear + (roof_rear - base_rear) * (y - base_y) / (top - base_y)

    pillar = 0.5 * (roof_front + roof_rear) + rng.uniform(-0.05, 0.05)
    win_top, win_bot = top + 0.05, -half_h + 0.02
    parts = [
        Part(Polygon(((base_rear, base_y), (base_front, base_y), (roof_front, top), (roof_rear, top))),
             paint, 0.2),
        Part(Polygon(((pillar + 0.03, win_bot), (front_edge(win_bot) - 0.06, win_bot),
                      (front_edge(win_top) - 0.05, win_top), (pillar + 0.03, win_top))), glass, -0.3),
        Part(Polygon(((rear_edge(win_bot) + 0.06, win_bot), (pillar - 0.03, win_bot),
                      (pillar - 0.03, win_top), (rear_edge(win_top) + 0.05, win_top))), glass, -0.3),
        Part(Box(0.0, 0.0, half_len, half_h, radius=min(0.1, 0.6 * half_h)), paint, 0.35, pattern),
        Part(Ellipse(wheel_x, wheel_y, wheel_r, wheel_r), tyre, 0.1),
        Part(Ellipse(-wheel_x, wheel_y, wheel_r, wheel_r), tyre, 0.1),
        Part(Ellipse(wheel_x, wheel_y, 0.5 * wheel_r, 0.5 * wheel_r), hub, 0.3),
        Part(Ellipse(-wheel_x, wheel_y, 0.5 * wheel_r, 0.5 * wheel_r), hub, 0.3),
        Part(Ellipse(half_len - 0.06, -0.35 * half_h, 0.055, 0.04), _hsv(0.15, 0.3, 1.0), 0.0),
        Part(Box(-half_len + 0.035, -0.35 * half_h, 0.03, 0.05), _hsv(0.0, 0.9, 0.8), 0.0),
    ]
    keypoints = [
        (wheel_x, wheel_y), (-wheel_x, wheel_y),
        (half_len - 0.06, -0.35 * half_h), (-half_len + 0.035, -0.35 * half_h),
        (half_len - 0.04, 0.6 * half_h), (-half_len + 0.04, 0.6 * half_h),
        (roof_front - 0.01, top + 0.03), (roof_rear + 0.01, top + 0.03),
        (front_edge(-half_h) - 0.06, -half_h + 0.01), (rear_edge(-half_h) + 0.06, -half_h + 0.01),
    ]
    return parts, keypoints


_PLANE_BODY = ((0.0, 0.02, 0.95), (0.6, 0.06, 0.8), (0.58, 0.15, 0.88), (0.1, 0.05, 0.85))
_PLANE_ACCENT = ((0.0, 0.85, 0.8), (0.62, 0.8, 0.6), (0.12, 0.9, 0.95), (0.35, 0.7, 0.5), (0.8, 0.6, 0.6))


def _plane(rng):
    half_len = rng.uniform(0.85, 1.0)
    body_w = rng.uniform(0.08, 0.12)
    span = rng.uniform(0.7, 0.95)
    sweep = rng.uniform(0.05, 0.35)
    chord = rng.uniform(0.35, 0.5)
    wing_x = rng.uniform(-0.05, 0.15)
    tail_span = rng.uniform(0.22, 0.35)
    tail_sweep = rng.uniform(0.05, 0.15)

    body = _palette_colour(rng, _PLANE_BODY)
    wing = _darker(body, rng.uniform(0.8, 0.92))
    accent = _palette_colour(rng, _PLANE_ACCENT)
    canopy = _hsv(0.6, 0.4, rng.uniform(0.2, 0.35))
    stripe = _stripes_or_spots(rng, accent, 0.3, 0.0, (0.5, 0.8))

    lead, tip_lead = wing_x + 0.5 * chord, wing_x + 0.5 * chord - sweep
    tip_trail = tip_lead - rng.uniform(0.3, 0.5) * chord
    s_lead, s_tip_lead = -half_len + 0.3, -half_len + 0.3 - tail_sweep
    s_tip_trail = s_tip_lead - 0.08
    engine_x, engine_y = wing_x + 0.5 * chord - 0.4 * sweep + 0.02, 0.4 * span

    parts, wingtips, stab_tips, engines = [], [], [], []
    for side in (-1.0, 1.0):  # -1: left wing (up in the image when the nose points right)
        wing_poly = ((lead, 0.0), (tip_lead, side * span), (tip_trail, side * span),
                     (wing_x - 0.5 * chord, 0.0))
        stab_poly = ((s_lead, 0.0), (s_tip_lead, side * tail_span), (s_tip_trail, side * tail_span),
                     (-half_len + 0.05, 0.0))
        parts += [Part(Polygon(wing_poly), wing, 0.0), Part(Polygon(stab_poly), accent, 0.0)]
        wingtips.append(_toward((0.5 * (tip_lead + tip_trail), side * span), (wing_x, 0.0), 0.05))
        stab_tips.append(_toward((0.5 * (s_tip_lead + s_tip_trail), side * tail_span), (s_lead, 0.0), 0.1))
        engines.append((engine_x, side * engine_y))
    parts += [Part(Ellipse(x, y, 0.11, 0.045), accent, 0.3) for x, y in engines]
    parts += [
        Part(Ellipse(0.0, 0.0, half_len, body_w), body, 0.5, stripe),
        Part(Capsule((-half_len + 0.08, 0.0), (-half_len + 0.3, 0.0), 0.025), accent, 0.0),
        Part(Ellipse(0.72 * half_len, 0.0, 0.09, 0.6 * body_w), canopy, 0.3),
    ]
    keypoints = [(half_len - 0.04, 0.0), (0.72 * half_len, 0.0), (-half_len + 0.06, 0.0), (lead - 0.03, 0.0),
                 *wingtips, *engines, *stab_tips]
    return parts, keypoints


_FISH_BODY = ((0.07, 0.9, 0.95), (0.14, 0.85, 0.95), (0.55, 0.7, 0.8), (0.6, 0.1, 0.8),
              (0.98, 0.75, 0.85), (0.3, 0.6, 0.65), (0.85, 0.5, 0.75))


def _fish(rng):
    half_len = rng.uniform(0.6, 0.8)
    half_h = rng.uniform(0.24, 0.4)
    tail_len, tail_spread = rng.uniform(0.28, 0.42), half_h * rng.uniform(0.8, 1.1)
    fin_h = rng.uniform(0.12, 0.28)
    fin_x = rng.uniform(-0.15, 0.15) * half_len

    body = _palette_colour(rng, _FISH_BODY)
    fin = _hsv(rng.uniform(), rng.uniform(0.5, 0.9), rng.uniform(0.5, 0.95))
    bands = _palette_colour(rng, _FISH_BODY + ((0.0, 0.0, 0.15), (0.0, 0.0, 0.95)))
    pattern = _stripes_or_spots(rng, bands, 0.5, 0.25, (1.8, 3.0))

    def top(x, inset=0.85):  # y of the (inset) upper outline of the body at x
        return -inset * half_h * np.sqrt(max(1.0 - (x / half_len) ** 2, 0.0))

    base = (-half_len + 0.08, 0.0)
    upper_tip = (-half_len - tail_len, -tail_spread)
    lower_tip = (-half_len - tail_len * rng.uniform(0.9, 1.1), tail_spread * rng.uniform(0.85, 1.15))
    notch = (-half_len - 0.55 * tail_len, 0.0)
    upper_tail = ((base[0], -0.06), upper_tip, notch)
    lower_tail = ((base[0], 0.06), lower_tip, notch)

    dorsal_tip = (fin_x - 0.25 * half_len - rng.uniform(0.0, 0.15), top(fin_x, 1.0) - fin_h)
    dorsal_root = (fin_x - 0.25 * half_len, fin_x + 0.2 * half_len)
    dorsal = ((dorsal_root[0], top(dorsal_root[0])), (dorsal_root[1], top(dorsal_root[1])), dorsal_tip)
    pelvic_tip = (0.0, -top(0.15 * half_len, 1.0) + 0.6 * fin_h)
    pelvic = ((0.05 * half_len, -top(0.05 * half_len)), (0.25 * half_len, -top(0.25 * half_len)), pelvic_tip)
    anal_tip = (-0.6 * half_len, -top(-0.45 * half_len, 1.0) + 0.5 * fin_h)
    anal = ((-0.55 * half_len, -top(-0.55 * half_len)), (-0.3 * half_len, -top(-0.3 * half_len)), anal_tip)

    eye = (0.62 * half_len, -0.3 * half_h)
    eye_r = rng.uniform(0.045, 0.065)
    gill_x = 0.42 * half_len
    pectoral = (0.2 * half_len, 0.25 * half_h)
    # where the body narrows into the tail
    peduncle = ((-0.5 * half_len, -0.6 * half_h), (-0.5 * half_len, 0.6 * half_h),
                (base[0] - 0.04, 0.07), (base[0] - 0.04, -0.07))
    parts = [Part(Polygon(p), fin, 0.2, opacity=0.9) for p in (upper_tail, lower_tail, dorsal, pelvic, anal)]
    parts += [
        Part(Polygon(peduncle), body, 0.45, pattern),
        Part(Ellipse(0.0, 0.0, half_len, half_h), body, 0.45, pattern),
        Part(Capsule((gill_x + 0.03, -0.5 * half_h), (gill_x, 0.5 * half_h), 0.013), _darker(body, 0.55),
             0.0),
        Part(Ellipse(*pectoral, 0.12, 0.05, 0.4), fin, 0.1, opacity=0.9),
        Part(Ellipse(eye[0] - 0.01, eye[1], eye_r, eye_r), _hsv(0.0, 0.0, 0.97), 0.0),
        Part(Ellipse(*eye, 0.55 * eye_r, 0.55 * eye_r), _hsv(0.0, 0.0, 0.05), 0.0),
    ]
    keypoints = [
        (half_len - 0.04, 0.0), eye, (gill_x + 0.015, 0.0), pectoral,
        _toward(dorsal_tip, _centroid(*dorsal), 0.35), _toward(pelvic_tip, _centroid(*pelvic), 0.35),
        _toward(anal_tip, _centroid(*anal), 0.35), base,
        _toward(upper_tip, _centroid(*upper_tail), 0.3), _toward(lower_tip, _centroid(*lower_tail), 0.3),
    ]
    return parts, keypoints


_COAT = ((0.07, 0.6, 0.45), (0.08, 0.45, 0.7), (0.0, 0.0, 0.15), (0.1, 0.1, 0.9), (0.05, 0.7, 0.3),
         (0.0, 0.0, 0.55))


def _quadruped(rng):
    half_len = rng.uniform(0.5, 0.65)
    half_h = rng.uniform(0.18, 0.26)
    leg_len = rng.uniform(0.42, 0.62)
    leg_r = rng.uniform(0.045, 0.07)
    head = (half_len + rng.uniform(0.05, 0.2), -half_h - rng.uniform(0.08, 0.28))
    head_r = rng.uniform(0.11, 0.15)
    snout_len, snout_dir = rng.uniform(0.1, 0.2), rng.uniform(0.3, 0.8)
    tail_len, tail_dir = rng.uniform(0.25, 0.45), rng.uniform(0.4, 1.3)

    coat = _palette_colour(rng, _COAT)
    patch = _palette_colour(rng, _COAT)
    pattern = _stripes_or_spots(rng, patch, 0.1, 0.35, (1.2, 2.2))
    hoof = _hsv(0.08, 0.3, rng.uniform(0.1, 0.25))
    far = _darker(coat, 0.7)

    def leg(x):  # top inside the body, bottom (hoof) after a slight random stance angle
        a = rng.uniform(-0.25, 0.25)
        return (x, 0.3 * half_h), (x + leg_len * np.sin(a), 0.3 * half_h + leg_len * np.cos(a))

    front_near, front_far = leg(0.62 * half_len), leg(0.5 * half_len)
    hind_near, hind_far = leg(-0.62 * half_len), leg(-0.5 * half_len)
    tail_base = (-0.9 * half_len, -0.45 * half_h)
    tail_tip = (tail_base[0] - tail_len * np.cos(tail_dir), tail_base[1] + tail_len * np.sin(tail_dir))
    nose = (head[0] + snout_len * np.cos(snout_dir), head[1] + snout_len * np.sin(snout_dir))
    ear_base = ((head[0] - 0.6 * head_r, head[1] - 0.55 * head_r),
                (head[0] + 0.1 * head_r, head[1] - 0.8 * head_r))
    ear_tip = (head[0] - head_r * rng.uniform(0.1, 0.6), head[1] - head_r - rng.uniform(0.05, 0.12))
    eye = (head[0] + 0.25 * head_r, head[1] - 0.25 * head_r)

    parts = [Part(Capsule(*limb, leg_r), far, 0.2) for limb in (front_far, hind_far)]
    parts += [Part(Capsule(limb[1], (limb[1][0] + 0.04, limb[1][1]), leg_r * 1.1), hoof, 0.0)
              for limb in (front_far, hind_far)]
    parts += [
        Part(Capsule(tail_base, tail_tip, rng.uniform(0.025, 0.045)), _darker(coat, 0.85), 0.1),
        Part(Ellipse(0.0, 0.0, half_len, half_h), coat, 0.4, pattern),
        Part(Capsule((0.7 * half_len, -0.1 * half_h), head, rng.uniform(0.08, 0.11)), coat, 0.3, pattern),
        Part(Polygon((*ear_base, ear_tip)), _darker(coat, 0.8), 0.1),
        Part(Ellipse(*head, 1.1 * head_r, 0.85 * head_r, 0.3), coat, 0.3),
        Part(Capsule(head, nose, 0.55 * head_r), _darker(coat, 0.92), 0.2),
        Part(Ellipse(*eye, 0.025, 0.025), _hsv(0.0, 0.0, 0.05), 0.0),
    ]
    parts += [Part(Capsule(*limb, leg_r), coat, 0.2) for limb in (front_near, hind_near)]
    parts += [Part(Capsule(limb[1], (limb[1][0] + 0.04, limb[1][1]), leg_r * 1.1), hoof, 0.0)
              for limb in (front_near, hind_near)]
    keypoints = [nose, eye, _toward(ear_tip, _centroid(*ear_base, ear_tip), 0.35),
                 (0.45 * half_len, -half_h + 0.05), tail_base, tail_tip,
                 front_near[1], front_far[1], hind_near[1], hind_far[1]]
    return parts, keypoints


_GLASS = ((0.33, 0.7, 0.45), (0.08, 0.8, 0.4), (0.58, 0.6, 0.6), (0.5, 0.15, 0.85), (0.95, 0.5, 0.5))


def _bottle(rng):
    half_w = rng.uniform(0.28, 0.4)
    base_y = 0.95
    shoulder_y = rng.uniform(-0.15, 0.15)
    shoulder_h = rng.uniform(0.15, 0.35)
    neck_w = rng.uniform(0.07, 0.11)
    neck_top = rng.uniform(-0.8, -0.65)
    cap_top = neck_top - rng.uniform(0.1, 0.18)
    label_top = rng.uniform(shoulder_y + 0.05, 0.35)
    label_bottom = rng.uniform(max(label_top + 0.25, 0.45), 0.8)
    corner = rng.uniform(0.04, 0.12)

    glass = _palette_colour(rng, _GLASS)
    cap = _hsv(rng.uniform(), rng.uniform(0.4, 0.9), rng.uniform(0.4, 0.95))
    label = _hsv(rng.uniform(), rng.uniform(0.0, 0.8), rng.uniform(0.5, 1.0))
    # horizontal lines of "text" or a dotted print
    label_pattern = _stripes_or_spots(rng, _darker(label, 0.5), 0.5, 0.1, (4.0, 7.0),
                                      angle=(0.5 * np.pi, 0.5 * np.pi))
    cap_w = 1.2 * neck_w

    parts = [
        Part(Box(0.0, 0.5 * (shoulder_y + base_y), half_w, 0.5 * (base_y - shoulder_y), radius=corner),
             glass, 0.2),
        Part(Ellipse(0.0, shoulder_y, half_w, shoulder_h), glass, 0.2),
        Part(Box(0.0, 0.5 * (neck_top + shoulder_y - 0.7 * shoulder_h), neck_w,
                 0.5 * (shoulder_y - 0.7 * shoulder_h - neck_top)), glass, 0.2),
        Part(Box(0.0, neck_top, 1.15 * neck_w, 0.02), _darker(glass, 0.8), 0.0),
        Part(Box(0.0, 0.5 * (cap_top + neck_top), cap_w, 0.5 * (neck_top - cap_top), radius=0.02), cap, 0.3),
        Part(Box(0.0, 0.5 * (label_top + label_bottom), half_w, 0.5 * (label_bottom - label_top)), label, 0.1,
             label_pattern),
        Part(Capsule((-0.55 * half_w, shoulder_y), (-0.55 * half_w, base_y - 0.12), 0.03),  # reflection
             _hsv(0.0, 0.0, 1.0), 0.0, opacity=0.35),
    ]
    neck_mid = 0.5 * (neck_top + shoulder_y - shoulder_h)
    keypoints = [(-cap_w + 0.03, cap_top + 0.03), (cap_w - 0.03, cap_top + 0.03),
                 (-neck_w + 0.02, neck_mid), (neck_w - 0.02, neck_mid),
                 (-half_w + 0.03, shoulder_y + 0.03), (half_w - 0.03, shoulder_y + 0.03),
                 (0.0, label_top + 0.03), (0.0, label_bottom - 0.03),
                 (-half_w + 0.05, base_y - 0.05), (half_w - 0.05, base_y - 0.05)]
    return parts, keypoints


_BUILDERS = {"car": _car, "plane": _plane, "fish": _fish, "quadruped": _quadruped, "bottle": _bottle}


# ----------------------------------------------------------------------------------------------
# Pose and non-rigid deformation
# ----------------------------------------------------------------------------------------------

class _Placement:
    """Object frame -> normalised image coordinates: an affine pose and a smooth deformation.

    A pixel at normalised ``n`` shows the canonical point ``c = v + d(v)`` with
    ``v = A^-1 (n - t) + o`` (``o``: the object's centre) and
    ``d(v) = sum_k a_k sin(w_k . v + phi_k)``, a few smooth waves whose summed slope is at most
    0.6, so the deformation is invertible (and its inverse a contraction to iterate).
    """

    def __init__(self, rng, bounds):
        x0, y0, x1, y1 = bounds
        self.origin = np.array([0.5 * (x0 + x1), 0.5 * (y0 + y1)])
        extent = max(x1 - x0, y1 - y0)
        scale = 2.0 * rng.uniform(0.6, 0.85) / extent  # longer side covers 60-85% of the image
        angle = np.deg2rad(rng.uniform(-30.0, 30.0))
        aspect = np.exp(rng.uniform(-0.15, 0.15))
        shear = rng.uniform(-0.1, 0.1)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        self.matrix = rot @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([scale * aspect, scale / aspect])
        self.inverse = np.linalg.inv(self.matrix)
        self.shift = rng.uniform(-0.35, 0.35, size=2)
        self.scale = float(scale)
        modes = 3
        freq = rng.uniform(2.5, 4.5, size=modes)  # wavelengths of 1.4-2.5 units: bends within the object
        direction = rng.uniform(0.0, 2 * np.pi, size=modes)
        self.waves = np.stack([freq * np.cos(direction), freq * np.sin(direction)], axis=1)  # (modes, 2)
        self.phases = rng.uniform(0.0, 2 * np.pi, size=modes)
        # amplitude = slope / frequency; the summed slope is capped at 0.6 (invertible, contraction)
        slopes = rng.uniform(-0.2, 0.2, size=(modes, 2))
        slopes *= min(1.0, 0.6 / np.linalg.norm(slopes, axis=1).sum())
        self.amplitudes = slopes / freq[:, None]
        self.max_shift = float(np.abs(self.amplitudes).sum(axis=0).max() * np.sqrt(2))

    def _deformation(self, vx, vy):
        """``d(v)`` for coordinate arrays ``vx, vy`` of any (equal) shape, in their dtype."""
        waves, phases, amplitudes = (a.astype(vx.dtype) for a in (self.waves, self.phases, self.amplitudes))
        s = np.sin(vx[..., None] * waves[:, 0] + vy[..., None] * waves[:, 1] + phases)  # (..., modes)
        return s @ amplitudes[:, 0], s @ amplitudes[:, 1]

    def to_canonical(self, nx, ny):
        """Normalised image coordinates (arrays) -> canonical object-frame coordinates."""
        (a, b), (c, d) = self.inverse.tolist()
        ux, uy = nx - float(self.shift[0]), ny - float(self.shift[1])
        vx = a * ux + b * uy + float(self.origin[0])
        vy = c * ux + d * uy + float(self.origin[1])
        dx, dy = self._deformation(vx, vy)
        return vx + dx, vy + dy

    def from_object(self, points):
        """Object-frame points ``(N, 2)`` (before deformation) -> normalised image points."""
        return (points - self.origin) @ self.matrix.T + self.shift

    def to_image(self, canonical):
        """Canonical points ``(N, 2)`` -> normalised image points ``(N, 2)`` (exact forward map)."""
        v = canonical.copy()
        for _ in range(100):  # fixed point of v = c - d(v): a contraction since |grad d| <= 0.6
            dx, dy = self._deformation(v[:, 0], v[:, 1])
            v, previous = canonical - np.stack([dx, dy], axis=1), v
            if np.abs(v - previous).max() < 1e-12:
                break
        return self.from_object(v)

    def image_bounds(self, bounds):
        """Normalised image bounding box of the canonical box ``bounds`` (a safe over-estimate)."""
        x0, y0, x1, y1 = bounds
        m = self.max_shift
        corners = np.array([[x0 - m, y0 - m], [x1 + m, y0 - m], [x0 - m, y1 + m], [x1 + m, y1 + m]])
        image = self.from_object(corners)
        return (*image.min(axis=0), *image.max(axis=0))


def _union_bounds(parts):
    b = np.array([p.shape.bounds() for p in parts])
    return b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def _pixel_grid(size: int):
    """Normalised coordinates of the pixel centres, ``(size, size)`` each (align_corners=True)."""
    axis = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    x, y = np.meshgrid(axis, axis)
    x.flags.writeable = y.flags.writeable = False
    return x, y


def _window(bounds, size):
    """Pixel slices (rows, cols) covering a normalised bounding box, or None when off-image."""
    x0, y0, x1, y1 = bounds
    to_px = (size - 1) / 2.0
    c0, c1 = max(int(np.floor((x0 + 1) * to_px)) - 1, 0), min(int(np.ceil((x1 + 1) * to_px)) + 2, size)
    r0, r1 = max(int(np.floor((y0 + 1) * to_px)) - 1, 0), min(int(np.ceil((y1 + 1) * to_px)) + 2, size)
    if c0 >= c1 or r0 >= r1:
        return None
    return slice(r0, r1), slice(c0, c1)


def _paint(canvas, window, x, y, part, pixel):
    """Composite ``part`` into ``canvas[window]`` given its frame coordinates ``x, y`` there.

    ``pixel`` is the size of one pixel in frame units: edges are anti-aliased over one pixel.
    Returns the boolean footprint (pixel centres inside the part).
    """
    sd = part.shape.sd(x, y)
    alpha = np.clip(0.5 - sd / pixel, 0.0, 1.0) * part.opacity
    region = canvas[window]
    region += alpha[..., None] * (part.colour_at(x, y) - region)
    return sd <= 0


def _distractor(rng) -> Part:
    """A random background shape in normalised image coordinates."""
    cx, cy = rng.uniform(-1.1, 1.1, size=2)
    r = rng.uniform(0.06, 0.4)
    kind = rng.integers(4)
    if kind == 0:
        shape = Ellipse(cx, cy, r, r * rng.uniform(0.3, 1.0), rng.uniform(0, np.pi))
    elif kind == 1:
        shape = Box(cx, cy, r, r * rng.uniform(0.2, 1.0), rng.uniform(0, np.pi), r * rng.uniform(0.0, 0.3))
    elif kind == 2:
        angle = rng.uniform(0, 2 * np.pi)
        end = (cx + 2 * r * np.cos(angle), cy + 2 * r * np.sin(angle))
        shape = Capsule((cx, cy), end, rng.uniform(0.015, 0.06))
    else:  # a random convex polygon: sorted angles on a jittered circle
        angles = np.sort(rng.uniform(0, 2 * np.pi, size=rng.integers(3, 6)))
        radii = r * rng.uniform(0.6, 1.0, size=angles.size)
        shape = Polygon(tuple(zip(cx + radii * np.cos(angles), cy + radii * np.sin(angles))))
    colour = _hsv(rng.uniform(), rng.uniform(0.05, 0.65), rng.uniform(0.2, 0.9))
    pattern = _stripes_or_spots(rng, _hsv(rng.uniform(), rng.uniform(0, 0.6), rng.uniform(0.2, 0.9)),
                                0.25, 0.15, (1.5, 5.0))
    return Part(shape, colour, rng.uniform(-0.3, 0.3), pattern, rng.uniform(0.6, 1.0))


def _background(rng, size):
    """Cluttered background ``(size, size, 3)``: gradient, soft texture, distractor shapes."""
    x, y = _pixel_grid(size)
    hue = rng.uniform()
    c0 = _hsv(hue, rng.uniform(0.05, 0.45), rng.uniform(0.35, 0.85))
    c1 = _hsv(hue + rng.uniform(-0.2, 0.2), rng.uniform(0.05, 0.45), rng.uniform(0.2, 0.85))
    angle = rng.uniform(0, 2 * np.pi)
    t = 0.5 + 0.25 * (x * math.cos(angle) + y * math.sin(angle))
    canvas = c0 + t[..., None] * (c1 - c0)
    texture = np.zeros_like(x)
    for _ in range(3):  # soft low-frequency shading, like uneven lighting on a surface
        f, a, p = rng.uniform(1.0, 4.0), rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi)
        texture += rng.uniform(0.02, 0.06) * np.sin(f * math.pi * (x * math.cos(a) + y * math.sin(a)) + p)
    canvas *= 1.0 + texture[..., None]
    pixel = 2.0 / (size - 1)
    for _ in range(rng.integers(6, 14)):
        part = _distractor(rng)
        window = _window(part.shape.bounds(), size)
        if window is not None:
            _paint(canvas, window, x[window], y[window], part, pixel)
    return canvas


def render(category: str, image_size: int, rng: np.random.Generator):
    """Draw and render one instance of ``category``.

    Returns ``image`` float32 ``(S, S, 3)`` in [0, 1], ``mask`` bool ``(S, S)``, ``keypoints``
    float32 ``(10, 2)`` as 0-based pixel ``(x, y)``, ``visible`` bool ``(10,)``. Every random draw
    is independent of ``image_size`` except the pixel noise (drawn last), so one generator state
    gives the same scene, mask and keypoints at every size.
    """
    parts, keypoints = _BUILDERS[category](rng)
    placement = _Placement(rng, _union_bounds(parts))
    size = image_size
    canvas = _background(rng, size)
    brightness, noise = rng.uniform(0.85, 1.1), rng.uniform(0.01, 0.04)
    mask = np.zeros((size, size), dtype=bool)
    cx, cy = placement.to_canonical(*_pixel_grid(size))  # what every pixel shows, in the object frame
    pixel = 2.0 / (size - 1) / placement.scale  # one pixel in object-frame units (about)
    for part in parts:
        window = _window(placement.image_bounds(part.shape.bounds()), size)
        if window is not None:
            mask[window] |= _paint(canvas, window, cx[window], cy[window], part, pixel)

    image = canvas * brightness + noise * rng.standard_normal((size, size, 3), dtype=np.float32)
    image = np.clip(image, 0.0, 1.0).astype(np.float32)

    points = placement.to_image(np.asarray(keypoints, dtype=np.float64))
    points = (points + 1.0) * (size - 1) / 2.0
    visible = np.all((points >= 0) & (points <= size - 1), axis=1)
    return image, mask, points.astype(np.float32), visible


# ----------------------------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------------------------

def _check_int(name, value, minimum, expected):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return int(value)


class SyntheticImages(Dataset):
    """Procedural images of object categories with masks and named keypoints (evaluation only).

    Image ``i`` shows an instance of ``category_names[i % len(category_names)]``; it is rendered
    on first access and cached. Its random stream depends only on ``(seed, split, i)``; the three
    splits are disjoint streams.

    Each item is a dict: ``image`` float32 ``(3, S, S)`` in [0, 1]; ``mask`` float32 ``(1, S, S)``
    in {0, 1} (foreground 1); ``keypoints`` float32 ``(10, 2)`` 0-based pixel ``(x, y)`` (named by
    ``KEYPOINT_NAMES[category_name]``); ``visible`` bool ``(10,)`` (False outside the image);
    ``category`` int (index into ``category_names``); ``category_name`` str; ``index`` int;
    ``name`` str; ``size`` int64 ``(2,)`` = ``(H, W)``.
    """

    def __init__(self, num_images: int = 200, image_size: int = 128, seed: int = 0,
                 split: str = "train", categories: Sequence[str] | None = None):
        num_images = _check_int("num_images", num_images, 1, "an integer >= 1")
        image_size = _check_int("image_size", image_size, 32, "an integer >= 32 (the side of square images)")
        seed = _check_int("seed", seed, 0, "a non-negative integer")
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; accepted values: {', '.join(SPLITS)}")
        if isinstance(categories, str):
            categories = (categories,)
        names = CATEGORIES if categories is None else tuple(categories)
        unknown = [n for n in names if n not in CATEGORIES]
        if unknown:
            raise ValueError(f"unknown categor{'y' if len(unknown) == 1 else 'ies'} "
                             f"{', '.join(map(repr, unknown))}; "
                             f"accepted values: {', '.join(CATEGORIES)}")
        if not names or len(set(names)) != len(names):
            raise ValueError(f"categories must be a non-empty sequence of distinct names, "
                             f"got {list(names)!r}")
        self.num_images = num_images
        self.image_size = image_size
        self.seed = seed
        self.split = split
        self.category_names: tuple[str, ...] = names
        self.labels: list[int] = [i % len(names) for i in range(num_images)]
        self._cache: dict[int, tuple] = {}

    def __len__(self) -> int:
        return self.num_images

    def _render(self, i: int):
        rng = np.random.default_rng([self.seed, SPLITS.index(self.split), i])
        image, mask, keypoints, visible = render(self.category_names[self.labels[i]], self.image_size, rng)
        # stored compactly: 8-bit image like a photograph, boolean mask
        return (torch.from_numpy(np.round(image * 255).astype(np.uint8)).permute(2, 0, 1).contiguous(),
                torch.from_numpy(mask), torch.from_numpy(keypoints), torch.from_numpy(visible))

    def __getitem__(self, i) -> dict:
        if isinstance(i, torch.Tensor) and i.numel() == 1:
            i = int(i)
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise TypeError(f"index must be an integer, got {type(i).__name__}")
        if not -self.num_images <= i < self.num_images:
            raise IndexError(f"index {i} out of range for a dataset of {self.num_images} images "
                             f"(valid: 0..{self.num_images - 1}, or negative from the end)")
        i = int(i) % self.num_images
        if i not in self._cache:
            self._cache[i] = self._render(i)
        image, mask, keypoints, visible = self._cache[i]
        label = self.labels[i]
        return {
            "image": image.float() / 255.0,
            "mask": mask.float().unsqueeze(0),
            "keypoints": keypoints.clone(),
            "visible": visible.clone(),
            "category": label,
            "category_name": self.category_names[label],
            "index": i,
            "name": f"synthetic/{self.split}/{i}",
            "size": torch.tensor([self.image_size, self.image_size]),
        }

    def __repr__(self) -> str:
        return (f"SyntheticImages(num_images={self.num_images}, image_size={self.image_size}, "
                f"seed={self.seed}, split={self.split!r}, categories={self.category_names})")

"""Random appearance for synthetic renders: backgrounds, clothing-like part colours with
UV-space patterns, and Lambertian shading. NumPy + OpenCV, driven by a NumPy Generator
(deterministic for a given seed).

Nothing here tries to look photographic; the aim is variety that a network cannot use as a
shortcut: the body's colours, patterns, lighting and the background are drawn
independently per sample, and backgrounds contain body-coloured shapes and edges too.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["random_background", "BodyAppearance", "random_appearance", "shade_body", "composite",
           "GARMENTS"]

# DensePose part ids per garment region (see core.render.parts for the part names).
GARMENTS = {
    "head": (23, 24),
    "hands": (3, 4),
    "torso": (1, 2),
    "upper_arms": (15, 16, 17, 18),
    "lower_arms": (19, 20, 21, 22),
    "upper_legs": (7, 8, 9, 10),
    "lower_legs": (11, 12, 13, 14),
    "feet": (5, 6),
}
PATTERNS = ("plain", "stripes_u", "stripes_v", "checker", "noise")


def _hsv(rng: np.random.Generator, h=(0.0, 1.0), s=(0.0, 1.0), v=(0.1, 1.0)) -> np.ndarray:
    """One random colour drawn in HSV, returned as float RGB in [0, 1]."""
    hsv = np.array([[[rng.uniform(*h) * 179.0, rng.uniform(*s) * 255.0, rng.uniform(*v) * 255.0]]], np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255.0


def _skin(rng: np.random.Generator) -> np.ndarray:
    """A skin-like tone (hue 5–30°, saturation 0.2–0.6, value 0.25–0.95)."""
    return _hsv(rng, h=(5 / 360, 30 / 360), s=(0.2, 0.6), v=(0.25, 0.95))


# ----------------------------------------------------------------------------- backgrounds
def _gradient(rng, res: int) -> np.ndarray:
    a, b = _hsv(rng), _hsv(rng)
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:res, 0:res].astype(np.float32) / (res - 1)
    t = (np.cos(ang) * (xx - 0.5) + np.sin(ang) * (yy - 0.5)) / np.sqrt(0.5) * 0.5 + 0.5
    return (a[None, None] * (1 - t[..., None]) + b[None, None] * t[..., None]) * 255.0


def _smooth_noise(rng, res: int) -> np.ndarray:
    k = int(rng.integers(2, 17))
    base = rng.uniform(0, 255, size=(k, k, 3)).astype(np.float32)
    return cv2.resize(base, (res, res), interpolation=cv2.INTER_CUBIC)


def _fine_noise(rng, res: int) -> np.ndarray:
    col = _hsv(rng) * 255.0
    noise = rng.standard_normal((res, res, 1), dtype=np.float32) * np.float32(rng.uniform(10, 50))
    return col[None, None] + noise


def _shapes(rng, img: np.ndarray) -> np.ndarray:
    img = np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8))
    res = img.shape[0]
    for _ in range(int(rng.integers(3, 25))):
        col = tuple(int(c) for c in (_hsv(rng) * 255.0))
        kind = int(rng.integers(4))
        p = rng.integers(-res // 4, res + res // 4, size=2)
        if kind == 0:
            cv2.circle(img, (int(p[0]), int(p[1])), int(rng.integers(4, res // 3)), col, -1, cv2.LINE_AA)
        elif kind == 1:
            q = p + rng.integers(8, res // 2, size=2)
            cv2.rectangle(img, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), col, -1)
        elif kind == 2:
            q = rng.integers(0, res, size=2)
            cv2.line(img, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), col, int(rng.integers(1, 9)), cv2.LINE_AA)
        else:
            pts = (p[None] + rng.integers(-res // 4, res // 4, size=(int(rng.integers(3, 7)), 2))).astype(np.int32)
            cv2.fillPoly(img, [pts], col, cv2.LINE_AA)
    return img.astype(np.float32)


def random_background(rng: np.random.Generator, res: int = 224) -> np.ndarray:
    """(res, res, 3) float32 RGB in [0, 255]: a gradient, smooth colour noise or fine noise,
    with random shapes (circles, boxes, lines, polygons) on top half of the time."""
    kind = int(rng.integers(3))
    img = (_gradient, _smooth_noise, _fine_noise)[kind](rng, res)
    if rng.uniform() < 0.5:
        img = _shapes(rng, img)
    return np.clip(img, 0, 255).astype(np.float32)


# ----------------------------------------------------------------------------- body
@dataclass
class BodyAppearance:
    """part_color (25, 3) float RGB in [0, 1] (row 0 unused); pattern (25,) index into
    ``PATTERNS``; freq (25,) pattern frequency (cycles per unit UV); amp (25,) pattern
    contrast; light (3,) unit direction towards the light (camera frame); ambient, diffuse."""

    part_color: np.ndarray
    pattern: np.ndarray
    freq: np.ndarray
    amp: np.ndarray
    light: np.ndarray
    ambient: float
    diffuse: float


def random_appearance(rng: np.random.Generator) -> BodyAppearance:
    """Clothing-like colours (skin, top with short/long sleeves, trousers or shorts, shoes;
    one pattern per garment) 70 % of the time, else an independent colour and pattern per
    DensePose part. Light from the camera's side, randomly tilted."""
    color = np.zeros((25, 3), np.float32)
    pattern = np.zeros(25, np.int64)
    freq = np.ones(25, np.float32)
    amp = np.zeros(25, np.float32)
    if rng.uniform() < 0.7:
        garments = {"skin": (_skin(rng), 0, 1.0, 0.0), "shoes": (_hsv(rng, v=(0.05, 0.6)), 0, 1.0, 0.0)}
        for g in ("top", "bottom"):
            garments[g] = (_hsv(rng), int(rng.integers(len(PATTERNS))), rng.uniform(2, 12), rng.uniform(0.15, 0.5))
        long_sleeves, long_legs = rng.uniform() < 0.5, rng.uniform() < 0.7
        region_garment = {"head": "skin", "hands": "skin", "torso": "top", "upper_arms": "top",
                          "lower_arms": "top" if long_sleeves else "skin", "upper_legs": "bottom",
                          "lower_legs": "bottom" if long_legs else "skin", "feet": "shoes"}
        for region, parts in GARMENTS.items():
            c, pat, f, a = garments[region_garment[region]]
            for p in parts:
                color[p], pattern[p], freq[p], amp[p] = c, pat, f, a
    else:
        for p in range(1, 25):
            color[p] = _hsv(rng)
            pattern[p] = int(rng.integers(len(PATTERNS)))
            freq[p] = rng.uniform(2, 12)
            amp[p] = rng.uniform(0.15, 0.5)
    light = np.array([rng.uniform(-1, 1), rng.uniform(-1, 0.5), -rng.uniform(0.5, 1.5)])
    light /= np.linalg.norm(light)
    return BodyAppearance(color, pattern, freq, amp, light.astype(np.float32),
                          float(rng.uniform(0.3, 0.6)), float(rng.uniform(0.4, 0.8)))


def _pattern_value(kind: np.ndarray, u: np.ndarray, v: np.ndarray, freq: np.ndarray,
                   noise: np.ndarray) -> np.ndarray:
    """Per-pixel pattern in [0, 1] for pattern ids ``kind`` (N,) at UV (N,)."""
    out = np.zeros_like(u)
    m = kind == 1
    out[m] = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * freq[m] * u[m]))
    m = kind == 2
    out[m] = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * freq[m] * v[m]))
    m = kind == 3
    out[m] = (np.floor(freq[m] * u[m]) + np.floor(freq[m] * v[m])) % 2
    m = kind == 4
    out[m] = noise[m]
    return out


def shade_body(part: np.ndarray, u: np.ndarray, v: np.ndarray, normal: np.ndarray,
               app: BodyAppearance, rng: np.random.Generator) -> np.ndarray:
    """Colour of the body pixels.

    Args:
        part: (H, W) part ids (0 = background); u, v: (H, W) DensePose UV;
        normal: (H, W, 3) unit normals facing the camera (camera frame).
    Returns:
        (H, W, 3) float32 RGB in [0, 255] (0 on background).
    """
    fg = part > 0
    out = np.zeros(part.shape + (3,), np.float32)
    if not fg.any():
        return out
    p = part[fg].astype(np.int64)
    kinds = app.pattern[p]
    noise = rng.random(p.shape, dtype=np.float32) if (kinds == 4).any() else np.zeros(p.shape, np.float32)
    pat = _pattern_value(kinds, u[fg], v[fg], app.freq[p], noise)
    albedo = app.part_color[p] * (1.0 - app.amp[p] * pat)[:, None]
    lambert = np.clip(normal[fg] @ app.light, 0.0, 1.0)
    shade = app.ambient + app.diffuse * lambert
    out[fg] = np.clip(albedo * shade[:, None], 0.0, 1.0) * 255.0
    return out


def composite(background: np.ndarray, body_rgb: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Body over background, then sensor-like noise (σ ∈ [0, 6]) and, 30 % of the time, a
    slight blur. Returns (H, W, 3) uint8."""
    img = np.where(mask[..., None], body_rgb, background)
    if rng.uniform() < 0.3:
        img = cv2.GaussianBlur(img, (3, 3), rng.uniform(0.3, 0.9))
    img = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(0, 6))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)

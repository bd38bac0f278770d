"""Random appearance for synthetic renders, a batch at a time: backgrounds, clothing-like part
colours with UV-space patterns, Lambertian shading of the hit pixels, compositing with
sensor noise. NumPy (OpenCV only for resizing, blurring and drawing shapes), driven by a
NumPy Generator, so a batch is deterministic for a given seed.

Nothing here tries to look photographic; the aim is variety that a network cannot use as a
shortcut: the body's colours, patterns, lighting and the background are drawn
independently per sample, and backgrounds contain body-coloured shapes and edges too.

Speed (this runs once per generated sample): everything but the shapes is vectorised over
the batch, and Gaussian noise fields (background "fine noise" and the sensor noise) are
windows of a fixed table of N(0, 1) samples starting at a random offset, scaled per image —
drawing 150k fresh normals per image costs more than the rest of the image.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

__all__ = ["GARMENTS", "PATTERNS", "hsv_to_rgb", "random_colors", "random_backgrounds", "BodyAppearance",
           "random_appearances", "pattern_value", "shade_pixels", "composite"]

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

_NOISE_TABLE_SIZE = 1 << 21
_NOISE_TABLE_SEED = 0x5EED_0153


@lru_cache(maxsize=1)
def _noise_table() -> np.ndarray:
    """(2²¹,) float32 N(0, 1) samples from a fixed seed (read-only, built once per process)."""
    table = np.random.default_rng(_NOISE_TABLE_SEED).standard_normal(_NOISE_TABLE_SIZE, dtype=np.float32)
    table.setflags(write=False)
    return table


def _noise_field(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """A read-only N(0, 1) float32 field of ``shape``: a window of the fixed table at a
    random offset (the samples of one field are independent; fields of different images
    are windows of the same table)."""
    table = _noise_table()
    size = int(np.prod(shape))
    if size > table.size:
        raise ValueError(f"noise field of {size} values exceeds the {table.size}-value table; "
                         f"raise _NOISE_TABLE_SIZE")
    start = int(rng.integers(table.size - size + 1))
    return table[start:start + size].reshape(shape)


# ----------------------------------------------------------------------------- colours
def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """HSV → RGB (the standard hexcone model, as ``colorsys.hsv_to_rgb``).

    Args: hsv (..., 3) floats, hue in [0, 1) (turns), saturation and value in [0, 1].
    Returns: (..., 3) float32 RGB in [0, 1].
    """
    hsv = np.asarray(hsv, np.float32)
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    h6 = (h % 1.0) * 6.0
    sector = np.minimum(np.floor(h6), 5).astype(np.int64)
    f = h6 - sector
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    # rows: sector 0..5 → (r, g, b) as indices into (v, p, q, t)
    table = np.array([[0, 3, 1], [2, 0, 1], [1, 0, 3], [1, 2, 0], [3, 1, 0], [0, 1, 2]])
    comps = np.stack([v, p, q, t], axis=-1)
    return np.take_along_axis(comps, table[sector], axis=-1).astype(np.float32)


def random_colors(rng: np.random.Generator, shape: tuple, h=(0.0, 1.0), s=(0.0, 1.0), v=(0.1, 1.0)) -> np.ndarray:
    """Colours drawn uniformly in HSV boxes: (*shape, 3) float32 RGB in [0, 1]."""
    hsv = np.stack([rng.uniform(*h, size=shape), rng.uniform(*s, size=shape), rng.uniform(*v, size=shape)], -1)
    return hsv_to_rgb(hsv)


# ----------------------------------------------------------------------------- backgrounds
@lru_cache(maxsize=4)
def _grid(res: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:res, 0:res].astype(np.float32) / (res - 1) - 0.5
    return xx, yy


def _to_uint8(img: np.ndarray, out: np.ndarray) -> None:
    """Float image → ``out`` (uint8, same shape): rounded half to even and clipped to
    [0, 255] (OpenCV's saturating conversion, as ``np.clip(np.rint(img), 0, 255)`` in
    one pass)."""
    cv2.add(img, 0.0, dst=out, dtype=cv2.CV_8U)


def _draw_shapes(rng: np.random.Generator, img: np.ndarray) -> None:
    """Draw 3–24 random shapes (circles, boxes, lines, polygons; random colours) in place
    on one (res, res, 3) uint8 image."""
    res = img.shape[0]
    k = int(rng.integers(3, 25))
    cols = (random_colors(rng, (k,)) * 255.0).round().astype(np.int64).tolist()
    kinds = rng.integers(4, size=k).tolist()
    p = rng.integers(-res // 4, res + res // 4, size=(k, 2)).tolist()
    radius = rng.integers(4, res // 3, size=k).tolist()
    box = rng.integers(8, res // 2, size=(k, 2)).tolist()
    end = rng.integers(0, res, size=(k, 2)).tolist()
    width = rng.integers(1, 9, size=k).tolist()
    n_pts = rng.integers(3, 7, size=k).tolist()
    offsets = rng.integers(-res // 4, res // 4, size=(k, 6, 2))
    for i in range(k):
        col, (x, y) = tuple(cols[i]), p[i]
        if kinds[i] == 0:
            cv2.circle(img, (x, y), radius[i], col, -1, cv2.LINE_AA)
        elif kinds[i] == 1:
            cv2.rectangle(img, (x, y), (x + box[i][0], y + box[i][1]), col, -1)
        elif kinds[i] == 2:
            cv2.line(img, (x, y), tuple(end[i]), col, width[i], cv2.LINE_AA)
        else:
            pts = (np.array([x, y]) + offsets[i, :n_pts[i]]).astype(np.int32)
            cv2.fillPoly(img, [pts], col, cv2.LINE_AA)


def random_backgrounds(rng: np.random.Generator, n: int, res: int = 224) -> np.ndarray:
    """(n, res, res, 3) uint8 RGB backgrounds: each a linear colour gradient, smooth colour
    noise (a 2–16 grid upsampled bicubically) or a colour with fine Gaussian noise
    (σ ∈ [10, 50]), with random shapes (circles, boxes, lines, polygons) on top half of the
    time."""
    kind = rng.integers(3, size=n)
    with_shapes = rng.uniform(size=n) < 0.5
    out = np.empty((n, res, res, 3), np.uint8)
    grad = np.flatnonzero(kind == 0)
    if len(grad):
        a, b = random_colors(rng, (len(grad), 2)).transpose(1, 0, 2) * np.float32(255.0)   # (k, 3) each
        ang = rng.uniform(0, 2 * np.pi, size=len(grad))
        xx, yy = _grid(res)
        c, s = (np.cos(ang) / np.sqrt(2.0)).astype(np.float32), (np.sin(ang) / np.sqrt(2.0)).astype(np.float32)
        for j, i in enumerate(grad):
            t = c[j] * xx + s[j] * yy + np.float32(0.5)                                         # (res, res)
            _to_uint8(cv2.merge([a[j, ch] + (b[j, ch] - a[j, ch]) * t for ch in range(3)]), out[i])
    for i in np.flatnonzero(kind == 1):
        k = int(rng.integers(2, 17))
        base = rng.uniform(0, 255, size=(k, k, 3)).astype(np.float32)
        _to_uint8(cv2.resize(base, (res, res), interpolation=cv2.INTER_CUBIC), out[i])
    fine = np.flatnonzero(kind == 2)
    if len(fine):
        cols = random_colors(rng, (len(fine),)) * np.float32(255.0)
        sigma = rng.uniform(10, 50, size=len(fine)).astype(np.float32)
        for j, i in enumerate(fine):
            noise = _noise_field(rng, (res, res)) * sigma[j]
            _to_uint8(cv2.merge([noise + cols[j, ch] for ch in range(3)]), out[i])
    for i in np.flatnonzero(with_shapes):
        _draw_shapes(rng, out[i])
    return out


# ----------------------------------------------------------------------------- body
@dataclass
class BodyAppearance:
    """Appearance of n bodies.

    Attributes:
        part_color: (n, 25, 3) float32 RGB in [0, 1] (part 0 = background, unused).
        pattern: (n, 25) int64 index into ``PATTERNS``.
        freq: (n, 25) float32 pattern frequency (cycles per unit UV).
        amp: (n, 25) float32 pattern contrast.
        light: (n, 3) float32 unit direction towards the light (camera frame).
        ambient, diffuse: (n,) float32.
    """

    part_color: np.ndarray
    pattern: np.ndarray
    freq: np.ndarray
    amp: np.ndarray
    light: np.ndarray
    ambient: np.ndarray
    diffuse: np.ndarray


# garment slot per part: 0 skin, 1 shoes, 2 top, 3 bottom; indexed [long_sleeves, long_legs, part]
def _slot_table() -> np.ndarray:
    table = np.zeros((2, 2, 25), np.int64)
    region_slot = {"head": 0, "hands": 0, "torso": 2, "upper_arms": 2, "upper_legs": 3, "feet": 1}
    for ls in (0, 1):
        for ll in (0, 1):
            slots = dict(region_slot, lower_arms=2 if ls else 0, lower_legs=3 if ll else 0)
            for region, parts in GARMENTS.items():
                table[ls, ll, list(parts)] = slots[region]
    return table


_SLOTS = _slot_table()


def random_appearances(rng: np.random.Generator, n: int) -> BodyAppearance:
    """n body appearances: clothing-like colours (skin, a top with short or long sleeves,
    trousers or shorts, shoes; one pattern per garment) 70 % of the time, else an
    independent colour and pattern per DensePose part. Light from the camera's side,
    randomly tilted."""
    clothing = rng.uniform(size=n) < 0.7
    skin = random_colors(rng, (n,), h=(5 / 360, 30 / 360), s=(0.2, 0.6), v=(0.25, 0.95))
    shoes = random_colors(rng, (n,), v=(0.05, 0.6))
    garment_color = random_colors(rng, (n, 2))                                    # top, bottom
    garment_pattern = rng.integers(len(PATTERNS), size=(n, 2))
    garment_freq = rng.uniform(2, 12, size=(n, 2))
    garment_amp = rng.uniform(0.15, 0.5, size=(n, 2))
    long_sleeves, long_legs = rng.uniform(size=n) < 0.5, rng.uniform(size=n) < 0.7
    slot_color = np.concatenate([skin[:, None], shoes[:, None], garment_color], 1)           # (n, 4, 3)
    zeros, ones = np.zeros((n, 2)), np.ones((n, 2))
    slot_pattern = np.concatenate([zeros.astype(np.int64), garment_pattern], 1)
    slot_freq = np.concatenate([ones, garment_freq], 1)
    slot_amp = np.concatenate([zeros, garment_amp], 1)
    slot = _SLOTS[long_sleeves.astype(np.int64), long_legs.astype(np.int64)]                # (n, 25)
    rows = np.arange(n)[:, None]

    part_color = np.concatenate([np.zeros((n, 1, 3), np.float32), random_colors(rng, (n, 24))], 1)
    part_pattern = np.concatenate([np.zeros((n, 1), np.int64), rng.integers(len(PATTERNS), size=(n, 24))], 1)
    part_freq = np.concatenate([np.ones((n, 1)), rng.uniform(2, 12, size=(n, 24))], 1)
    part_amp = np.concatenate([np.zeros((n, 1)), rng.uniform(0.15, 0.5, size=(n, 24))], 1)
    c = clothing[:, None]
    color = np.where(c[..., None], slot_color[rows, slot], part_color)
    pattern = np.where(c, slot_pattern[rows, slot], part_pattern)
    freq = np.where(c, slot_freq[rows, slot], part_freq)
    amp = np.where(c, slot_amp[rows, slot], part_amp)
    color[:, 0], pattern[:, 0], freq[:, 0], amp[:, 0] = 0.0, 0, 1.0, 0.0

    light = np.stack([rng.uniform(-1, 1, size=n), rng.uniform(-1, 0.5, size=n), -rng.uniform(0.5, 1.5, size=n)], 1)
    light /= np.linalg.norm(light, axis=1, keepdims=True)
    return BodyAppearance(color.astype(np.float32), pattern.astype(np.int64), freq.astype(np.float32),
                          amp.astype(np.float32), light.astype(np.float32),
                          rng.uniform(0.3, 0.6, size=n).astype(np.float32),
                          rng.uniform(0.4, 0.8, size=n).astype(np.float32))


def _pattern_lut() -> np.ndarray:
    """(4·8,) float32: value of pattern kind 0..3 (plain, stripes_u, stripes_v, checker)
    for the 3-bit code ``stripe_u + 2·stripe_v + 4·checker``."""
    code = np.arange(8)
    bits = np.stack([code & 1, (code >> 1) & 1, (code >> 2) & 1]).astype(np.float32)   # (3, 8)
    return np.concatenate([np.zeros(8, np.float32), bits[0], bits[1], bits[2]])


_PATTERN_LUT = _pattern_lut()


def pattern_value(kind: np.ndarray, u: np.ndarray, v: np.ndarray, freq: np.ndarray,
                  noise: np.ndarray) -> np.ndarray:
    """Per-pixel pattern in [0, 1] for pattern ids ``kind`` (N,) (index into ``PATTERNS``)
    at UV (N,), frequency (N,) and uniform noise (N,) (used by "noise").

    plain 0; stripes_u 1 where ``sin(2π·f·u) > 0`` (the first half of each period);
    stripes_v the same in v; checker ``(⌊f·u⌋ + ⌊f·v⌋) mod 2``; noise the given values.
    """
    fu, fv = freq * u, freq * v
    iu, iv = np.floor(fu), np.floor(fv)
    du, dv = fu - iu, fv - iv
    code = (((du > 0) & (du < 0.5)).astype(np.int64) + 2 * ((dv > 0) & (dv < 0.5))
            + 4 * ((iu + iv) % 2 == 1))
    out = np.take(_PATTERN_LUT, np.minimum(kind, 3) * 8 + code)
    return np.where(kind == 4, noise, out)


def shade_pixels(app: BodyAppearance, batch: np.ndarray, part: np.ndarray, u: np.ndarray, v: np.ndarray,
                 normal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Colour of body pixels (albedo from part colour and pattern, Lambertian shading).

    Args:
        app: appearances of the batch.
        batch: (N,) sample of each pixel; part: (N,) part id 1..24; u, v: (N,) DensePose UV;
        normal: (N, 3) unit normals facing the camera (camera frame).
    Returns:
        (N, 3) float32 RGB in [0, 255].
    """
    n_parts = app.pattern.shape[1]
    idx = batch * n_parts + part                                                 # into (n·25,)
    kinds = np.take(app.pattern, idx)
    noisy = kinds == 4
    noise = np.zeros(len(part), np.float32)
    if noisy.any():
        noise[noisy] = rng.random(int(noisy.sum()), dtype=np.float32)
    pat = pattern_value(kinds, u, v, np.take(app.freq, idx), noise)
    lambert = np.einsum("nk,nk->n", normal, np.take(app.light, batch, axis=0))
    shade = np.take(app.ambient, batch) + np.take(app.diffuse, batch) * np.clip(lambert, 0.0, 1.0)
    scale = (1.0 - np.take(app.amp, idx) * pat) * shade * np.float32(255.0)
    rgb = np.take(app.part_color.reshape(-1, 3), idx, axis=0) * scale[:, None]
    return np.clip(rgb, 0.0, 255.0, out=rgb)


def composite(backgrounds: np.ndarray, flat_index: np.ndarray, body_rgb: np.ndarray,
              rng: np.random.Generator) -> np.ndarray:
    """Body pixels over backgrounds, then, 30 % of the time, a slight blur (σ ∈ [0.3, 0.9])
    and sensor-like Gaussian noise (σ ∈ [0, 6]).

    Args:
        backgrounds: (n, H, W, 3) uint8; flat_index: (N,) body pixels as indices into a
            (n, H, W) array; body_rgb: (N, 3) float RGB in [0, 255].
    Returns:
        (n, H, W, 3) uint8.
    """
    n = len(backgrounds)
    img = backgrounds.astype(np.float32)
    img.reshape(-1, 3)[flat_index] = body_rgb
    blur = rng.uniform(size=n) < 0.3
    blur_sigma = rng.uniform(0.3, 0.9, size=n)
    noise_sigma = rng.uniform(0, 6, size=n).astype(np.float32)
    out = np.empty(img.shape, np.uint8)
    for i in range(n):
        if blur[i]:
            img[i] = cv2.GaussianBlur(img[i], (3, 3), blur_sigma[i])
        # img + σ·noise, rounded and saturated to uint8 in one pass
        cv2.addWeighted(img[i], 1.0, _noise_field(rng, img.shape[1:]), float(noise_sigma[i]), 0.0,
                        dst=out[i], dtype=cv2.CV_8U)
    return out

"""Image panels for training logs: mesh overlays, keypoints and IUV maps (NumPy/OpenCV,
meshes ray cast with ``core.render``).

A panel has one row per sample: input crop | predicted mesh over it | keypoints (GT green,
prediction red) | optional IUV columns (prediction, target). Every tile is
``tile × tile`` pixels.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from core.geometry import FOCAL_LENGTH, IMG_RES
from core.render.camera import spin_intrinsics
from core.render.raycast import raycast

__all__ = ["mesh_overlay", "draw_keypoints", "iuv_to_rgb", "make_panel", "write_png"]


def mesh_overlay(image: np.ndarray, vertices: np.ndarray, faces: np.ndarray, alpha: float = 0.75,
                 color=(0.55, 0.65, 0.95)) -> np.ndarray:
    """Shade a camera-frame mesh (SPIN's 224 crop camera, rescaled to the image) over an image.

    Args:
        image: (S, S, 3) uint8 RGB crop. vertices: (V, 3) camera frame (body + translation).
    Returns:
        (S, S, 3) uint8.
    """
    S = image.shape[0]
    hits = raycast(vertices[None], faces, spin_intrinsics(FOCAL_LENGTH, IMG_RES), IMG_RES, out_size=(S, S))
    mask = hits.mask[0]
    n = hits.normal[0]
    shade = np.abs(n[..., 2]) * 0.7 + 0.3
    rgb = np.asarray(color, np.float32)[None, None] * shade[..., None] * 255.0
    out = image.astype(np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * rgb[mask]
    return np.clip(out, 0, 255).astype(np.uint8)


def draw_keypoints(image: np.ndarray, kp_px: np.ndarray, color, conf: np.ndarray | None = None,
                   radius: int = 2) -> np.ndarray:
    """Dots at (J, 2) pixel positions (skipping conf ≤ 0)."""
    out = np.ascontiguousarray(image.copy())
    for j, (x, y) in enumerate(np.asarray(kp_px)):
        if conf is not None and conf[j] <= 0:
            continue
        if np.isfinite(x) and np.isfinite(y):
            cv2.circle(out, (int(round(x)), int(round(y))), radius, tuple(int(c) for c in color), -1, cv2.LINE_AA)
    return out


def iuv_to_rgb(part: np.ndarray, uv: np.ndarray | None = None) -> np.ndarray:
    """(H, W) part ids 0..24 (+ optional (2, H, W) UV) → (H, W, 3) uint8: hue by part,
    brightness modulated by U and V when given; background black."""
    part = np.asarray(part).astype(np.int64)
    hue = (part * 7 % 24) * (180 // 24)
    sat = np.full_like(hue, 200)
    val = np.full_like(hue, 230)
    if uv is not None:
        val = (120 + 135 * (0.5 * uv[0] + 0.5 * uv[1])).astype(np.int64)
    hsv = np.stack([hue, sat, val], -1).astype(np.uint8)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    rgb[part == 0] = 0
    return rgb


def _tile(img: np.ndarray, size: int) -> np.ndarray:
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, -1)
    if img.shape[0] != size or img.shape[1] != size:
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_NEAREST)
    return img.astype(np.uint8)


def make_panel(rows: list[list[np.ndarray]], tile: int = 224) -> np.ndarray:
    """Grid of tiles (rows of equal length), each resized to ``tile``², with 2 px gaps."""
    if not rows:
        raise ValueError("make_panel: no rows")
    width = max(len(r) for r in rows)
    gap = 2
    H = len(rows) * tile + (len(rows) - 1) * gap
    W = width * tile + (width - 1) * gap
    out = np.full((H, W, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = i * (tile + gap), j * (tile + gap)
            out[y:y + tile, x:x + tile] = _tile(img, tile)
    return out


def write_png(path, image: np.ndarray) -> Path:
    """Write an RGB uint8 image as PNG (creates the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(image[..., ::-1])):
        raise OSError(f"could not write {path}")
    return path

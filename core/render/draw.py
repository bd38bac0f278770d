"""2D drawing with OpenCV: keypoints (target vs projected), points (sampling points, vertices).

Coordinates are continuous pixel positions (pixel (r, c) covers [c, c+1) × [r, r+1), see
:mod:`core.render.camera`); drawing is anti-aliased and sub-pixel accurate.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from .colorize import _numpy
from .overlay import as_rgb_image

__all__ = ["draw_keypoints", "draw_points", "confidence_colors"]

_SHIFT = 4  # cv2 fixed-point bits
_PROJECTED_COLOR = (0, 200, 255)


def _fixed(pt) -> Tuple[int, int]:
    """Continuous pixel position → cv2 fixed-point integer point (cv2 puts pixel centres at integers)."""
    return (int(round((float(pt[0]) - 0.5) * (1 << _SHIFT))), int(round((float(pt[1]) - 0.5) * (1 << _SHIFT))))


def _default_radius(image: np.ndarray) -> int:
    return max(1, int(round(min(image.shape[:2]) / 112)))


def confidence_colors(confidence, cmap: str = "RdYlGn") -> np.ndarray:
    """(J,) confidences in [0, 1] → (J, 3) uint8 RGB (low = red, high = green)."""
    import matplotlib

    c = np.clip(_numpy(confidence).astype(np.float64), 0.0, 1.0)
    return np.round(matplotlib.colormaps[cmap](c)[..., :3] * 255).astype(np.uint8)


def _as_points(points, name: str) -> np.ndarray:
    pts = _numpy(points).astype(np.float64)
    if pts.ndim != 2 or pts.shape[1] < 2:
        raise ValueError(f"{name} must be (N, 2) (or (N, 3) with confidence), got {pts.shape}")
    return pts


def draw_keypoints(image, keypoints, confidence=None, projected=None, edges: Optional[Sequence[Tuple[int, int]]] = None,
                   radius: Optional[int] = None, min_confidence: float = 0.0, cmap: str = "RdYlGn") -> np.ndarray:
    """Draw target keypoints (coloured by confidence) and, optionally, projected model keypoints.

    Target keypoints are filled discs coloured by confidence (red → green); projected ones
    are hollow cyan circles; each matching pair is joined by a line in the target's
    confidence colour, so long lines show large reprojection errors. Keypoints with
    confidence <= ``min_confidence`` (e.g. 0 = missing) are not drawn, nor are their lines.

    Args:
        image: (H, W, 3) RGB.
        keypoints: (J, 2) target positions in pixels, or (J, 3) with confidence as column 2.
        confidence: (J,) in [0, 1]; None → column 2 of ``keypoints`` or all 1.
        projected: (J, 2) projected model keypoints (same joint order), or None.
        edges: optional skeleton (i, j) pairs drawn between target keypoints.
        radius: disc radius in pixels (None → scales with the image).
    Returns:
        (H, W, 3) uint8 copy.
    """
    out = as_rgb_image(image).copy()
    kp = _as_points(keypoints, "keypoints")
    J = kp.shape[0]
    if confidence is None:
        conf = kp[:, 2] if kp.shape[1] > 2 else np.ones(J)
    else:
        conf = _numpy(confidence).astype(np.float64).reshape(-1)
        if conf.shape != (J,):
            raise ValueError(f"confidence must be ({J},), got {conf.shape}")
    proj = None
    if projected is not None:
        proj = _as_points(projected, "projected")
        if proj.shape[0] != J:
            raise ValueError(f"projected has {proj.shape[0]} keypoints, target has {J}")
    r = radius or _default_radius(out)
    thick = max(1, r // 2)
    colors = [tuple(int(c) for c in col) for col in confidence_colors(conf, cmap)]
    shown = (conf > min_confidence) & np.isfinite(kp[:, :2]).all(1)
    if edges is not None:
        for i, j in edges:
            if shown[i] and shown[j]:
                cv2.line(out, _fixed(kp[i]), _fixed(kp[j]), (200, 200, 200), thick, cv2.LINE_AA, _SHIFT)
    if proj is not None:
        ok = shown & np.isfinite(proj[:, :2]).all(1)
        for j in np.flatnonzero(ok):
            cv2.line(out, _fixed(kp[j]), _fixed(proj[j]), colors[j], thick, cv2.LINE_AA, _SHIFT)
        for j in np.flatnonzero(np.isfinite(proj[:, :2]).all(1)):
            cv2.circle(out, _fixed(proj[j]), (r + 1) << _SHIFT, _PROJECTED_COLOR, thick, cv2.LINE_AA, _SHIFT)
    for j in np.flatnonzero(shown):
        cv2.circle(out, _fixed(kp[j]), r << _SHIFT, colors[j], -1, cv2.LINE_AA, _SHIFT)
    return out


def draw_points(image, points, colors=None, radius: Optional[int] = None, coords: str = "pixel",
                source_size=None) -> np.ndarray:
    """Draw dots, e.g. PyMAF's sampling points over a feature-map picture, or projected vertices.

    Args:
        image: (H, W, 3) RGB.
        points: (N, 2) positions.
        colors: (N, 3) or one RGB triple (0..255); default yellow.
        coords: "pixel" — continuous pixels of an image of ``source_size`` (H, W) (None = this
            image), scaled to this image; "normalized" — [−1, 1] as for ``grid_sample`` with
            ``align_corners=False`` (−1 = left/top edge, +1 = right/bottom edge).
        radius: dot radius (None → scales with the image).
    Returns:
        (H, W, 3) uint8 copy.
    """
    out = as_rgb_image(image).copy()
    pts = _as_points(points, "points")[:, :2].copy()
    H, W = out.shape[:2]
    if coords == "normalized":
        pts[:, 0] = (pts[:, 0] + 1.0) * 0.5 * W
        pts[:, 1] = (pts[:, 1] + 1.0) * 0.5 * H
    elif coords == "pixel":
        if source_size is not None:
            sh, sw = (source_size, source_size) if isinstance(source_size, int) else source_size
            pts[:, 0] *= W / sw
            pts[:, 1] *= H / sh
    else:
        raise ValueError(f"coords must be 'pixel' or 'normalized', got {coords!r}")
    if colors is None:
        cols = np.tile(np.array([[255, 220, 0]], np.uint8), (len(pts), 1))
    else:
        cols = np.asarray(colors)
        cols = np.tile(cols.reshape(1, 3), (len(pts), 1)) if cols.size == 3 else cols
        if cols.shape != (len(pts), 3):
            raise ValueError(f"colors must be (N, 3) = ({len(pts)}, 3) or one RGB triple, got {cols.shape}")
    r = radius or _default_radius(out)
    for p, c in zip(pts, cols):
        if np.isfinite(p).all():
            cv2.circle(out, _fixed(p), r << _SHIFT, tuple(int(x) for x in c), -1, cv2.LINE_AA, _SHIFT)
    return out

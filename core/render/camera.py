"""Pinhole intrinsics for the renderer: building, rescaling, pixel rays, projection.

Camera frame: x right, y down, z forward (OpenCV), camera centre at the origin.
A point ``X`` projects to the continuous pixel position ``(fx·X/Z + cx, fy·Y/Z + cy)``.

Pixel convention (continuous coordinates): pixel ``(row r, col c)`` covers the square
``[c, c+1) × [r, r+1)``; its centre is ``(c + 0.5, r + 0.5)``. Rays are cast through
pixel centres. With this convention rescaling an image from size S to size S' is exactly
``K' = diag(S'/S, S'/S, 1) · K`` (SPIN's 224 crop with ``c = 112`` is the crop centre, and
the same camera rendered at 56×56 has ``f = 1250, c = 28``).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from core.geometry.camera import FOCAL_LENGTH, IMG_RES

__all__ = [
    "spin_intrinsics",
    "as_intrinsics",
    "rescale_intrinsics",
    "pixel_ray_directions",
    "project_points",
]


def spin_intrinsics(focal: float = FOCAL_LENGTH, img_res: int = IMG_RES) -> np.ndarray:
    """SPIN/PyMAF crop camera ``K = [[f, 0, res/2], [0, f, res/2], [0, 0, 1]]`` (3, 3) float64."""
    return np.array([[focal, 0.0, img_res / 2.0], [0.0, focal, img_res / 2.0], [0.0, 0.0, 1.0]])


def _size(image_size) -> Tuple[int, int]:
    if isinstance(image_size, (int, np.integer)):
        return int(image_size), int(image_size)
    if len(image_size) != 2:
        raise ValueError(f"image_size must be an int or (height, width), got {image_size!r}")
    h, w = int(image_size[0]), int(image_size[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"image_size must be positive, got (height={h}, width={w})")
    return h, w


def as_intrinsics(K, batch: int | None = None) -> np.ndarray:
    """Validate intrinsics and return them as (B, 3, 3) float64.

    Args:
        K: (3, 3) shared by the batch, or (B, 3, 3); numpy or torch. The last row must be
           (0, 0, 1) (no projective skew) so that ray parameter = depth.
        batch: the batch size B to broadcast a (3, 3) matrix to (None: keep its own).
    """
    if hasattr(K, "detach"):
        K = K.detach().cpu().numpy()
    K = np.asarray(K, dtype=np.float64)
    if K.shape == (3, 3):
        K = K[None]
    if K.ndim != 3 or K.shape[1:] != (3, 3):
        raise ValueError(f"intrinsics K must be (3, 3) or (B, 3, 3), got {K.shape}")
    if not np.allclose(K[:, 2], [0.0, 0.0, 1.0]):
        raise ValueError("intrinsics K must have last row (0, 0, 1); divide K by K[2, 2] "
                         "or build it with spin_intrinsics()")
    if batch is not None:
        if K.shape[0] == 1 and batch != 1:
            K = np.broadcast_to(K, (batch, 3, 3))
        elif K.shape[0] != batch:
            raise ValueError(f"intrinsics K has batch {K.shape[0]} but the meshes have batch {batch}; "
                             f"pass one (3, 3) matrix or one per mesh")
    return K


def rescale_intrinsics(K, from_size, to_size) -> np.ndarray:
    """Intrinsics of the same camera rendered at another resolution.

    Args:
        K: (3, 3) or (B, 3, 3) defined for an image of ``from_size`` (H, W).
        from_size, to_size: (height, width) or an int for a square image.
    Returns:
        K with row 0 scaled by ``W'/W`` and row 1 by ``H'/H`` (same shape as K, float64).
    """
    h0, w0 = _size(from_size)
    h1, w1 = _size(to_size)
    K = np.array(K.detach().cpu().numpy() if hasattr(K, "detach") else K, dtype=np.float64)
    K[..., 0, :] *= w1 / w0
    K[..., 1, :] *= h1 / h0
    return K


def pixel_ray_directions(K, image_size) -> np.ndarray:
    """Unnormalised ray directions through pixel centres, with z = 1.

    Args:
        K: (3, 3) intrinsics for an image of ``image_size``.
        image_size: (height, width) or int.
    Returns:
        (H, W, 3) float64 directions ``K⁻¹ (c + 0.5, r + 0.5, 1)``; since z = 1 the ray
        parameter at a hit equals the hit's depth Z.
    """
    K = as_intrinsics(K)[0]
    h, w = _size(image_size)
    xs = np.arange(w, dtype=np.float64) + 0.5
    ys = np.arange(h, dtype=np.float64) + 0.5
    u, v = np.meshgrid(xs, ys)
    pix = np.stack([u, v, np.ones_like(u)], axis=-1)
    return pix @ np.linalg.inv(K).T


def project_points(points, K) -> np.ndarray:
    """Project camera-frame points with a pinhole.

    Args:
        points: (B, N, 3) camera-frame points (numpy or torch).
        K: (3, 3) or (B, 3, 3).
    Returns:
        (B, N, 2) float64 continuous pixel coordinates (nan where Z <= 0).
    """
    if hasattr(points, "detach"):
        points = points.detach().cpu().numpy()
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"project_points: points must be (B, N, 3), got {points.shape}")
    K = as_intrinsics(K, points.shape[0])
    z = points[..., 2:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        normalised = np.where(z > 0, points / z, np.nan)
    return np.einsum("bij,bnj->bni", K[:, :2], normalised)

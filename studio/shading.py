"""Shaded mesh images for the front ends, on top of :func:`core.render.shade_mesh`.

Adds what the studio needs around the library's CPU ray-cast shading (Open3D Embree, no
OpenGL): a raster size other than the camera's (``out_size``), a boolean mask, and an empty
(all-background) image rather than an error for a mesh that is not finite or lies behind
the camera, so a diverged fit still shows the photo. Shading: smooth head-light Lambert,
``colour · (ambient + (1 − ambient)·|n · l|)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from core.render import rescale_intrinsics
from core.render import shade_mesh as _core_shade_mesh

__all__ = ["ShadedMesh", "shade_mesh", "blend", "look_at_camera", "DEFAULT_MESH_COLOR"]

DEFAULT_MESH_COLOR = np.array([0.62, 0.74, 0.92])
"""Light blue 'clay' colour (RGB in [0, 1])."""


@dataclass
class ShadedMesh:
    """A rendered mesh.

    Attributes:
        rgb: (H, W, 3) float32 shaded colour in [0, 1] (0 on background).
        mask: (H, W) bool, pixels covered by the mesh.
    """

    rgb: np.ndarray
    mask: np.ndarray


def shade_mesh(vertices: np.ndarray, faces: np.ndarray, K: np.ndarray, image_size, out_size=None,
               vertex_colors: Optional[np.ndarray] = None, face_colors: Optional[np.ndarray] = None,
               base_color: np.ndarray = DEFAULT_MESH_COLOR, ambient: float = 0.3) -> ShadedMesh:
    """Render one mesh with smooth headlight shading.

    Args:
        vertices: (V, 3) camera-frame vertices (x right, y down, z forward).
        faces: (F, 3) integer triangles.
        K: (3, 3) intrinsics defined for ``image_size`` (H, W).
        image_size: (H, W) the intrinsics refer to.
        out_size: (H', W') raster size (None → image_size); the same camera, rescaled.
        vertex_colors: (V, 3) RGB in [0, 1], interpolated across faces; or None.
        face_colors: (F, 3) RGB in [0, 1] (flat per face); used when vertex_colors is None.
        base_color: (3,) colour when neither is given.
        ambient: light that reaches faces seen edge-on (0 = black silhouettes' rims).
    Returns:
        :class:`ShadedMesh` of size ``out_size``.
    """
    verts = np.asarray(vertices, dtype=np.float32)
    size = (int(image_size[0]), int(image_size[1]))
    out = size if out_size is None else (int(out_size[0]), int(out_size[1]))
    if verts.ndim != 2 or verts.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3), got {verts.shape}")
    if not np.isfinite(verts).all() or not (verts[:, 2] > 0).any():
        return ShadedMesh(np.zeros(out + (3,), np.float32), np.zeros(out, bool))
    rgb, cover = _core_shade_mesh(verts, faces, rescale_intrinsics(K, size, out), out, color=base_color,
                                  face_colors=face_colors, vertex_colors=vertex_colors,
                                  ambient=ambient, diffuse=1.0 - ambient)
    return ShadedMesh(rgb, cover > 0)


def blend(background: np.ndarray, shaded: ShadedMesh, alpha: float = 0.85) -> np.ndarray:
    """Composite a shaded mesh over a uint8 RGB image of the same size.

    Args:
        background: (H, W, 3) uint8.
        shaded: :class:`ShadedMesh` of the same size.
        alpha: mesh opacity.
    Returns:
        (H, W, 3) uint8.
    """
    if background.shape[:2] != shaded.mask.shape:
        raise ValueError(f"background {background.shape[:2]} and render {shaded.mask.shape} differ in size")
    out = np.array(background, dtype=np.uint8, copy=True)
    m = shaded.mask
    mixed = (1.0 - alpha) * out[m].astype(np.float32) + (alpha * 255.0) * shaded.rgb[m]
    out[m] = np.clip(np.round(mixed), 0, 255).astype(np.uint8)
    return out


def look_at_camera(vertices: np.ndarray, yaw_deg: float = 0.0, pitch_deg: float = 0.0, size: int = 448,
                   half_extent: Optional[float] = None, fov_deg: float = 20.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Turn a camera-frame mesh about its centre and frame it for a square image.

    The mesh is rotated by ``yaw`` about the camera's vertical (y) axis and ``pitch`` about
    its horizontal (x) axis, around its bounding-box centre, then moved so that a sphere of
    radius ``half_extent`` around that centre fills ~90 % of the image.

    Args:
        vertices: (V, 3) camera-frame vertices.
        yaw_deg: 90 = seen from the person's left side (the camera's right), SPIN's "side view".
        pitch_deg: 90 = seen from above ("top view") when the person stands upright.
        size: image side (pixels).
        half_extent: framing radius in scene units; None → this mesh's own radius (pass
            one value for all steps of a trace so that the scale does not jump).
        fov_deg: field of view (a narrow one keeps the view close to orthographic).
    Returns:
        (V, 3) moved vertices and the (3, 3) intrinsics K for a ``size``×``size`` image.
    """
    v = np.asarray(vertices, dtype=np.float64)
    lo, hi = v.min(axis=0), v.max(axis=0)
    c = (lo + hi) / 2.0
    r = float(half_extent) if half_extent else float(np.linalg.norm(hi - lo) / 2.0) or 1.0
    a, b = np.deg2rad(yaw_deg), np.deg2rad(pitch_deg)
    yaw = np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])
    pitch = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(b), -np.sin(b)], [0.0, np.sin(b), np.cos(b)]])
    moved = (v - c) @ (pitch @ yaw).T
    f = (size / 2.0) / np.tan(np.deg2rad(fov_deg) / 2.0)
    dist = r * f / (0.45 * size) + r
    moved[:, 2] += dist
    K = np.array([[f, 0.0, size / 2.0], [0.0, f, size / 2.0], [0.0, 0.0, 1.0]])
    return moved.astype(np.float32), K

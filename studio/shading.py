"""Shaded mesh images on the CPU: ``core.render.raycast`` hits → smooth headlight shading.

One ray per output pixel (Open3D's Embree ray caster, no OpenGL), normals interpolated
from area-weighted vertex normals with the hit's barycentrics, colour per vertex
(interpolated) or per face, Lambert shading from a light at the camera. A mesh that is not
finite or lies behind the camera gives an empty (all-background) image rather than an error,
so a diverged fit still shows the photo.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

import numpy as np

from core.render.camera import pixel_ray_directions, rescale_intrinsics
from core.render.raycast import raycast, vertex_normals

__all__ = ["ShadedMesh", "shade_mesh", "blend", "look_at_camera", "DEFAULT_MESH_COLOR"]

DEFAULT_MESH_COLOR = np.array([0.62, 0.74, 0.92])
"""Light blue 'clay' colour (RGB in [0, 1])."""


@dataclass
class ShadedMesh:
    """A rendered mesh.

    Attributes:
        rgb: (H, W, 3) float32 shaded colour in [0, 1] (0 on background).
        mask: (H, W) bool, pixels covered by the mesh.
        depth: (H, W) float32 camera-frame Z (0 on background).
    """

    rgb: np.ndarray
    mask: np.ndarray
    depth: np.ndarray


def _empty(h: int, w: int) -> ShadedMesh:
    return ShadedMesh(np.zeros((h, w, 3), np.float32), np.zeros((h, w), bool), np.zeros((h, w), np.float32))


def _window(verts: np.ndarray, K: np.ndarray, out: tuple[int, int]) -> tuple[int, int, int, int]:
    """Pixel rows/cols [y0, y1) × [x0, x1) that the mesh can cover (whole image if any vertex
    lies at or behind the camera plane, where the projection bound does not hold)."""
    h, w = out
    z = verts[:, 2].astype(np.float64)
    if (z <= 1e-9).any():
        return 0, h, 0, w
    uv = verts[:, :2] / z[:, None] * np.diag(K)[:2] + K[:2, 2]
    lo = np.floor(uv.min(axis=0)).astype(np.int64) - 1
    hi = np.ceil(uv.max(axis=0)).astype(np.int64) + 1
    return (int(np.clip(lo[1], 0, h)), int(np.clip(hi[1], 0, h)), int(np.clip(lo[0], 0, w)), int(np.clip(hi[0], 0, w)))


@functools.lru_cache(maxsize=32)
def _rays_cached(key: bytes, h: int, w: int) -> np.ndarray:
    K = np.frombuffer(key, dtype=np.float64).reshape(3, 3)
    d = pixel_ray_directions(K, (h, w))
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    d.setflags(write=False)
    return d


def _rays(K: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) unit view directions through pixel centres (cached per camera and size)."""
    return _rays_cached(np.ascontiguousarray(K, dtype=np.float64).tobytes(), int(hw[0]), int(hw[1]))


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
    faces = np.asarray(faces)
    size = (int(image_size[0]), int(image_size[1]))
    out = size if out_size is None else (int(out_size[0]), int(out_size[1]))
    if verts.ndim != 2 or verts.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3), got {verts.shape}")
    if not np.isfinite(verts).all() or not (verts[:, 2] > 0).any():
        return _empty(*out)
    K_out = rescale_intrinsics(K, size, out)
    y0, y1, x0, x1 = _window(verts, K_out, out)
    if y1 <= y0 or x1 <= x0:
        return _empty(*out)
    win = (y1 - y0, x1 - x0)
    K_win = K_out.copy()
    K_win[0, 2] -= x0
    K_win[1, 2] -= y0
    hits = raycast(verts[None], faces, K_win, win)  # rays only where the mesh can be
    fid = hits.face_id[0]
    mask_w = fid >= 0
    result = _empty(*out)
    result.depth[y0:y1, x0:x1] = hits.depth[0]
    result.mask[y0:y1, x0:x1] = mask_w
    if not mask_w.any():
        return result
    f = fid[mask_w]
    bary = hits.bary[0][mask_w]  # (N, 3)
    corners = faces[f]  # (N, 3)
    vn = vertex_normals(verts[None], faces)[0]
    n = np.einsum("nk,nkc->nc", bary, vn[corners])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    rays = _rays(K_win, win)[mask_w]
    lambert = np.abs(np.einsum("nc,nc->n", n, rays))
    light = ambient + (1.0 - ambient) * lambert
    if vertex_colors is not None:
        vc = np.asarray(vertex_colors, np.float32)
        if vc.shape != verts.shape:
            raise ValueError(f"vertex_colors must be (V, 3) = {verts.shape}, got {vc.shape}")
        col = np.einsum("nk,nkc->nc", bary, vc[corners])
    elif face_colors is not None:
        fc = np.asarray(face_colors, np.float32)
        if fc.shape != (len(faces), 3):
            raise ValueError(f"face_colors must be (F, 3) = ({len(faces)}, 3), got {fc.shape}")
        col = fc[f]
    else:
        col = np.broadcast_to(np.asarray(base_color, np.float32), (len(f), 3))
    result.rgb[y0:y1, x0:x1][mask_w] = np.clip(col * light[:, None], 0.0, 1.0)
    return result


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

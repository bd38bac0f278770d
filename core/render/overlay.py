"""Shaded mesh overlays on images, and side/top views, from the raycaster.

Shading: Lambert with a head-light (light along the viewing ray) plus ambient, from
per-pixel normals interpolated from area-weighted vertex normals (two-sided, so open
meshes and grazing normals do not turn black):
``rgb = albedo · (ambient + diffuse · |n · l|)``.

Albedo is one colour, one colour per face (e.g. per DensePose part, :func:`part_face_colors`)
or one colour per vertex interpolated with the hit's barycentrics (e.g. visibility).
All functions here take one mesh and one image; images are RGB uint8 (H, W, 3).
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from .camera import _size, as_intrinsics, rescale_intrinsics
from .raycast import as_faces, as_vertices, raycast, vertex_normals

__all__ = [
    "DEFAULT_MESH_COLOR",
    "as_rgb_image",
    "part_face_colors",
    "shade_mesh",
    "render_overlay",
    "rotate_about_centroid",
    "frame_vertices",
    "render_view",
]

DEFAULT_MESH_COLOR = (0.55, 0.40, 0.90)  # SPIN/PyMAF demo "purple"


def as_rgb_image(image) -> np.ndarray:
    """RGB uint8 (H, W, 3) from uint8/float([0, 1]) images, grey (H, W) or RGBA (H, W, 4)."""
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise ValueError(f"image must be (H, W), (H, W, 3) or (H, W, 4), got {image.shape}")
    image = image[..., :3]
    if image.dtype != np.uint8:
        image = np.clip(np.round(image.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def _colors01(colors, n: int, what: str) -> np.ndarray:
    colors = np.asarray(colors, dtype=np.float64)
    if colors.shape != (n, 3):
        raise ValueError(f"{what} must be ({n}, 3), got {colors.shape}")
    return colors / 255.0 if colors.max(initial=0.0) > 1.0 else colors


def part_face_colors(face_part) -> np.ndarray:
    """(F, 3) float colours in [0, 1] of the DensePose parts of each face (0 → grey)."""
    from .colorize import PART_PALETTE

    face_part = np.asarray(face_part)
    if face_part.ndim != 1 or face_part.size and (face_part.min() < 0 or face_part.max() > 24):
        raise ValueError("face_part must be (F,) ints in 0..24")
    palette = PART_PALETTE.astype(np.float64) / 255.0
    palette[0] = 0.6
    return palette[face_part.astype(np.int64)]


def shade_mesh(vertices, faces, K, image_size, color: Sequence[float] = DEFAULT_MESH_COLOR,
               face_colors=None, vertex_colors=None, ambient: float = 0.35, diffuse: float = 0.65,
               supersample: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """Shade one mesh.

    Args:
        vertices: (V, 3) camera-frame vertices; faces: (F, 3).
        K: (3, 3) intrinsics for ``image_size`` (H, W).
        color: RGB in [0, 1] used when no per-face/per-vertex colours are given.
        face_colors: (F, 3) RGB ([0, 1] floats or 0..255).
        vertex_colors: (V, 3) RGB, interpolated per pixel.
        supersample: cast s×s rays per pixel and average (anti-aliased edges; s² the cost).
    Returns:
        rgb (H, W, 3) float32 in [0, 1], premultiplied by coverage (0 on background), and
        coverage (H, W) float32 in [0, 1] (the mask; fractional on edges when supersampling).
    """
    H, W = _size(image_size)
    if int(supersample) < 1:
        raise ValueError(f"supersample must be a positive integer, got {supersample}")
    s = int(supersample)
    if s > 1:
        K_big = rescale_intrinsics(as_intrinsics(K)[0], (H, W), (H * s, W * s))
        rgb, cover = shade_mesh(vertices, faces, K_big, (H * s, W * s), color, face_colors, vertex_colors,
                                ambient, diffuse, 1)
        down = lambda a: a.reshape(H, s, W, s, *a.shape[2:]).mean(axis=(1, 3))
        return down(rgb).astype(np.float32), down(cover).astype(np.float32)
    verts = as_vertices(np.asarray(vertices.detach().cpu().numpy() if hasattr(vertices, "detach") else vertices)[None])
    tri = as_faces(faces, verts.shape[1])
    hits = raycast(verts, tri, K, (H, W))
    mask = hits.mask[0]
    rgb = np.zeros((H, W, 3), np.float32)
    if not mask.any():
        return rgb, mask.astype(np.float32)
    fid = hits.face_id[0][mask]                          # (N,)
    bary = hits.bary[0][mask].astype(np.float64)         # (N, 3)
    corners = tri[fid]                                   # (N, 3)
    vn = vertex_normals(verts, tri)[0].astype(np.float64)
    n = np.einsum("nk,nkc->nc", bary, vn[corners])
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
    rows, cols = np.nonzero(mask)                        # directions only where the mesh is
    pix = np.stack([cols + 0.5, rows + 0.5, np.ones(len(rows))], axis=-1)
    rays = pix @ np.linalg.inv(as_intrinsics(K)[0]).T
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    lambert = np.abs((n * rays).sum(-1))
    if vertex_colors is not None:
        albedo = np.einsum("nk,nkc->nc", bary, _colors01(vertex_colors, verts.shape[1], "vertex_colors")[corners])
    elif face_colors is not None:
        albedo = _colors01(face_colors, tri.shape[0], "face_colors")[fid]
    else:
        albedo = np.broadcast_to(np.asarray(color, dtype=np.float64), (len(fid), 3))
    shade = albedo * (ambient + diffuse * lambert)[:, None]
    rgb[mask] = np.clip(shade, 0.0, 1.0)
    return rgb, mask.astype(np.float32)


def render_overlay(image, vertices, faces, K, color: Sequence[float] = DEFAULT_MESH_COLOR,
                   face_colors=None, vertex_colors=None, alpha: float = 0.8,
                   ambient: float = 0.35, diffuse: float = 0.65, supersample: int = 1) -> np.ndarray:
    """Blend a shaded mesh over an image: ``out = (1 − α·c)·image + α·c·shaded`` (c = coverage).

    Args:
        image: (H, W, 3) RGB (uint8 or float in [0, 1]); its size is the camera's image size.
        vertices: (V, 3) camera-frame vertices; faces: (F, 3); K: (3, 3) for the image.
        color / face_colors / vertex_colors / ambient / diffuse / supersample: see :func:`shade_mesh`.
        alpha: mesh opacity in [0, 1].
    Returns:
        (H, W, 3) uint8; pixels off the mesh are the input's.
    """
    img = as_rgb_image(image)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    rgb, cover = shade_mesh(vertices, faces, K, img.shape[:2], color, face_colors, vertex_colors,
                            ambient, diffuse, supersample)
    mask = cover > 0
    out = img.copy()
    a = alpha * cover[mask][:, None]
    # rgb is premultiplied by coverage: rgb / cover is the shaded colour
    shaded = 255.0 * rgb[mask] / cover[mask][:, None]
    blended = (1.0 - a) * img[mask].astype(np.float32) + a * shaded
    out[mask] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    return out


_AXES = {"x": 0, "y": 1, "z": 2}


def rotate_about_centroid(vertices, angle_deg: float, axis: str = "y") -> np.ndarray:
    """Rotate vertices (..., V, 3) about their centroid by ``angle_deg`` around a camera axis.

    Right-handed rotation in the camera frame (x right, y down, z forward). +90° about y
    (SPIN's side view) turns the side that was on the image's right (+x) towards the
    camera (``x' = z, z' = −x``); +90° about x brings the top (−y) towards the camera
    (``y' = −z, z' = y``) — a view from above.
    """
    if axis not in _AXES:
        raise ValueError(f"axis must be 'x', 'y' or 'z', got {axis!r}")
    v = np.asarray(vertices.detach().cpu().numpy() if hasattr(vertices, "detach") else vertices, dtype=np.float64)
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    i, j = [k for k in range(3) if k != _AXES[axis]]
    R = np.eye(3)
    R[i, i], R[i, j], R[j, i], R[j, j] = c, -s, s, c
    if axis == "y":  # keep the right-handed sense for the (z, x) plane
        R = R.T
    centre = v.mean(axis=-2, keepdims=True)
    return (v - centre) @ R.T + centre


def frame_vertices(vertices, K, image_size, margin: float = 0.1) -> np.ndarray:
    """Translate one mesh (V, 3) so that it is centred on the principal point and fills the image.

    The mesh's bounding-box centre is moved onto the optical axis and its depth chosen as
    the smallest that keeps every vertex inside the image shrunk by ``margin`` on each side.
    """
    v = np.asarray(vertices.detach().cpu().numpy() if hasattr(vertices, "detach") else vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"frame_vertices takes one mesh (V, 3), got {v.shape}")
    Kb = as_intrinsics(K)[0]
    H, W = _size(image_size)
    centre = 0.5 * (v.min(0) + v.max(0))
    local = v - centre
    # free half-extents around the principal point, in pixels
    half_x = min(Kb[0, 2], W - Kb[0, 2]) * (1.0 - 2.0 * margin)
    half_y = min(Kb[1, 2], H - Kb[1, 2]) * (1.0 - 2.0 * margin)
    if half_x <= 0 or half_y <= 0:
        raise ValueError("principal point outside the image or margin too large to frame the mesh")
    # |f·X / (Z + tz)| <= half  ⇔  tz >= f·|X| / half − Z
    tz = max(np.max(Kb[0, 0] * np.abs(local[:, 0]) / half_x - local[:, 2]),
             np.max(Kb[1, 1] * np.abs(local[:, 1]) / half_y - local[:, 2]))
    tz = max(tz, 1e-3 - local[:, 2].min())  # keep the whole mesh in front of the camera
    return local + np.array([0.0, 0.0, tz])


def render_view(vertices, faces, K, image_size, view: str = "front", frame: bool = True,
                background: Sequence[int] = (255, 255, 255), margin: float = 0.1, **shade_kwargs) -> np.ndarray:
    """Render one mesh on a plain background from the front, the side or the top.

    Args:
        vertices: (V, 3) camera-frame vertices; faces: (F, 3); K: (3, 3) for ``image_size``.
        view: "front" (as is), "side" (+90° about y around the centroid) or "top" (+90° about x).
        frame: move the (rotated) mesh so the camera frames it (:func:`frame_vertices`);
            False keeps its place (SPIN's side view: same camera, rotated about the centroid).
        background: RGB 0..255.
        shade_kwargs: color / face_colors / vertex_colors / alpha / ambient / diffuse / supersample.
    Returns:
        (H, W, 3) uint8.
    """
    rotations = {"front": None, "side": ("y", 90.0), "top": ("x", 90.0)}
    if view not in rotations:
        raise ValueError(f"view must be one of {sorted(rotations)}, got {view!r}")
    v = vertices
    if rotations[view] is not None:
        axis, angle = rotations[view]
        v = rotate_about_centroid(vertices, angle, axis)
    if frame:
        v = frame_vertices(v, K, image_size, margin)
    H, W = _size(image_size)
    canvas = np.empty((H, W, 3), np.uint8)
    canvas[:] = np.asarray(background, dtype=np.uint8)
    shade_kwargs.setdefault("alpha", 1.0)
    return render_overlay(canvas, v, faces, K, **shade_kwargs)

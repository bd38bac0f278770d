"""CPU ray casting of triangle meshes through a pinhole camera (Open3D RaycastingScene, Embree).

No OpenGL context is involved: each mesh of a batch gets its own
``open3d.t.geometry.RaycastingScene``; rays through pixel centres (see
:mod:`core.render.camera`) are built once per (intrinsics, size) and reused. Optionally the
same scene also answers one ray per vertex (camera centre → vertex), which is what
:mod:`core.render.visibility` needs, so a frame costs one BVH build.

Open3D facts this module relies on (checked in ``tests/test_render.py``): ``t_hit`` is in
units of the (unnormalised) ray direction, so rays with z = 1 give depth directly; a hit
point is ``(1 − u − v)·v0 + u·v1 + v·v2`` with ``(u, v) = primitive_uvs``; triangles are hit
from both sides; misses have ``t_hit = inf`` and ids ``2³² − 1``.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .camera import _size, as_intrinsics, pixel_ray_directions

__all__ = ["RaycastResult", "raycast", "as_vertices", "as_faces", "face_normals", "vertex_normals"]

_INVALID_ID = np.uint32(0xFFFFFFFF)
_RAY_CACHE: "OrderedDict[tuple, np.ndarray]" = OrderedDict()
_RAY_CACHE_SIZE = 16


def _o3d():
    try:
        import open3d as o3d
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise ImportError(
            "core.render needs open3d (pip install open3d). On Debian/Ubuntu its wheel also "
            "needs the system library libusb-1.0 (apt-get install libusb-1.0-0). "
            f"Original error: {exc}") from exc
    return o3d


def as_vertices(vertices, name: str = "vertices") -> np.ndarray:
    """Validate a batch of meshes' vertices and return (B, V, 3) float32 numpy (numpy or torch in)."""
    if hasattr(vertices, "detach"):
        vertices = vertices.detach().cpu().numpy()
    vertices = np.asarray(vertices)
    if vertices.ndim != 3 or vertices.shape[-1] != 3:
        hint = " (for one mesh pass vertices[None])" if vertices.ndim == 2 else ""
        raise ValueError(f"{name} must be (B, V, 3), got {vertices.shape}{hint}")
    vertices = vertices.astype(np.float32, copy=False)
    if not np.isfinite(vertices).all():
        raise ValueError(f"{name} contain NaN or inf; cannot render (check the fit that produced them)")
    return vertices


def as_faces(faces, num_vertices: Optional[int] = None) -> np.ndarray:
    """Validate faces and return (F, 3) int64 numpy."""
    if hasattr(faces, "detach"):
        faces = faces.detach().cpu().numpy()
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"faces must be an integer (F, 3) array, got {faces.dtype} {faces.shape}")
    faces = faces.astype(np.int64, copy=False)
    if faces.size and (faces.min() < 0 or (num_vertices is not None and faces.max() >= num_vertices)):
        raise ValueError(f"faces index vertices outside [0, {num_vertices}); "
                         f"got range [{faces.min()}, {faces.max()}]")
    return faces


def face_normals(vertices: np.ndarray, faces: np.ndarray, normalize: bool = True) -> np.ndarray:
    """Face normals ``(v1 − v0) × (v2 − v0)``.

    Args:
        vertices: (B, V, 3); faces: (F, 3).
        normalize: unit length (degenerate faces give 0) or length = 2·area.
    Returns:
        (B, F, 3) float32.
    """
    tri = vertices[:, faces]  # (B, F, 3, 3)
    n = np.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0])
    if normalize:
        length = np.linalg.norm(n, axis=-1, keepdims=True)
        n = np.divide(n, length, out=np.zeros_like(n), where=length > 0)
    return n.astype(np.float32, copy=False)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (unit; isolated vertices get 0).

    Args:
        vertices: (B, V, 3); faces: (F, 3) wound counter-clockwise seen from outside in a
            right-handed frame (SMPL's convention; the camera frame x right, y down,
            z forward is right-handed too, so rigidly moved meshes keep outward normals).
    Returns:
        (B, V, 3) float32.
    """
    B, V, _ = vertices.shape
    fn = face_normals(vertices, faces, normalize=False).astype(np.float64)  # (B, F, 3)
    index = (np.arange(B)[:, None, None] * V + faces[None]).reshape(B, -1)  # (B, 3F) per corner
    index = index.reshape(-1)
    out = np.empty((B * V, 3))
    for k in range(3):
        weights = np.repeat(fn[..., k], 3, axis=1).reshape(-1)
        out[:, k] = np.bincount(index, weights=weights, minlength=B * V)
    out = out.reshape(B, V, 3)
    length = np.linalg.norm(out, axis=-1, keepdims=True)
    out = np.divide(out, length, out=np.zeros_like(out), where=length > 0)
    return out.astype(np.float32)


def _pixel_rays(K: np.ndarray, size) -> np.ndarray:
    """(H·W, 6) float32 rays (origin 0, direction with z = 1) through pixel centres, cached."""
    key = (K.tobytes(), size)
    rays = _RAY_CACHE.get(key)
    if rays is None:
        d = pixel_ray_directions(K, size).reshape(-1, 3)
        rays = np.zeros((d.shape[0], 6), dtype=np.float32)
        rays[:, 3:] = d
        rays.setflags(write=False)
        _RAY_CACHE[key] = rays
        while len(_RAY_CACHE) > _RAY_CACHE_SIZE:
            _RAY_CACHE.popitem(last=False)
    else:
        _RAY_CACHE.move_to_end(key)
    return rays


@dataclass
class RaycastResult:
    """Per-pixel first hits of a batch of meshes (and optionally of camera→vertex rays).

    Attributes:
        depth: (B, H, W) float32 camera-frame Z of the hit; 0 on background.
        face_id: (B, H, W) int64 index of the hit face; −1 on background.
        bary: (B, H, W, 3) float32 barycentric weights of the hit point on the face's
            corners 0, 1, 2 (sum 1); 0 on background.
        normal: (B, H, W, 3) float32 unit geometric normal of the hit face
            (``(v1 − v0) × (v2 − v0)`` normalised, not flipped towards the camera); 0 on background.
        vertex_t: (B, V) float32 or None. For the ray ``s·X_v`` from the camera centre to
            vertex ``X_v``, the parameter ``s`` of its first hit (1 = the vertex itself, inf = none).
        vertex_face: (B, V) int64 or None, the face of that first hit (−1 = none).
    """

    depth: np.ndarray
    face_id: np.ndarray
    bary: np.ndarray
    normal: np.ndarray
    vertex_t: Optional[np.ndarray] = None
    vertex_face: Optional[np.ndarray] = None

    @property
    def mask(self) -> np.ndarray:
        """(B, H, W) bool silhouette."""
        return self.face_id >= 0


def raycast(vertices, faces, K, image_size, out_size=None, vertex_rays: bool = False) -> RaycastResult:
    """Cast one ray per pixel centre (and optionally one per vertex) at each mesh of a batch.

    Args:
        vertices: (B, V, 3) camera-frame vertices (x right, y down, z forward), numpy or torch.
        faces: (F, 3) integer triangle indices shared by the batch.
        K: (3, 3) or (B, 3, 3) intrinsics defined for an image of ``image_size``.
        image_size: (H, W) (or int) the intrinsics refer to.
        out_size: (H', W') raster size; None → ``image_size``. The same camera is rendered
            at this resolution (``K`` rescaled), e.g. 56×56 for PyMAF's IUV target, or a lower
            resolution to save time.
        vertex_rays: also cast the camera→vertex rays (fills ``vertex_t`` / ``vertex_face``).
    Returns:
        :class:`RaycastResult` with maps of size ``out_size``.
    """
    o3d = _o3d()
    verts = as_vertices(vertices)
    B, V, _ = verts.shape
    tri = as_faces(faces, V)
    size = _size(image_size)
    out = size if out_size is None else _size(out_size)
    Ks = as_intrinsics(K, B)
    if out != size:
        Ks = Ks.copy()
        Ks[:, 0] *= out[1] / size[1]
        Ks[:, 1] *= out[0] / size[0]
    H, W = out
    n_pix = H * W

    depth = np.zeros((B, H, W), np.float32)
    face_id = np.full((B, H, W), -1, np.int64)
    bary = np.zeros((B, H, W, 3), np.float32)
    normal = np.zeros((B, H, W, 3), np.float32)
    vertex_t = np.full((B, V), np.inf, np.float32) if vertex_rays else None
    vertex_face = np.full((B, V), -1, np.int64) if vertex_rays else None

    faces_o3d = o3d.core.Tensor(tri.astype(np.uint32))
    rays = np.empty((n_pix + (V if vertex_rays else 0), 6), np.float32)
    if vertex_rays:
        rays[n_pix:, :3] = 0.0
    for b in range(B):
        rays[:n_pix] = _pixel_rays(Ks[b], out)
        if vertex_rays:
            rays[n_pix:, 3:] = verts[b]
        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(o3d.core.Tensor(verts[b]), faces_o3d)
        hit = scene.cast_rays(o3d.core.Tensor(rays))
        t_hit = hit["t_hit"].numpy()
        prim = hit["primitive_ids"].numpy()
        valid = prim[:n_pix] != _INVALID_ID
        flat = np.flatnonzero(valid)
        uv = hit["primitive_uvs"].numpy()[:n_pix][flat]
        d = depth[b].reshape(-1)
        d[flat] = t_hit[:n_pix][flat]
        face_id[b].reshape(-1)[flat] = prim[:n_pix][flat]
        bb = bary[b].reshape(-1, 3)
        bb[flat, 0] = 1.0 - uv[:, 0] - uv[:, 1]
        bb[flat, 1:] = uv
        normal[b].reshape(-1, 3)[flat] = hit["primitive_normals"].numpy()[:n_pix][flat]
        if vertex_rays:
            vprim = prim[n_pix:]
            vhit = vprim != _INVALID_ID
            vertex_t[b] = t_hit[n_pix:]
            vertex_face[b][vhit] = vprim[vhit]
    return RaycastResult(depth, face_id, bary, normal, vertex_t, vertex_face)

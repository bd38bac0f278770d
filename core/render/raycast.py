"""CPU ray casting of triangle meshes through a pinhole camera (Open3D RaycastingScene, Embree).

No OpenGL context is involved: each mesh of a batch gets its own
``open3d.t.geometry.RaycastingScene``; rays through pixel centres (see
:mod:`core.render.camera`) are built once per (intrinsics, size) and reused. Optionally the
same scene also answers one occlusion ray per vertex (camera centre → vertex, Embree's
cheaper any-hit query), which is what :mod:`core.render.visibility` needs, so a frame
costs one BVH build. Only pixels inside the mesh's projected 2D bounding box are cast (the
others cannot be hit), and ``cull_back_faces`` halves the BVH for closed meshes.

Open3D facts this module relies on (checked in ``tests/test_render.py``): ``t_hit`` is in
units of the (unnormalised) ray direction, so rays with z = 1 give depth directly; a hit
point is ``(1 − u − v)·v0 + u·v1 + v·v2`` with ``(u, v) = primitive_uvs``; triangles are hit
from both sides; misses have ``t_hit = inf`` and ids ``2³² − 1``.
"""
from __future__ import annotations

import atexit

from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .camera import _size, as_intrinsics, pixel_ray_directions, rescale_intrinsics

__all__ = ["RaycastResult", "raycast", "as_vertices", "as_faces", "face_normals", "vertex_normals"]

_RAY_CACHE: "OrderedDict[tuple, object]" = OrderedDict()
_RAY_CACHE_SIZE = 16


def _release_open3d_objects() -> None:
    # Open3D tensors still alive when its C++ statics are destroyed are reported as leaks and
    # make the process exit with status 1: drop the cached ones before interpreter shutdown.
    _RAY_CACHE.clear()


atexit.register(_release_open3d_objects)


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


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product over the last axis (faster than np.cross for large batches)."""
    out = np.empty(np.broadcast_shapes(a.shape, b.shape), dtype=np.result_type(a, b))
    out[..., 0] = a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1]
    out[..., 1] = a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2]
    out[..., 2] = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    return out


def face_normals(vertices: np.ndarray, faces: np.ndarray, normalize: bool = True) -> np.ndarray:
    """Face normals ``(v1 − v0) × (v2 − v0)``.

    Args:
        vertices: (B, V, 3); faces: (F, 3).
        normalize: unit length (degenerate faces give 0) or length = 2·area.
    Returns:
        (B, F, 3) float32.
    """
    vertices = np.asarray(vertices, dtype=np.float32)
    v0, v1, v2 = (vertices[:, faces[:, k]] for k in range(3))  # (B, F, 3) each
    n = _cross(v1 - v0, v2 - v0)
    if normalize:
        length = np.sqrt((n * n).sum(-1, keepdims=True))
        n = np.divide(n, length, out=np.zeros_like(n), where=length > 0)
    return n


_INCIDENCE_CACHE: "OrderedDict[tuple, object]" = OrderedDict()


def vertex_face_incidence(faces: np.ndarray, num_vertices: int):
    """Sparse (V, F) float32 matrix with a 1 where vertex v is a corner of face f (cached)."""
    import scipy.sparse as sp

    key = (num_vertices, faces.shape, hash(faces.tobytes()))
    mat = _INCIDENCE_CACHE.get(key)
    if mat is None:
        F = faces.shape[0]
        mat = sp.csr_matrix((np.ones(3 * F, np.float32), (faces.reshape(-1), np.repeat(np.arange(F), 3))),
                            shape=(num_vertices, F))
        _INCIDENCE_CACHE[key] = mat
        while len(_INCIDENCE_CACHE) > 8:
            _INCIDENCE_CACHE.popitem(last=False)
    return mat



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
    fn = face_normals(vertices, faces, normalize=False)        # (B, F, 3), length = 2·area
    inc = vertex_face_incidence(np.asarray(faces, dtype=np.int64), V)
    # each face adds its normal to its three corners
    out = (inc @ fn.transpose(1, 0, 2).reshape(fn.shape[1], B * 3)).reshape(V, B, 3).transpose(1, 0, 2)
    out = np.ascontiguousarray(out, dtype=np.float32)
    length = np.sqrt((out * out).sum(-1, keepdims=True))
    return np.divide(out, length, out=np.zeros_like(out), where=length > 0)


def _pixel_rays(K: np.ndarray, size):
    """Rays (origin 0, direction with z = 1) through pixel centres, cached per (K, size).

    Returns (numpy (H, W, 6) float32, the same as an Open3D tensor (H·W, 6)).
    """
    key = (K.tobytes(), size)
    rays = _RAY_CACHE.get(key)
    if rays is None:
        d = pixel_ray_directions(K, size)
        arr = np.zeros(d.shape[:2] + (6,), dtype=np.float32)
        arr[..., 3:] = d
        arr.setflags(write=False)
        rays = (arr, _o3d().core.Tensor(arr.reshape(-1, 6)))
        _RAY_CACHE[key] = rays
        while len(_RAY_CACHE) > _RAY_CACHE_SIZE:
            _RAY_CACHE.popitem(last=False)
    else:
        _RAY_CACHE.move_to_end(key)
    return rays


def _pixel_window(verts: np.ndarray, K: np.ndarray, H: int, W: int):
    """Rows/cols (r0, r1, c0, c1) whose pixel centres can see the mesh: its projected bounding box.

    A ray through a pixel centre outside the 2D bounding box of the projected vertices cannot
    hit any triangle (each triangle projects inside it) when all vertices lie in front of the
    camera; otherwise the whole image is returned.
    """
    z = verts[:, 2]
    if not (z > 0).all():
        return 0, H, 0, W
    x, y = verts[:, 0] / z, verts[:, 1] / z
    if K[0, 1] != 0:                                           # skew: project fully
        u = K[0, 0] * x + K[0, 1] * y + K[0, 2]
        ulo, uhi = u.min(), u.max()
    else:                                                      # min/max of an affine map of x
        ulo, uhi = sorted((K[0, 0] * x.min() + K[0, 2], K[0, 0] * x.max() + K[0, 2]))
    vlo, vhi = sorted((K[1, 1] * y.min() + K[1, 2], K[1, 1] * y.max() + K[1, 2]))
    lo, hi = np.array([ulo, vlo]), np.array([uhi, vhi])
    c0 = int(np.clip(np.floor(lo[0] - 0.5), 0, W))
    c1 = int(np.clip(np.ceil(hi[0] - 0.5) + 1, 0, W))
    r0 = int(np.clip(np.floor(lo[1] - 0.5), 0, H))
    r1 = int(np.clip(np.ceil(hi[1] - 0.5) + 1, 0, H))
    return r0, r1, c0, c1


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
        vertex_occluded: (B, V) bool or None. Whether the segment ``s·X_v``, ``0 < s < 1 − eps``,
            from the camera centre towards vertex ``X_v`` hits any triangle. Faces that contain
            the vertex meet this line only at ``s = 1`` and so never count.
    """

    depth: np.ndarray
    face_id: np.ndarray
    bary: np.ndarray
    normal: np.ndarray
    vertex_occluded: Optional[np.ndarray] = None

    @property
    def mask(self) -> np.ndarray:
        """(B, H, W) bool silhouette."""
        return self.face_id >= 0


def raycast(vertices, faces, K, image_size, out_size=None, vertex_occlusion: bool = False,
            occlusion_eps: float = 1e-4, cull_back_faces: bool = False) -> RaycastResult:
    """Cast one ray per pixel centre (and optionally one per vertex) at each mesh of a batch.

    Args:
        vertices: (B, V, 3) camera-frame vertices (x right, y down, z forward), numpy or torch.
        faces: (F, 3) integer triangle indices shared by the batch.
        K: (3, 3) or (B, 3, 3) intrinsics defined for an image of ``image_size``.
        image_size: (H, W) (or int) the intrinsics refer to.
        out_size: (H', W') raster size; None → ``image_size``. The same camera is rendered
            at this resolution (``K`` rescaled), e.g. 56×56 for PyMAF's IUV target, or a lower
            resolution to save time.
        vertex_occlusion: also test the camera→vertex segments (fills ``vertex_occluded``).
        occlusion_eps: a hit at ``s >= 1 − eps`` along ``s·X_v`` does not occlude (relative
            to the vertex's distance, so it means the same at 2 m and at SPIN's ≈50 m).
        cull_back_faces: leave faces turned away from the camera (``n · v0 > 0``) out of the
            scene, which halves the BVH build, the dominant cost. The result is unchanged for
            closed, outward-oriented meshes (such as SMPL-layout bodies, also when
            self-intersecting) seen from outside: the first surface a ray from outside meets
            is entered from the front. Leave it off for open meshes or unknown winding.
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
        Ks = rescale_intrinsics(Ks, size, out)
    H, W = out

    if not 0.0 <= occlusion_eps < 1.0:
        raise ValueError(f"occlusion_eps must be in [0, 1), got {occlusion_eps}")
    depth = np.zeros((B, H, W), np.float32)
    face_id = np.full((B, H, W), -1, np.int64)
    bary = np.zeros((B, H, W, 3), np.float32)
    normal = np.zeros((B, H, W, 3), np.float32)
    vertex_occluded = np.empty((B, V), bool) if vertex_occlusion else None

    faces_o3d = None if cull_back_faces else o3d.core.Tensor(tri.astype(np.uint32))
    keep = None
    if cull_back_faces:
        fn_all = face_normals(verts, tri, normalize=False)      # (B, F, 3)
        facing = np.einsum("bfk,bfk->bf", fn_all, verts[:, tri[:, 0]])
    if vertex_occlusion:
        vrays = np.zeros((V, 6), np.float32)
    for b in range(B):
        scene = o3d.t.geometry.RaycastingScene()
        if cull_back_faces:
            keep = np.flatnonzero(facing[b] <= 0.0)
            faces_o3d = o3d.core.Tensor(tri[keep].astype(np.uint32))
        scene.add_triangles(o3d.core.Tensor(verts[b]), faces_o3d)
        # only pixels inside the projected bounding box can be hit
        rays_np, rays_all = _pixel_rays(Ks[b], out)
        r0, r1, c0, c1 = _pixel_window(verts[b], Ks[b], H, W)
        if r1 <= r0 or c1 <= c0:
            hit = None
        elif (r0, r1, c0, c1) == (0, H, 0, W):
            hit = scene.cast_rays(rays_all)
        else:
            hit = scene.cast_rays(o3d.core.Tensor(np.ascontiguousarray(rays_np[r0:r1, c0:c1]).reshape(-1, 6)))
        if hit is not None:
            h, w = r1 - r0, c1 - c0
            # misses: t_hit = inf, ids = 2³² − 1 (−1 as int32), uvs and normals = 0
            prim = hit["primitive_ids"].numpy().view(np.int32)
            hit_mask = prim >= 0
            if keep is not None and keep.size:
                ids = np.where(hit_mask, keep[np.maximum(prim, 0)], -1)
            else:
                ids = prim
            face_id[b, r0:r1, c0:c1] = ids.reshape(h, w)
            depth[b, r0:r1, c0:c1] = np.where(hit_mask, hit["t_hit"].numpy(), 0.0).reshape(h, w)
            uv = hit["primitive_uvs"].numpy()
            window = bary[b, r0:r1, c0:c1]
            window[..., 1:] = uv.reshape(h, w, 2)
            window[..., 0] = np.where(hit_mask, 1.0 - uv[:, 0] - uv[:, 1], 0.0).reshape(h, w)
            normal[b, r0:r1, c0:c1] = hit["primitive_normals"].numpy().reshape(h, w, 3)
        if vertex_occlusion:
            vrays[:, 3:] = verts[b]
            vertex_occluded[b] = scene.test_occlusions(o3d.core.Tensor(vrays), tnear=0.0,
                                                       tfar=1.0 - occlusion_eps).numpy()
    return RaycastResult(depth, face_id, bary, normal, vertex_occluded)

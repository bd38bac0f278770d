"""Label rendering for data generation: one Open3D scene per mesh, several rasters and the
vertex rays in a single ``cast_rays`` call.

``core.render.raycast`` builds a scene (BVH) per call and per mesh; for a ≈14k-face body
the build costs about as much as casting the 224² pixel rays, so a generator that needs
the 224² maps, PyMAF's 56² IUV target and per-vertex visibility would pay it twice or more.
Here the rays of all rasters (and the camera→vertex occlusion tests) use one scene; the hits
are unpacked into ``core.render``'s own :class:`~core.render.raycast.RaycastResult`, so
IUV and visibility come from ``core.render.iuv_from_raycast`` and
``core.render.visibility.visibility_from_raycast`` unchanged.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from core.render.camera import as_intrinsics, pixel_ray_directions
from core.render.raycast import RaycastResult, face_normals

__all__ = ["raycast_rasters"]

_INVALID = np.uint32(0xFFFFFFFF)


def _unpack(t_hit, prim, uvs, normals, shape, keep) -> RaycastResult:
    H, W = shape
    valid = prim != _INVALID
    depth = np.where(valid, t_hit, 0.0).astype(np.float32).reshape(H, W)
    ids = prim.astype(np.int64)
    if keep is not None:
        ids = np.where(valid, keep[np.where(valid, ids, 0)], -1)
    face_id = np.where(valid, ids, -1).reshape(H, W)
    bary = np.zeros((H * W, 3), np.float32)
    bary[valid, 0] = 1.0 - uvs[valid, 0] - uvs[valid, 1]
    bary[valid, 1:] = uvs[valid]
    normal = np.zeros((H * W, 3), np.float32)
    normal[valid] = normals[valid]
    return RaycastResult(depth[None], face_id[None], bary.reshape(1, H, W, 3), normal.reshape(1, H, W, 3))


_RAYS: dict = {}


def _pixel_rays(K0: np.ndarray, size: tuple, out_sizes: tuple) -> np.ndarray:
    """(Σ H'·W', 6) float32 pixel rays of every raster (cached per camera and sizes)."""
    key = (K0.tobytes(), size, out_sizes)
    rays = _RAYS.get(key)
    if rays is None:
        blocks = []
        for (h, w) in out_sizes:
            Kr = K0.copy()
            Kr[0] *= w / size[1]
            Kr[1] *= h / size[0]
            d = pixel_ray_directions(Kr, (h, w)).reshape(-1, 3)
            blocks.append(np.concatenate([np.zeros_like(d), d], axis=1))
        rays = np.concatenate(blocks, axis=0).astype(np.float32)
        rays.setflags(write=False)
        if len(_RAYS) > 8:
            _RAYS.clear()
        _RAYS[key] = rays
    return rays


def raycast_rasters(vertices: np.ndarray, faces: np.ndarray, K, image_size: int | tuple[int, int],
                    out_sizes: Sequence[tuple[int, int]], vertex_occlusion: bool = True,
                    occlusion_eps: float = 1e-4, cull_back_faces: bool = True,
                    nthreads: int = 0) -> list[RaycastResult]:
    """Cast pixel rays at several resolutions (and test camera→vertex segments) at one mesh.

    Args:
        vertices: (V, 3) camera-frame vertices (x right, y down, z forward).
        faces: (F, 3) triangles.
        K: (3, 3) intrinsics for ``image_size`` (H, W); every raster is the same camera
            rescaled (``core.render.camera`` pixel convention: pixel centres at +0.5).
        out_sizes: raster sizes [(H', W'), ...].
        vertex_occlusion: fill ``vertex_occluded`` of the *first* result (for
            ``core.render.visibility.visibility_from_raycast``): the segment from the camera
            to each vertex, up to ``1 − occlusion_eps`` of its length, hits a triangle.
        cull_back_faces: build the scene from camera-facing faces only (half the BVH
            build; exact for closed, outward-oriented meshes such as bodies — see
            ``core.render.raycast.raycast``).
        nthreads: Open3D threads (0 = all; 1 inside data-loader workers).
    Returns:
        One :class:`RaycastResult` (batch 1) per raster.
    """
    import open3d as o3d

    verts = np.ascontiguousarray(vertices, dtype=np.float32)
    if verts.ndim != 2 or verts.shape[1] != 3:
        raise ValueError(f"raycast_rasters: vertices must be (V, 3), got {verts.shape}")
    if not np.isfinite(verts).all():
        raise ValueError("raycast_rasters: vertices contain NaN/inf")
    tri = np.asarray(faces, dtype=np.int64)
    keep = None
    if cull_back_faces:
        fn = face_normals(verts[None], tri, normalize=False)[0]
        keep = np.flatnonzero((fn * verts[tri[:, 0]]).sum(1) <= 0.0)
        tri = tri[keep]
    size = (image_size, image_size) if np.ndim(image_size) == 0 else tuple(image_size)
    rays = _pixel_rays(as_intrinsics(K)[0], size, tuple(tuple(int(x) for x in s) for s in out_sizes))
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(verts), o3d.core.Tensor(np.ascontiguousarray(tri, dtype=np.uint32)))
    hit = scene.cast_rays(o3d.core.Tensor(rays), nthreads=nthreads)
    t_hit = hit["t_hit"].numpy()
    prim = hit["primitive_ids"].numpy()
    uvs = hit["primitive_uvs"].numpy()
    normals = hit["primitive_normals"].numpy()
    out, start = [], 0
    for (h, w) in out_sizes:
        sl = slice(start, start + h * w)
        out.append(_unpack(t_hit[sl], prim[sl], uvs[sl], normals[sl], (h, w), keep))
        start += h * w
    if vertex_occlusion:
        vrays = np.concatenate([np.zeros_like(verts), verts], axis=1)
        occ = scene.test_occlusions(o3d.core.Tensor(vrays), tnear=0.0, tfar=1.0 - occlusion_eps, nthreads=nthreads)
        out[0].vertex_occluded = occ.numpy().astype(bool)[None]
    return out

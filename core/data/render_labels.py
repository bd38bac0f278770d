"""Label rendering for data generation: one Open3D scene per mesh, several rasters and the
vertex rays answered by that one scene.

``core.render.raycast`` builds a scene (BVH) per call and per mesh; for a ≈14k-face body
the build costs about as much as casting the 224² pixel rays, so a generator that needs
the 224² maps, PyMAF's 56² IUV target and per-vertex visibility would pay it twice or more.
Here the rays of all rasters (and the camera→vertex occlusion tests) use one scene.

Two entry points:

* :func:`raycast_rasters` — one mesh, dense :class:`~core.render.raycast.RaycastResult` per
  raster (depth, normals …), for ``core.render.iuv_from_raycast`` /
  ``core.render.visibility.visibility_from_raycast`` (used by the evaluation).
* :func:`raycast_label_batch` — a batch of meshes for the data generator: only what labels
  need, kept sparse (the hit pixels). Per mesh it builds the scene from the camera-facing
  faces, casts in one ``cast_rays`` call the pixel rays of every raster that lie inside the
  projected bounding box of some face group (the body parts: no other ray can hit), and
  tests camera→vertex occlusion for the camera-facing vertices only (a back-facing vertex
  is not visible whatever the test says). The hits are the same rays against the same
  triangles as ``core.render.render_maps(..., cull_back_faces=True)``, so the labels are
  identical (tested, also against casting every pixel ray).

Where the time goes (one core, CPU ms per body of ≈6.9k camera-facing faces, 224² + 56²):
the BVH build ≈2.3 (Open3D builds it on the first query; linear in the faces, the same with
1 or all threads, with compacted vertices or a ``TriangleMesh``), ≈12.5k pixel rays ≈1.5
(≈7k of them hit), ≈3.3k vertex rays ≈0.55, face and vertex normals ≈0.4, ray masks ≈0.13.

Measured and left out: 32 bodies in one scene (one geometry each, far apart) build one BVH
over all of them, which costs *more* per body than 32 small builds (≈3.1 vs ≈2.6 ms); the
mesh's single bounding box casts ≈22k rays (≈0.4 ms more); a per-triangle 4×4-pixel block
mask casts ≈9.5k but costs ≈0.5 ms to compute for all faces.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from core.render.camera import as_intrinsics, pixel_ray_directions, rescale_intrinsics
from core.render.raycast import RaycastResult, face_normals, vertex_face_incidence

__all__ = ["raycast_rasters", "raycast_label_batch", "SparseHits", "LabelHits", "camera_facing"]

_INVALID = np.uint32(0xFFFFFFFF)
_EMPTY = (np.int64, np.int64, np.int64, np.float32)


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


_RAYS: "OrderedDict[tuple, np.ndarray]" = OrderedDict()


def _raster_rays(K: np.ndarray, size: tuple, out_size: tuple) -> np.ndarray:
    """(H', W', 6) float32 rays (origin 0, direction K'⁻¹(c + ½, r + ½, 1)) of the camera
    ``K`` (defined for ``size``) rendered at ``out_size``; cached, read-only."""
    key = (K.tobytes(), tuple(size), tuple(out_size))
    rays = _RAYS.get(key)
    if rays is None:
        d = pixel_ray_directions(rescale_intrinsics(K, size, out_size), out_size)
        rays = np.concatenate([np.zeros_like(d), d], axis=-1).astype(np.float32)
        rays.setflags(write=False)
        _RAYS[key] = rays
        while len(_RAYS) > 16:
            _RAYS.popitem(last=False)
    else:
        _RAYS.move_to_end(key)
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
    sizes = [tuple(int(x) for x in s) for s in out_sizes]
    K0 = as_intrinsics(K)[0]
    rays = np.concatenate([_raster_rays(K0, size, s).reshape(-1, 6) for s in sizes], axis=0)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(verts), o3d.core.Tensor(np.ascontiguousarray(tri, dtype=np.uint32)))
    hit = scene.cast_rays(o3d.core.Tensor(rays), nthreads=nthreads)
    t_hit = hit["t_hit"].numpy()
    prim = hit["primitive_ids"].numpy()
    uvs = hit["primitive_uvs"].numpy()
    normals = hit["primitive_normals"].numpy()
    out, start = [], 0
    for (h, w) in sizes:
        sl = slice(start, start + h * w)
        out.append(_unpack(t_hit[sl], prim[sl], uvs[sl], normals[sl], (h, w), keep))
        start += h * w
    if vertex_occlusion:
        vrays = np.concatenate([np.zeros_like(verts), verts], axis=1)
        occ = scene.test_occlusions(o3d.core.Tensor(vrays), tnear=0.0, tfar=1.0 - occlusion_eps, nthreads=nthreads)
        out[0].vertex_occluded = occ.numpy().astype(bool)[None]
    return out


# ----------------------------------------------------------------------------- batches
@dataclass
class SparseHits:
    """The pixels of one raster whose ray hit the mesh, for a batch of meshes.

    Attributes:
        size: (H, W) of the raster.
        batch: (N,) int64 mesh index of each hit.
        pixel: (N,) int64 flat pixel index ``row·W + col``.
        face_id: (N,) int64 hit face (index into the full face list).
        bary: (N, 3) float32 barycentric weights of the hit point on the face's corners
            0, 1, 2 (``core.render.raycast.RaycastResult`` convention).
    """

    size: tuple
    batch: np.ndarray
    pixel: np.ndarray
    face_id: np.ndarray
    bary: np.ndarray

    @property
    def flat_index(self) -> np.ndarray:
        """(N,) index into a (B, H, W) array's flat view."""
        return self.batch * (self.size[0] * self.size[1]) + self.pixel

    def face_id_map(self, batch_size: int) -> np.ndarray:
        """(B, H, W) int64 dense face ids, −1 on background."""
        out = np.full((batch_size,) + tuple(self.size), -1, np.int64)
        out.reshape(-1)[self.flat_index] = self.face_id
        return out


@dataclass
class LabelHits:
    """What :func:`raycast_label_batch` finds for a batch of B meshes with V vertices.

    Attributes:
        rasters: one :class:`SparseHits` per requested raster size.
        vertex_normals: (B, V, 3) float32 unit area-weighted vertex normals.
        back_facing: (B, V) bool, ``n_v · X_v >= 0`` (as ``core.render.visibility``).
        occluded: (B, V) bool, the camera→vertex segment hits a face before
            ``1 − occlusion_eps`` of its length. Only tested for camera-facing vertices
            (False for back-facing ones), so ``visible = ~occluded & ~back_facing`` equals
            ``core.render.visibility``'s definition. All False when occlusion was not asked.
    """

    rasters: list
    vertex_normals: np.ndarray
    back_facing: np.ndarray
    occluded: np.ndarray

    @property
    def visible(self) -> np.ndarray:
        """(B, V) bool: not occluded and facing the camera."""
        return ~self.occluded & ~self.back_facing


_CORNERS: "OrderedDict[tuple, np.ndarray]" = OrderedDict()


def _corner_index(faces: np.ndarray) -> np.ndarray:
    """(3, F) contiguous copy of ``faces.T`` (cached)."""
    key = (faces.shape, hash(faces.tobytes()))
    out = _CORNERS.get(key)
    if out is None:
        out = np.ascontiguousarray(faces.T)
        _CORNERS[key] = out
        while len(_CORNERS) > 4:
            _CORNERS.popitem(last=False)
    return out


def camera_facing(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which faces face a camera at the origin, and unit area-weighted vertex normals,
    from one pass over the faces.

    Args:
        vertices: (B, V, 3) camera-frame vertices; faces: (F, 3) int64.
    Returns:
        facing (B, F) bool: ``((v1 − v0) × (v2 − v0)) · v0 <= 0`` (the test of
        ``core.render.raycast.raycast(..., cull_back_faces=True)``); vertex_normals
        (B, V, 3) float32, as ``core.render.raycast.vertex_normals`` (same float32
        arithmetic, so the same bits).
    """
    B, V, _ = vertices.shape
    F = len(faces)
    xyz = np.ascontiguousarray(np.asarray(vertices, np.float32).transpose(2, 0, 1))         # (3, B, V)
    corner = _corner_index(faces)                                                           # (3, F)
    # g[c][k]: coordinate k of corner c, (B, F); the arithmetic runs on contiguous arrays
    g = [[np.take(xyz[k], corner[c], axis=1) for k in range(3)] for c in range(3)]
    a = [g[1][k] - g[0][k] for k in range(3)]
    b = [g[2][k] - g[0][k] for k in range(3)]
    fn = np.empty((3, B, F), np.float32)                                                    # |n| = 2·area
    np.subtract(a[1] * b[2], a[2] * b[1], out=fn[0])
    np.subtract(a[2] * b[0], a[0] * b[2], out=fn[1])
    np.subtract(a[0] * b[1], a[1] * b[0], out=fn[2])
    facing = (fn[0] * g[0][0] + fn[1] * g[0][1] + fn[2] * g[0][2]) <= 0.0
    # each face adds its normal to its three corners: (3B, F) @ (F, V)
    vn = fn.reshape(3 * B, F) @ vertex_face_incidence(faces, V).T   # (F, V) view, cached
    vx, vy, vz = vn[:B], vn[B:2 * B], vn[2 * B:]
    length = np.sqrt(vx * vx + vy * vy + vz * vz)
    out = np.zeros((B, V, 3), np.float32)
    for k, comp in enumerate((vx, vy, vz)):
        np.divide(comp, length, out=out[..., k], where=length > 0)
    return facing, out


_GROUPS: "OrderedDict[tuple, tuple]" = OrderedDict()


def _group_vertices(faces: np.ndarray, face_groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The corner vertices of each group's faces, concatenated group after group (M,), and
    where each group starts (G,) — for ``np.minimum.reduceat``; cached."""
    groups = np.zeros(len(faces), np.int64) if face_groups is None else np.asarray(face_groups)
    if groups.shape != (len(faces),):
        raise ValueError(f"face_groups must be (F,) = ({len(faces)},), got {groups.shape}")
    key = (hash(faces.tobytes()), hash(groups.tobytes()))
    if key not in _GROUPS:
        members = [np.unique(faces[groups == g]) for g in np.unique(groups)]
        starts = np.concatenate([[0], np.cumsum([len(m) for m in members])[:-1]]).astype(np.int64)
        _GROUPS[key] = (np.concatenate(members), starts)
        while len(_GROUPS) > 4:
            _GROUPS.popitem(last=False)
    return _GROUPS[key]


def _ray_pixels(vertices: np.ndarray, K: np.ndarray, size: tuple, sizes: list,
                groups: tuple[np.ndarray, np.ndarray]) -> list[list[np.ndarray]]:
    """Flat pixel indices, per mesh and raster, of the pixel centres that can see the mesh.

    Each triangle projects inside the bounding box of its group's projected vertices, so
    the pixel centres inside the union of the group boxes are all that can be hit. A mesh
    with a vertex at ``z <= 0`` gets every pixel.

    Args: vertices (B, V, 3); K (3, 3) for ``size``; sizes: raster sizes; groups: from
        :func:`_group_vertices`.
    """
    B = len(vertices)
    out = [[np.arange(h * w) for (h, w) in sizes] for _ in range(B)]
    z = np.ascontiguousarray(vertices[..., 2], dtype=np.float64)
    front = np.flatnonzero((z > 0).all(1))
    if not len(front):
        return out
    members, starts = groups
    box = []                                                              # (lo, hi) of u, then v: (b, G)
    for axis in (0, 1):
        p = np.take(vertices[front, :, axis] / z[front], members, axis=1) * K[axis, axis] + K[axis, 2]
        box.append((np.minimum.reduceat(p, starts, axis=1), np.maximum.reduceat(p, starts, axis=1)))
    for k, (H, W) in enumerate(sizes):
        (ulo, uhi), (vlo, vhi) = [(lo * s, hi * s) for (lo, hi), s in zip(box, (W / size[1], H / size[0]))]
        # pixel centres c + ½ in [lo, hi] (with up to a pixel to spare)
        c0, c1 = (np.clip(x, 0, W).astype(np.int64) for x in (np.floor(ulo - 0.5), np.ceil(uhi - 0.5) + 1))
        r0, r1 = (np.clip(x, 0, H).astype(np.int64) for x in (np.floor(vlo - 0.5), np.ceil(vhi - 0.5) + 1))
        boxes = np.stack([r0, r1, c0, c1], -1).tolist()                                         # (b, G, 4)
        inside = np.zeros((H, W), bool)
        for j, b in enumerate(front):
            inside[...] = False
            for y0, y1, x0, x1 in boxes[j]:
                inside[y0:y1, x0:x1] = True
            out[b][k] = np.flatnonzero(inside)
    return out


def raycast_label_batch(vertices: np.ndarray, faces: np.ndarray, K, image_size: int | tuple[int, int],
                        out_sizes: Sequence[tuple[int, int]], vertex_occlusion: bool = True,
                        occlusion_eps: float = 1e-4, face_groups: np.ndarray | None = None,
                        nthreads: int = 1) -> LabelHits:
    """Pixel hits of several rasters and per-vertex occlusion for a batch of closed meshes.

    Each mesh gets one scene of its camera-facing faces (exact for closed,
    outward-oriented meshes such as bodies, see ``core.render.raycast.raycast``), one
    ``cast_rays`` call for the pixel rays of all rasters that can hit it (inside the
    projected bounding boxes of its face groups), and one ``test_occlusions`` call for its
    camera-facing vertices.

    Args:
        vertices: (B, V, 3) camera-frame vertices (x right, y down, z forward).
        faces: (F, 3) triangles shared by the batch.
        K: (3, 3) intrinsics for ``image_size`` (H, W); every raster is the same camera
            rescaled (pixel centres at +0.5, see ``core.render.camera``).
        out_sizes: raster sizes [(H', W'), ...].
        vertex_occlusion: test camera→vertex segments (camera-facing vertices only).
        occlusion_eps: a hit at ``s >= 1 − eps`` along ``s·X_v`` does not occlude.
        face_groups: optional (F,) group id per face (e.g. the body part); rays are cast
            only inside the union of the groups' projected bounding boxes, which for compact
            groups is much smaller than the mesh's box (24 body parts: ≈12k instead of ≈22k
            rays for a 224² crop). None = one group. Does not change the result.
        nthreads: Open3D threads per call (1 in parallel workers, 0 = all).
    Returns:
        :class:`LabelHits`.
    """
    import open3d as o3d

    verts = np.asarray(vertices)
    if verts.ndim != 3 or verts.shape[-1] != 3:
        raise ValueError(f"raycast_label_batch: vertices must be (B, V, 3), got {verts.shape} "
                         f"(for one mesh pass vertices[None])")
    verts = np.ascontiguousarray(verts, dtype=np.float32)
    if not np.isfinite(verts).all():
        raise ValueError("raycast_label_batch: vertices contain NaN/inf; cannot render")
    if not 0.0 <= occlusion_eps < 1.0:
        raise ValueError(f"occlusion_eps must be in [0, 1), got {occlusion_eps}")
    tri = np.asarray(faces, dtype=np.int64)
    B, V, _ = verts.shape
    size = (int(image_size), int(image_size)) if np.ndim(image_size) == 0 else tuple(int(x) for x in image_size)
    sizes = [tuple(int(x) for x in s) for s in out_sizes]
    K0 = np.array(as_intrinsics(K)[0])
    tables = [_raster_rays(K0, size, s).reshape(-1, 6) for s in sizes]

    facing, vn = camera_facing(verts, tri)
    back_facing = np.einsum("bvk,bvk->bv", vn, verts) >= 0.0
    occluded = np.zeros((B, V), bool)
    pixels = _ray_pixels(verts, K0, size, sizes, _group_vertices(tri, face_groups))   # per mesh, per raster
    tri32 = tri.astype(np.uint32)
    found = [([], [], [], []) for _ in sizes]                  # per raster: body, pixel, face, (u, v)
    for b in range(B):
        keep = np.flatnonzero(facing[b])
        scene = o3d.t.geometry.RaycastingScene(nthreads=max(nthreads, 0))
        scene.add_triangles(o3d.core.Tensor(verts[b]), o3d.core.Tensor(np.take(tri32, keep, axis=0)))
        counts = [len(p) for p in pixels[b]]
        if sum(counts):
            rays = np.concatenate([np.take(t, p, axis=0) for t, p in zip(tables, pixels[b])])
            hit = scene.cast_rays(o3d.core.Tensor.from_numpy(rays), nthreads=nthreads)
            prim, uv = hit["primitive_ids"].numpy(), hit["primitive_uvs"].numpy()
            at = 0
            for k, p in enumerate(pixels[b]):
                seg = prim[at:at + counts[k]]
                ray = np.flatnonzero(seg != _INVALID)                   # hits among this raster's rays
                out = found[k]
                out[0].append(np.full(len(ray), b, np.int64))
                out[1].append(np.take(p, ray))
                out[2].append(np.take(keep, np.take(seg, ray)))
                out[3].append(np.take(uv, ray + at, axis=0))
                at += counts[k]
        if vertex_occlusion:
            front = np.flatnonzero(~back_facing[b])
            vrays = np.zeros((len(front), 6), np.float32)
            vrays[:, 3:] = np.take(verts[b], front, axis=0)
            occ = scene.test_occlusions(o3d.core.Tensor.from_numpy(vrays), tnear=0.0, tfar=1.0 - occlusion_eps,
                                        nthreads=nthreads)
            occluded[b, front] = occ.numpy().astype(bool)

    rasters = []
    for k, s in enumerate(sizes):
        body, pixel, face, uv = (np.concatenate(a) if a else np.zeros((0, 2) if j == 3 else 0, _EMPTY[j])
                                 for j, a in enumerate(found[k]))
        bary = np.empty((len(uv), 3), np.float32)
        bary[:, 1:] = uv
        bary[:, 0] = 1.0 - uv[:, 0] - uv[:, 1]
        rasters.append(SparseHits(s, body, pixel, face, bary))
    return LabelHits(rasters, vn, back_facing, occluded)

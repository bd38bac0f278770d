"""IUV maps (DensePose convention), part segmentations, masks and depth from one raycast.

I = part id 0..24 (0 = background); U, V in [0, 1] are the barycentric interpolation, at
the pixel centre, of the hit face's per-corner UVs ``face_uv[f, k]`` (so UV seams are
handled per corner). On background U = V = 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .parts import DENSEPOSE_TO_LSP6
from .raycast import RaycastResult, as_faces, as_vertices, raycast
from .visibility import VertexVisibility, visibility_from_raycast

__all__ = ["IUVMaps", "RenderedMaps", "as_face_labels", "iuv_from_raycast", "render_iuv", "render_maps"]


@dataclass
class IUVMaps:
    """DensePose-style maps.

    Attributes:
        part: (B, H, W) uint8 part id 0..24, 0 = background.
        u, v: (B, H, W) float32 in [0, 1], 0 on background.
    """

    part: np.ndarray
    u: np.ndarray
    v: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """(B, H, W) bool foreground."""
        return self.part > 0

    def stacked(self) -> np.ndarray:
        """(B, H, W, 3) float32 ``[I, U, V]`` with I as a float part id."""
        return np.stack([self.part.astype(np.float32), self.u, self.v], axis=-1)

    def as_pymaf_target(self) -> np.ndarray:
        """(B, 3, H, W) float32 ``[I/24, U, V]``, the layout of PyMAF's GT IUV image."""
        return np.stack([self.part.astype(np.float32) / 24.0, self.u, self.v], axis=1)

    def lsp6(self) -> np.ndarray:
        """(B, H, W) uint8 LSP 6-part labels (see :mod:`core.render.parts`)."""
        return DENSEPOSE_TO_LSP6[self.part]


def as_face_labels(face_part, face_uv, num_faces: int):
    """Validate per-face part ids (F,) in 0..24 and per-corner UVs (F, 3, 2); numpy out."""
    if hasattr(face_part, "detach"):
        face_part = face_part.detach().cpu().numpy()
    if hasattr(face_uv, "detach"):
        face_uv = face_uv.detach().cpu().numpy()
    face_part = np.asarray(face_part)
    face_uv = np.asarray(face_uv, dtype=np.float32)
    if face_part.shape != (num_faces,) or not np.issubdtype(face_part.dtype, np.integer):
        raise ValueError(f"face_part must be integer (F,) = ({num_faces},), got {face_part.dtype} {face_part.shape}")
    if face_part.size and (face_part.min() < 0 or face_part.max() > 24):
        raise ValueError(f"face_part ids must be in 0..24 (DensePose parts 1..24), "
                         f"got range [{face_part.min()}, {face_part.max()}]")
    if face_uv.shape != (num_faces, 3, 2):
        raise ValueError(f"face_uv must be (F, 3, 2) = ({num_faces}, 3, 2) per-corner (U, V), got {face_uv.shape}")
    return face_part.astype(np.uint8), face_uv


def iuv_from_raycast(hits: RaycastResult, face_part, face_uv) -> IUVMaps:
    """IUV maps from per-pixel hits.

    Args:
        hits: :class:`RaycastResult` (B, H, W).
        face_part: (F,) ints 0..24 (DensePose part of each face).
        face_uv: (F, 3, 2) per-corner (U, V).
    """
    num_faces = face_uv.shape[0] if hasattr(face_uv, "shape") else len(face_uv)
    face_part, face_uv = as_face_labels(face_part, face_uv, num_faces)
    fid = hits.face_id
    if fid.size and fid.max() >= num_faces:
        raise ValueError(f"hits reference face {fid.max()} but face labels cover {num_faces} faces")
    flat = np.flatnonzero(fid >= 0)
    hit_faces = fid.reshape(-1)[flat]
    part = np.zeros(fid.size, np.uint8)
    part[flat] = face_part[hit_faces]
    uv = np.einsum("nk,nkc->nc", hits.bary.reshape(-1, 3)[flat], face_uv[hit_faces])
    u = np.zeros(fid.size, np.float32)
    v = np.zeros(fid.size, np.float32)
    u[flat], v[flat] = uv[:, 0], uv[:, 1]
    return IUVMaps(part.reshape(fid.shape), u.reshape(fid.shape), v.reshape(fid.shape))


def render_iuv(vertices, faces, face_part, face_uv, K, image_size, out_size=None,
               cull_back_faces: bool = False) -> IUVMaps:
    """Render IUV maps of a batch of meshes.

    Args:
        vertices: (B, V, 3) camera-frame vertices; faces: (F, 3).
        face_part: (F,) DensePose part id per face; face_uv: (F, 3, 2) per-corner UV.
        K: (3, 3) or (B, 3, 3) intrinsics for ``image_size`` (H, W).
        out_size: raster size (e.g. (56, 56) for PyMAF's target); None → ``image_size``.
        cull_back_faces: faster, exact for closed outward-oriented meshes such as bodies
            (see :func:`core.render.raycast.raycast`).
    Returns:
        :class:`IUVMaps` of size ``out_size``.
    """
    hits = raycast(vertices, faces, K, image_size, out_size, cull_back_faces=cull_back_faces)
    return iuv_from_raycast(hits, face_part, face_uv)


@dataclass
class RenderedMaps:
    """Everything one raycast gives for a batch of meshes.

    Attributes:
        hits: :class:`RaycastResult` (depth, face ids, barycentrics, normals).
        iuv: :class:`IUVMaps` or None when no face labels were given.
        visibility: :class:`VertexVisibility` or None when not asked for.
    """

    hits: RaycastResult
    iuv: Optional[IUVMaps] = None
    visibility: Optional[VertexVisibility] = None

    @property
    def mask(self) -> np.ndarray:
        """(B, H, W) bool silhouette."""
        return self.hits.mask

    @property
    def depth(self) -> np.ndarray:
        """(B, H, W) float32 depth, 0 on background."""
        return self.hits.depth


def render_maps(vertices, faces, K, image_size, face_part=None, face_uv=None, out_size=None,
                visibility: bool = True, eps: float = 1e-4, cull_back_faces: bool = False) -> RenderedMaps:
    """One scene build per mesh → masks, depth, IUV (if labels given) and vertex visibility.

    Args:
        vertices: (B, V, 3) camera-frame vertices; faces: (F, 3).
        K: (3, 3) or (B, 3, 3) intrinsics for ``image_size`` (H, W).
        face_part, face_uv: optional (F,) and (F, 3, 2) labels for IUV maps.
        out_size: raster size (None → ``image_size``); visibility's crop is ``image_size``.
        visibility: also compute per-vertex visibility (one extra ray per vertex).
        eps: relative occlusion tolerance for visibility.
        cull_back_faces: faster, exact for closed outward-oriented meshes such as bodies
            (see :func:`core.render.raycast.raycast`).
    """
    if (face_part is None) != (face_uv is None):
        raise ValueError("pass both face_part and face_uv (for IUV maps) or neither")
    verts = as_vertices(vertices)
    tri = as_faces(faces, verts.shape[1])
    hits = raycast(verts, tri, K, image_size, out_size, vertex_occlusion=visibility, occlusion_eps=eps,
                   cull_back_faces=cull_back_faces)
    iuv = iuv_from_raycast(hits, face_part, face_uv) if face_part is not None else None
    vis = visibility_from_raycast(verts, tri, K, image_size, hits) if visibility else None
    return RenderedMaps(hits, iuv, vis)

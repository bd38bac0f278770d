"""Per-vertex visibility of a batch of meshes seen through a pinhole camera.

A vertex ``X_v`` (camera frame) is

- **occluded** when the ray from the camera centre towards it, ``s·X_v``, hits any face at
  ``s < 1 − eps`` (eps is relative to the vertex's distance, so it means the same at SPIN's
  ≈50 m camera distance and at 2 m). Faces that contain the vertex meet that line only at
  ``s = 1`` and so are never occluders;
- **back-facing** when its area-weighted normal points away from the camera:
  ``n_v · X_v >= 0`` (view direction = ``X_v − 0``);
- **out of crop** when it projects outside ``[0, W) × [0, H)`` or lies at ``Z <= 0``.

``visible = not occluded and not back-facing`` (the crop is reported separately) and
``weight = visible and in crop`` as float, MeshPose's visibility target (low w for occluded or
out-of-crop vertices).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .camera import _size, as_intrinsics, project_points
from .raycast import RaycastResult, as_faces, as_vertices, raycast, vertex_normals

__all__ = ["VertexVisibility", "vertex_visibility", "visibility_from_raycast"]


@dataclass
class VertexVisibility:
    """Visibility of every vertex and the separate reasons.

    Attributes (all (B, V)):
        visible: bool, not occluded and facing the camera.
        weight: float32, 1.0 where visible and inside the crop, else 0.0.
        occluded: bool, something else is hit first on the camera→vertex ray.
        back_facing: bool, vertex normal · view direction >= 0.
        out_of_crop: bool, projects outside the image or lies behind the camera.
        pixels: (B, V, 2) float64 continuous pixel coordinates (nan behind the camera).
    """

    visible: np.ndarray
    weight: np.ndarray
    occluded: np.ndarray
    back_facing: np.ndarray
    out_of_crop: np.ndarray
    pixels: np.ndarray


def visibility_from_raycast(vertices, faces, K, image_size, hits: RaycastResult) -> VertexVisibility:
    """Visibility from a :class:`RaycastResult` cast with ``vertex_occlusion=True`` on the same meshes.

    Args:
        vertices: (B, V, 3) camera-frame vertices; faces: (F, 3).
        K: (3, 3) or (B, 3, 3) intrinsics for ``image_size`` (H, W) — the crop whose bounds
            define out-of-crop.
        hits: the raycast of these meshes with ``vertex_occlusion=True``.
    """
    if hits.vertex_occluded is None:
        raise ValueError("visibility_from_raycast needs hits cast with raycast(..., vertex_occlusion=True)")
    verts = as_vertices(vertices)
    B, V, _ = verts.shape
    tri = as_faces(faces, V)
    H, W = _size(image_size)
    Ks = as_intrinsics(K, B)
    if hits.vertex_occluded.shape != (B, V):
        raise ValueError(f"hits.vertex_occluded is {hits.vertex_occluded.shape}, expected {(B, V)} for these vertices")
    occluded = hits.vertex_occluded

    normals = vertex_normals(verts, tri)
    back_facing = np.einsum("bvk,bvk->bv", normals, verts) >= 0.0

    pixels = project_points(verts, Ks)
    with np.errstate(invalid="ignore"):
        inside = ((pixels[..., 0] >= 0) & (pixels[..., 0] < W)
                  & (pixels[..., 1] >= 0) & (pixels[..., 1] < H) & (verts[..., 2] > 0))
    out_of_crop = ~inside
    visible = ~occluded & ~back_facing
    weight = (visible & inside).astype(np.float32)
    return VertexVisibility(visible, weight, occluded, back_facing, out_of_crop, pixels)


def vertex_visibility(vertices, faces, K, image_size, eps: float = 1e-4,
                      cull_back_faces: bool = False) -> VertexVisibility:
    """Per-vertex visibility with one occlusion ray per vertex (a single ray batch per mesh).

    Args:
        vertices: (B, V, 3) camera-frame vertices (numpy or torch).
        faces: (F, 3) integer triangles (outward counter-clockwise winding).
        K: (3, 3) or (B, 3, 3) intrinsics for an image of ``image_size`` (H, W).
        eps: relative occlusion tolerance (see module docstring).
        cull_back_faces: faster, exact for closed outward-oriented meshes such as bodies
            (see :func:`core.render.raycast.raycast`).
    Returns:
        :class:`VertexVisibility`.
    """
    verts = as_vertices(vertices)
    # a 1×1 raster: the scene is built once per mesh, the vertex rays dominate
    hits = raycast(verts, faces, K, image_size, out_size=(1, 1),
                   vertex_occlusion=True, occlusion_eps=eps, cull_back_faces=cull_back_faces)
    return visibility_from_raycast(verts, faces, K, image_size, hits)

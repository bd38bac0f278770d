"""Training targets for VertexPose and conversions to MeshPose's pixel space.

**Barycentric targets.** A DensePose point (pixel, part I, UV) lies on one low-poly face;
its barycentric coordinates on that face's three vertices are the target distribution of
the per-pixel vertex posterior (paper §3.1.2: "the per-pixel distribution over VertexPose
matches the UV annotation's barycentrics"). Three sources:

- :func:`target_from_uv`: DensePose annotations (I, U, V): the low-poly face of part I
  whose per-corner UV triangle contains (U, V) (else the one it is least outside of),
  barycentrics in UV space;
- :func:`target_from_lowpoly_hits`: a raycast of the low-poly mesh — the hit face and
  barycentrics directly;
- :func:`target_from_body_hits`: a raycast of the full body — the hit point on the body's
  rest surface, moved to the closest point of the same part's low-poly rest surface.

Background points get the background class (index V) with weight 1.

**Pixel space.** MeshPose's vertices are (x, y) in crop pixels and z a depth in pixel
units relative to a root: ``z = (Z − Z_root) · f / Z_root``. :func:`camera_to_pixel_space`
and :func:`pixel_space_to_camera` convert exactly both ways (each vertex on its own pixel
ray), given the root depth; :func:`estimate_root_depth` picks the root depth that gives the
low-poly mesh the template's size (sum of edge lengths, which posing hardly changes).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .lowpoly import NUM_PARTS, LowPolyTemplate

__all__ = ["VertexTarget", "target_from_uv", "target_from_lowpoly_hits", "target_from_body_hits",
           "uv_barycentrics", "camera_to_pixel_space", "pixel_space_to_camera", "estimate_root_depth"]


@dataclass
class VertexTarget:
    """Per-point VertexPose targets (batch first, N points per image).

    pixels: (B, N, 2) float (x, y) in *score-map* pixels (centre of map pixel (r, c) is
        (c + 0.5, r + 0.5)).
    vertex_ids: (B, N, 3) long low-poly vertices (background points: V, V, V).
    weights: (B, N, 3) float barycentrics (background: 1, 0, 0).
    part: (B, N) long 0..24 (0 = background); uv: (B, N, 2) float.
    valid: (B, N) bool (False = ignore: padding, unannotated).
    """

    pixels: torch.Tensor
    vertex_ids: torch.Tensor
    weights: torch.Tensor
    part: torch.Tensor
    uv: torch.Tensor
    valid: torch.Tensor

    @property
    def foreground(self) -> torch.Tensor:
        return self.valid & (self.part > 0)


def uv_barycentrics(points: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Barycentric coordinates of 2D points in 2D triangles (degenerate triangles → −inf).

    Args:
        points: (Q, 2); tri: (T, 3, 2).
    Returns:
        (Q, T, 3).
    """
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    v0, v1 = b - a, c - a
    d00 = (v0 * v0).sum(-1)
    d01 = (v0 * v1).sum(-1)
    d11 = (v1 * v1).sum(-1)
    den = d00 * d11 - d01 * d01                                           # (T,)
    v2 = points[:, None] - a[None]                                        # (Q, T, 2)
    d20 = (v2 * v0[None]).sum(-1)
    d21 = (v2 * v1[None]).sum(-1)
    ok = np.abs(den) > 1e-18
    safe = np.where(ok, den, 1.0)
    beta = (d11 * d20 - d01 * d21) / safe
    gamma = (d00 * d21 - d01 * d20) / safe
    out = np.stack([1.0 - beta - gamma, beta, gamma], -1)
    out[:, ~ok] = -np.inf
    return out


def _background_rows(shape, V: int):
    ids = np.full(shape + (3,), V, np.int64)
    w = np.zeros(shape + (3,), np.float32)
    w[..., 0] = 1.0
    return ids, w


def target_from_uv(lowpoly: LowPolyTemplate, pixels, part, uv, valid=None) -> VertexTarget:
    """Targets for DensePose-style annotations (see module docstring).

    Args:
        pixels: (B, N, 2) score-map pixels; part: (B, N) 0..24; uv: (B, N, 2);
        valid: (B, N) bool or None (all valid). NumPy or torch.
    """
    as_np = lambda x: x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)  # noqa: E731
    pixels, part, uv = as_np(pixels).astype(np.float32), as_np(part).astype(np.int64), as_np(uv).astype(np.float64)
    if part.ndim != 2 or pixels.shape != part.shape + (2,) or uv.shape != part.shape + (2,):
        raise ValueError(f"target_from_uv: expected pixels (B, N, 2), part (B, N), uv (B, N, 2); got "
                         f"{pixels.shape}, {part.shape}, {uv.shape}")
    valid = np.ones(part.shape, bool) if valid is None else as_np(valid).astype(bool)
    V = lowpoly.num_vertices
    ids, w = _background_rows(part.shape, V)
    for p in np.unique(part[valid & (part > 0)]):
        faces = np.flatnonzero(lowpoly.face_part == p)
        if len(faces) == 0:
            raise ValueError(f"the low-poly template has no face of part {p}")
        sel = valid & (part == p)
        bary = uv_barycentrics(uv[sel], lowpoly.face_uv[faces].astype(np.float64))   # (Q, T, 3)
        score = bary.min(-1)                                  # ≥ 0 inside; the least outside otherwise
        best = score.argmax(1)
        b = np.clip(bary[np.arange(len(best)), best], 0.0, None)
        b = b / np.maximum(b.sum(-1, keepdims=True), 1e-12)
        ids[sel] = lowpoly.faces[faces[best]]
        w[sel] = b
    return VertexTarget(torch.from_numpy(pixels), torch.from_numpy(ids), torch.from_numpy(w),
                        torch.from_numpy(part), torch.from_numpy(uv.astype(np.float32)), torch.from_numpy(valid))


def _pixel_grid(B: int, h: int, w: int) -> np.ndarray:
    ys, xs = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    return np.broadcast_to(np.stack([xs, ys], -1).reshape(1, h * w, 2), (B, h * w, 2)).astype(np.float32)


def target_from_lowpoly_hits(lowpoly: LowPolyTemplate, hits) -> VertexTarget:
    """Dense targets from a raycast (``core.render.raycast``) of the low-poly mesh at the
    score-map resolution: every pixel is a point (N = h·w, row-major)."""
    fid = np.asarray(hits.face_id)
    B, h, w = fid.shape
    fg = fid >= 0
    V = lowpoly.num_vertices
    ids, wts = _background_rows((B, h, w), V)
    safe = np.where(fg, fid, 0)
    ids[fg] = lowpoly.faces[safe[fg]]
    wts[fg] = hits.bary[fg]
    part = np.where(fg, lowpoly.face_part[safe], 0)
    uv = np.einsum("bhwk,bhwkc->bhwc", np.where(fg[..., None], hits.bary, 0.0), lowpoly.face_uv[safe])
    return VertexTarget(torch.from_numpy(_pixel_grid(B, h, w).copy()), torch.from_numpy(ids.reshape(B, -1, 3)),
                        torch.from_numpy(wts.reshape(B, -1, 3).astype(np.float32)),
                        torch.from_numpy(part.reshape(B, -1).astype(np.int64)),
                        torch.from_numpy(uv.reshape(B, -1, 2).astype(np.float32)),
                        torch.ones(B, h * w, dtype=torch.bool))


class _PartSurfaces:
    """Per-part closest-point queries on the low-poly rest surface (Open3D scenes, cached)."""

    def __init__(self, lowpoly: LowPolyTemplate, rest_vertices: np.ndarray):
        import open3d as o3d

        self.faces = {}
        self.scenes = {}
        low = rest_vertices[lowpoly.vertex_ids].astype(np.float32)
        for p in range(1, NUM_PARTS + 1):
            f = np.flatnonzero(lowpoly.face_part == p)
            if len(f) == 0:
                continue
            scene = o3d.t.geometry.RaycastingScene()
            scene.add_triangles(o3d.core.Tensor(low), o3d.core.Tensor(lowpoly.faces[f].astype(np.uint32)))
            self.faces[p], self.scenes[p] = f, scene

    def closest(self, p: int, points: np.ndarray):
        import open3d as o3d

        res = self.scenes[p].compute_closest_points(o3d.core.Tensor(points.astype(np.float32)))
        fid = self.faces[p][res["primitive_ids"].numpy().astype(np.int64)]
        uv = res["primitive_uvs"].numpy().astype(np.float64)
        bary = np.clip(np.stack([1 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], 1), 0.0, 1.0)
        return fid, bary / bary.sum(1, keepdims=True)


_SURFACES: dict = {}


def target_from_body_hits(lowpoly: LowPolyTemplate, body, hits) -> VertexTarget:
    """Dense targets from a raycast of the *full* body mesh at the score-map resolution.

    Each hit point is expressed on the body's rest surface (same face, same barycentrics)
    and moved to the closest point of the low-poly rest faces of the same part.
    """
    fid = np.asarray(hits.face_id)
    B, h, w = fid.shape
    fg = fid >= 0
    V = lowpoly.num_vertices
    key = (id(lowpoly), body.name, body.num_vertices)
    if key not in _SURFACES:
        _SURFACES.clear()
        _SURFACES[key] = _PartSurfaces(lowpoly, body.v_template.detach().cpu().numpy())
    surfaces = _SURFACES[key]
    rest = body.v_template.detach().cpu().numpy().astype(np.float64)
    faces = np.asarray(body.faces)
    face_part = np.asarray(body.face_part)
    face_uv = np.asarray(body.face_uv, np.float64)
    ids, wts = _background_rows((B, h, w), V)
    part = np.zeros((B, h, w), np.int64)
    uv = np.zeros((B, h, w, 2), np.float32)
    f = fid[fg]
    bary = hits.bary[fg].astype(np.float64)
    pts = np.einsum("nk,nkc->nc", bary, rest[faces[f]])
    p_hit = face_part[f]
    out_ids = np.zeros((len(f), 3), np.int64)
    out_w = np.zeros((len(f), 3), np.float32)
    for p in np.unique(p_hit):
        sel = p_hit == p
        lf, lb = surfaces.closest(int(p), pts[sel])
        out_ids[sel] = lowpoly.faces[lf]
        out_w[sel] = lb
    ids[fg], wts[fg] = out_ids, out_w
    part[fg] = p_hit
    uv[fg] = np.einsum("nk,nkc->nc", bary, face_uv[f])
    return VertexTarget(torch.from_numpy(_pixel_grid(B, h, w).copy()), torch.from_numpy(ids.reshape(B, -1, 3)),
                        torch.from_numpy(wts.reshape(B, -1, 3)), torch.from_numpy(part.reshape(B, -1)),
                        torch.from_numpy(uv.reshape(B, -1, 2)), torch.ones(B, h * w, dtype=torch.bool))


# ------------------------------------------------------------------------------ pixel space
def camera_to_pixel_space(vertices: torch.Tensor, focal: float, center, root_depth: torch.Tensor) -> torch.Tensor:
    """Camera-frame vertices → MeshPose pixel space.

    Args:
        vertices: (B, N, 3) camera frame (x right, y down, z forward), Z > 0.
        focal: focal length in crop pixels; center: (cx, cy) principal point in crop pixels.
        root_depth: (B,) depth Z_root of the root (e.g. the pelvis).
    Returns:
        (B, N, 3): x, y = projection in crop pixels; z = (Z − Z_root)·f/Z_root.
    """
    Z = vertices[..., 2]
    cx, cy = float(center[0]), float(center[1])
    zr = root_depth.reshape(-1, 1).to(vertices)
    return torch.stack([focal * vertices[..., 0] / Z + cx, focal * vertices[..., 1] / Z + cy,
                        (Z - zr) * focal / zr], dim=-1)


def pixel_space_to_camera(points: torch.Tensor, focal: float, center, root_depth: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`camera_to_pixel_space`: Z = Z_root·(1 + z/f), (X, Y) on each pixel's ray."""
    cx, cy = float(center[0]), float(center[1])
    zr = root_depth.reshape(-1, 1).to(points)
    Z = zr * (1.0 + points[..., 2] / focal)
    return torch.stack([(points[..., 0] - cx) * Z / focal, (points[..., 1] - cy) * Z / focal, Z], dim=-1)


def estimate_root_depth(low_points: torch.Tensor, lowpoly: LowPolyTemplate, rest_vertices: torch.Tensor,
                        focal: float) -> torch.Tensor:
    """Root depth that gives the predicted low-poly mesh the rest template's size.

    metres per pixel = Σ|edge| (rest template, metres) / Σ|edge| (prediction, pixels, with z);
    Z_root = focal · metres per pixel. This assumes an average-sized person (MeshPose itself
    predicts no metric scale).

    Args:
        low_points: (B, V, 3) low-poly vertices in pixel space.
        rest_vertices: (N, 3) the body's rest vertices (metres).
    Returns:
        (B,) depth in metres.
    """
    e = torch.as_tensor(lowpoly.edges, device=low_points.device)
    rest = rest_vertices.to(low_points)[torch.as_tensor(lowpoly.vertex_ids, device=low_points.device)]
    rest_len = (rest[e[:, 0]] - rest[e[:, 1]]).norm(dim=-1).sum()
    pred_len = (low_points[:, e[:, 0]] - low_points[:, e[:, 1]]).norm(dim=-1).sum(-1)
    return focal * rest_len / pred_len.clamp_min(1e-6)

"""Differentiable soft silhouette (SoftRas-style) with MeshPose's per-vertex visibility weights.

Definitions (pixel units; pixel ``(r, c)`` has its centre at ``(c + 0.5, r + 0.5)``, the
same convention as the raycaster, see :mod:`core.render.camera`):

- For pixel ``i`` and projected triangle ``j``, ``d_ij`` is the Euclidean distance from the
  pixel centre to the triangle's boundary (nearest point on its three edges) and
  ``δ_ij = +1`` if the centre is inside the triangle, −1 otherwise (a zero-area triangle is
  "outside" everywhere). SoftRas's influence is ``D_ij = sigmoid(δ_ij · d_ij² / σ)``.
- MeshPose (supplementary §3.2.2, eq. 7) multiplies each influence by the face's visibility
  weight at that pixel, ``w_ij``, "the linear interpolation between the visibility weights of
  the three vertices of face j at pixel i". We interpolate with the barycentric coordinates
  of the point of the triangle nearest to the pixel: the pixel's own barycentrics inside the
  triangle and the position along the nearest edge outside it, so ``w_ij`` stays in [0, 1]
  and is continuous across the triangle's boundary.
- Aggregation ``I_i = 1 − ∏_j (1 − w_ij · D_ij)``, computed as ``1 − exp(Σ_j log(1 − w_ij D_ij))``
  with ``log(1 − w·sigmoid(x)) = log((1 − w) + w·sigmoid(−x))`` (and ``−softplus(x)`` without
  weights), which stays finite and has finite gradients when ``D → 1``.

Memory: the B×F×H×W pairs are never held at once. The image is cut into tiles, and a face
is kept for a tile only if its 2D bounding box, grown by the radius beyond which
``D < prune_eps``, overlaps the tile (``r = sqrt(σ · log(1/prune_eps))``); the kept
face–pixel pairs are processed in chunks of at most ``max_elements`` entries, each chunk
recomputed in the backward pass (``torch.utils.checkpoint``), so peak memory is set by the
chunk, not by B·F·H·W. Faces dropped by pruning would have contributed ``D < prune_eps``.

Silhouette losses of MeshPose supplementary §3.2.2 (our reading of eqs. 8–10):

- ``L1 = ||I_s − I_DP||²``: squared L2 distance between the rendered silhouette and the
  DensePose ground-truth mask (:func:`silhouette_l2_loss`).
- ``L2 = −Σ_{x,y} D(x,y)·I_s(x,y)`` with ``D(x,y)`` the distance from pixel (x,y) to the
  boundary of the ground-truth mask for pixels inside the mask and 0 outside (eq. 9)
  (:func:`boundary_distance_loss`). It rewards covering the mask, most strongly deep
  inside it, and is blind to silhouette outside the mask: it only penalises silhouettes
  that are too small. With ``offset=True`` (default) we return ``Σ D·(1 − I_s)``, which
  differs from eq. 8 by the constant ``Σ D`` (same gradient) and is 0 when the mask is
  fully covered.
- ``L_Is = 100·L1 + L2`` (eq. 10, :func:`meshpose_silhouette_loss`). The paper does not say
  whether the norms are sums or means over pixels; we take both as sums over the pixels
  of each image (so the 100 : 1 balance is per pixel) and average over the batch.
- The paper renders on a crop larger than the input and pads the GT mask accordingly, so
  out-of-crop vertices get low weights; callers do that by passing the larger image size
  and shifted points.
"""
from __future__ import annotations

import logging
import math
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F_
from torch.utils.checkpoint import checkpoint

from .camera import _size

__all__ = [
    "soft_silhouette",
    "silhouette_l2_loss",
    "boundary_distance_map",
    "boundary_distance_loss",
    "meshpose_silhouette_loss",
]

logger = logging.getLogger(__name__)

_X_MAX = 80.0  # sigmoid(−80) ≈ 1.8e−35: still a normal float32, keeps log() finite


def _pair_log_terms(tri: torch.Tensor, wtri: Optional[torch.Tensor], px: torch.Tensor,
                    py: torch.Tensor, sigma: float) -> torch.Tensor:
    """log(1 − w·D) for M (face, pixel-block) pairs.

    Args:
        tri: (M, 3, 2) triangle corners; wtri: (M, 3) corner weights or None.
        px, py: (M, P) pixel-centre coordinates of each pair's pixel block.
    Returns:
        (M, P).
    """
    # orient every triangle counter-clockwise in (x, y) (swap corners 1, 2 where the signed
    # area is negative) so that "inside" is simply "all three edge functions > 0"
    area2 = ((tri[:, 1, 0] - tri[:, 0, 0]) * (tri[:, 2, 1] - tri[:, 0, 1])
             - (tri[:, 1, 1] - tri[:, 0, 1]) * (tri[:, 2, 0] - tri[:, 0, 0]))[:, None]  # (M, 1)
    flip = area2 < 0
    swapped = tri[:, [0, 2, 1]]
    tri = torch.where(flip[:, :, None], swapped, tri)
    area2 = area2.abs()
    if wtri is not None:
        wtri = torch.where(flip, wtri[:, [0, 2, 1]], wtri)
    cx = [tri[:, i, 0:1] for i in range(3)]                   # (M, 1) each
    cy = [tri[:, i, 1:2] for i in range(3)]
    ws = [wtri[:, i:i + 1] for i in range(3)] if wtri is not None else None

    d2 = t_near = w_start = w_end = None
    inside = None
    cross_edges = []
    for i in range(3):
        j = (i + 1) % 3
        ex, ey = cx[j] - cx[i], cy[j] - cy[i]                 # (M, 1)
        inv_len2 = 1.0 / (ex * ex + ey * ey).clamp_min(1e-12)
        rx, ry = px - cx[i], py - cy[i]                       # (M, P)
        t = ((rx * ex + ry * ey) * inv_len2).clamp(0.0, 1.0)
        dx, dy = rx - t * ex, ry - t * ey
        d2_i = dx * dx + dy * dy
        cross = ex * ry - ey * rx
        cross_edges.append(cross)
        inside = cross > 0 if inside is None else inside & (cross > 0)
        if d2 is None:
            d2, t_near = d2_i, t
            if ws is not None:
                w_start, w_end = ws[i].expand_as(t), ws[j].expand_as(t)
        else:
            closer = d2_i < d2
            d2 = torch.where(closer, d2_i, d2)
            if ws is not None:
                t_near = torch.where(closer, t, t_near)
                w_start = torch.where(closer, ws[i], w_start)
                w_end = torch.where(closer, ws[j], w_end)
    x = d2 * torch.where(inside, 1.0 / sigma, -1.0 / sigma)
    if ws is None:
        return -F_.softplus(x)
    safe_area = torch.where(area2 > 0, area2, torch.ones_like(area2))
    # barycentrics of the pixel: corner i's weight is the edge function of the opposite edge
    w_in = (cross_edges[1] * ws[0] + cross_edges[2] * ws[1] + cross_edges[0] * ws[2]) / safe_area
    w_out = w_start + t_near * (w_end - w_start)
    w = torch.where(inside, w_in, w_out).clamp(0.0, 1.0)
    return torch.log((1.0 - w) + w * torch.sigmoid(-x.clamp(max=_X_MAX)))


_COMPILED = {"fn": None, "failed": False}


def _compiled_log_terms():
    """torch.compile'd :func:`_pair_log_terms` (dynamic shapes), built once per process."""
    if _COMPILED["fn"] is None:
        _COMPILED["fn"] = torch.compile(_pair_log_terms, dynamic=True)
    return _COMPILED["fn"]


def soft_silhouette(points2d: torch.Tensor, faces, image_size, sigma: float = 1.0,
                    vertex_weights: Optional[torch.Tensor] = None, *, tile_size: Optional[int] = 4,
                    prune_eps: float = 1e-6, max_elements: Optional[int] = None,
                    use_checkpoint: Optional[bool] = None, compiled: bool = False) -> torch.Tensor:
    """Differentiable soft silhouette ``1 − ∏_j (1 − w_j D_j)`` (see module docstring).

    Args:
        points2d: (B, V, 2) projected vertices in pixel coordinates of the output image
            (x right, y down; pixel (r, c) has its centre at (c + 0.5, r + 0.5)).
        faces: (F, 3) integer triangles (torch or numpy); orientation does not matter.
        image_size: (H, W) or int.
        sigma: SoftRas sharpness σ in pixel² (smaller = sharper); D = sigmoid(±d²/σ).
        vertex_weights: (B, V) per-vertex visibility weights in [0, 1], or None (all 1).
        tile_size: tile side in pixels for face pruning; None disables pruning (every face
            against every pixel).
        prune_eps: a face is skipped for a tile where its influence is below this
            everywhere (the silhouette changes by at most about prune_eps × faces skipped).
        max_elements: face–pixel pairs evaluated per chunk (bounds peak memory: roughly
            40 tensors of this many elements live per chunk); None → 2²¹ on CPU, 2²⁴ on GPU.
        use_checkpoint: recompute chunks in backward to save memory; None → when grad is needed.
        compiled: run the per-pair arithmetic through ``torch.compile`` (fused kernels: ~10×
            less CPU time in our measurement, but the first call compiles for about a minute;
            needs a C++ compiler on CPU / Triton on GPU). If compiling fails, a warning is
            logged and the eager code is used from then on.
    Returns:
        (B, H, W) silhouette in [0, 1], same dtype/device as ``points2d``.
    """
    if not torch.is_tensor(points2d) or points2d.ndim != 3 or points2d.shape[-1] != 2:
        raise ValueError(f"points2d must be a (B, V, 2) tensor, got "
                         f"{tuple(points2d.shape) if torch.is_tensor(points2d) else type(points2d).__name__}")
    if not points2d.is_floating_point():
        raise ValueError("points2d must be a floating-point tensor")
    B, V, _ = points2d.shape
    device, dtype = points2d.device, points2d.dtype
    faces = torch.as_tensor(np.asarray(faces) if not torch.is_tensor(faces) else faces, device=device).long()
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must be (F, 3), got {tuple(faces.shape)}")
    if faces.numel() and (faces.min() < 0 or faces.max() >= V):
        raise ValueError(f"faces index vertices outside [0, {V})")
    if vertex_weights is not None:
        if not torch.is_tensor(vertex_weights) or vertex_weights.shape != (B, V):
            raise ValueError(f"vertex_weights must be a (B, V) = ({B}, {V}) tensor, got "
                             f"{tuple(vertex_weights.shape) if torch.is_tensor(vertex_weights) else type(vertex_weights).__name__}")
        vertex_weights = vertex_weights.to(dtype)
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 (pixel²), got {sigma}")
    if not 0 < prune_eps < 0.5:
        raise ValueError(f"prune_eps must be in (0, 0.5), got {prune_eps}")
    H, W = _size(image_size)
    Fn = faces.shape[0]
    if Fn == 0:
        return points2d.new_zeros(B, H, W)

    ts_h, ts_w = (H, W) if tile_size is None else (min(tile_size, H), min(tile_size, W))
    nty, ntx = math.ceil(H / ts_h), math.ceil(W / ts_w)
    T, P = nty * ntx, ts_h * ts_w
    # pixel centres of each tile (padding pixels beyond H, W are computed and cropped)
    ys = torch.arange(nty * ts_h, device=device, dtype=dtype) + 0.5
    xs = torch.arange(ntx * ts_w, device=device, dtype=dtype) + 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    tile_px = gx.reshape(nty, ts_h, ntx, ts_w).permute(0, 2, 1, 3).reshape(T, P)
    tile_py = gy.reshape(nty, ts_h, ntx, ts_w).permute(0, 2, 1, 3).reshape(T, P)

    tri = points2d[:, faces]                                               # (B, F, 3, 2)
    wtri = vertex_weights[:, faces] if vertex_weights is not None else None  # (B, F, 3)

    # candidate (batch, tile, face) triples
    with torch.no_grad():
        if T == 1:
            overlap = torch.ones(B, 1, Fn, dtype=torch.bool, device=device)
        else:
            radius = math.sqrt(sigma * math.log(1.0 / prune_eps))
            lo = tri.amin(2) - radius                                      # (B, F, 2)
            hi = tri.amax(2) + radius
            tile_lo = torch.stack([tile_px[:, 0], tile_py[:, 0]], -1)     # (T, 2) first centre
            tile_hi = torch.stack([tile_px[:, -1], tile_py[:, -1]], -1)   # (T, 2) last centre
            overlap = ((hi[:, None] >= tile_lo[None, :, None]) & (lo[:, None] <= tile_hi[None, :, None])).all(-1)
        pairs = overlap.nonzero()                                          # (M, 3): b, t, f
    if use_checkpoint is None:
        use_checkpoint = torch.is_grad_enabled() and (points2d.requires_grad or (
            vertex_weights is not None and vertex_weights.requires_grad))

    terms_fn = _pair_log_terms
    if compiled and not _COMPILED["failed"]:
        terms_fn = _compiled_log_terms()

    def run_chunk(tri_all, w_all, pairs_c):
        b, t, f = pairs_c.unbind(1)
        w_c = w_all[b, f] if w_all is not None else None
        return terms_fn(tri_all[b, f], w_c, tile_px[t], tile_py[t], sigma)

    def run(pairs_c):
        if use_checkpoint:
            return checkpoint(run_chunk, tri, wtri, pairs_c, use_reentrant=False)
        return run_chunk(tri, wtri, pairs_c)

    if max_elements is None:
        max_elements = (1 << 24) if device.type == "cuda" else (1 << 21)
    chunk = max(1, max_elements // P)
    log_keep = points2d.new_zeros(B * T, P)
    for start in range(0, pairs.shape[0], chunk):
        pairs_c = pairs[start:start + chunk]
        try:
            part = run(pairs_c)
        except Exception as exc:  # a failing torch.compile backend: fall back to eager
            if terms_fn is _pair_log_terms:
                raise
            logger.warning("soft_silhouette: torch.compile failed (%s: %s); using eager PyTorch",
                           type(exc).__name__, exc)
            _COMPILED["failed"] = True
            terms_fn = _pair_log_terms
            part = run(pairs_c)
        # index_put(accumulate) rather than index_add: the latter is pathologically slow on
        # oversubscribed multi-threaded CPUs for small inputs
        log_keep = log_keep.index_put((pairs_c[:, 0] * T + pairs_c[:, 1],), part, accumulate=True)
    sil = 1.0 - torch.exp(log_keep)                                        # (B·T, P)
    sil = sil.reshape(B, nty, ntx, ts_h, ts_w).permute(0, 1, 3, 2, 4).reshape(B, nty * ts_h, ntx * ts_w)
    return sil[:, :H, :W]


def _as_mask_tensor(mask, like: torch.Tensor) -> torch.Tensor:
    mask = torch.as_tensor(np.asarray(mask) if not torch.is_tensor(mask) else mask)
    if mask.shape != like.shape:
        raise ValueError(f"target mask must have the silhouette's shape {tuple(like.shape)}, got {tuple(mask.shape)}")
    return mask.to(device=like.device, dtype=like.dtype)


def silhouette_l2_loss(silhouette: torch.Tensor, target_mask, reduction: str = "sum") -> torch.Tensor:
    """MeshPose's ``L1_Is = ||I_s − I_DP||²``.

    Args:
        silhouette: (B, H, W) soft silhouette; target_mask: (B, H, W) {0, 1} (bool/float, torch or numpy).
        reduction: "sum" = squared error summed over each image's pixels, then averaged over
            the batch (the literal ||·||²); "mean" = averaged over pixels too.
    Returns:
        scalar tensor.
    """
    target = _as_mask_tensor(target_mask, silhouette)
    per_image = ((silhouette - target) ** 2).flatten(1)
    if reduction == "sum":
        return per_image.sum(1).mean()
    if reduction == "mean":
        return per_image.mean()
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")


def boundary_distance_map(mask, border_is_boundary: bool = True) -> torch.Tensor:
    """Eq. 9: ``D(x, y)`` = distance (pixels) from a pixel inside the mask to the mask boundary, 0 outside.

    The boundary lies between a foreground pixel and its nearest background pixel, so
    ``D = (Euclidean distance between their centres) − 0.5``; the outermost foreground
    pixels get 0.5.

    Args:
        mask: (B, H, W) or (H, W) ground-truth mask (bool/0-1; torch or numpy).
        border_is_boundary: treat outside the image as background (the image border is a
            boundary). With False, mask pixels touching the border are as deep as the mask allows.
    Returns:
        float32 torch tensor of the mask's shape (on the mask's device if it was a tensor).
    """
    from scipy.ndimage import distance_transform_edt

    device = mask.device if torch.is_tensor(mask) else None
    m = (mask.detach().cpu().numpy() if torch.is_tensor(mask) else np.asarray(mask)) > 0.5
    squeeze = m.ndim == 2
    if squeeze:
        m = m[None]
    if m.ndim != 3:
        raise ValueError(f"mask must be (B, H, W) or (H, W), got {m.shape}")
    out = np.zeros(m.shape, np.float32)
    for b in range(m.shape[0]):
        if not m[b].any():
            continue
        if border_is_boundary:
            dist = distance_transform_edt(np.pad(m[b], 1))[1:-1, 1:-1]
        elif m[b].all():
            continue  # no boundary inside the image: no distance is defined, leave 0
        else:
            dist = distance_transform_edt(m[b])
        out[b] = np.where(m[b], dist - 0.5, 0.0)
    t = torch.from_numpy(out[0] if squeeze else out)
    return t.to(device) if device is not None else t


def boundary_distance_loss(silhouette: torch.Tensor, target_mask=None, distance_map=None,
                           offset: bool = True) -> torch.Tensor:
    """MeshPose's boundary loss (eq. 8): ``−Σ D·I_s`` per image, averaged over the batch.

    Args:
        silhouette: (B, H, W) soft silhouette.
        target_mask: (B, H, W) ground-truth mask, used to compute ``D`` when ``distance_map`` is None.
        distance_map: (B, H, W) precomputed :func:`boundary_distance_map`.
        offset: return ``Σ D·(1 − I_s)`` (≥ 0, = eq. 8 + Σ D, same gradient); False → eq. 8 exactly.
    Returns:
        scalar tensor.
    """
    if distance_map is None:
        if target_mask is None:
            raise ValueError("boundary_distance_loss needs target_mask or distance_map")
        distance_map = boundary_distance_map(target_mask)
    D = _as_mask_tensor(distance_map, silhouette)
    covered = (1.0 - silhouette) if offset else -silhouette
    return (D * covered).flatten(1).sum(1).mean()


def meshpose_silhouette_loss(silhouette: torch.Tensor, target_mask, distance_map=None,
                             l2_weight: float = 100.0, offset: bool = True) -> torch.Tensor:
    """Eq. 10: ``L_Is = 100·L1_Is + L2_Is`` (sums over pixels, mean over the batch).

    Args:
        silhouette: (B, H, W); target_mask: (B, H, W) ground-truth mask.
        distance_map: optional precomputed (B, H, W) :func:`boundary_distance_map` of the target.
        l2_weight: weight of the L2 term (100 in the paper).
        offset: see :func:`boundary_distance_loss`.
    """
    l2 = silhouette_l2_loss(silhouette, target_mask, reduction="sum")
    if distance_map is None:
        distance_map = boundary_distance_map(target_mask)
    return l2_weight * l2 + boundary_distance_loss(silhouette, distance_map=distance_map, offset=offset)

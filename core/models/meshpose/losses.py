"""MeshPose's training losses and their weights (supplementary eq. 11):

``L = L_BL + L_consistency + 10·L_W + 0.1·L_V + L_E + 0.1·L_N + L_J + L_Is``

Each loss is a pure function over batched tensors. Where the paper leaves the exact form
open, the docstring says which reading we took:

- ``L_BL`` (:func:`barycentric_cross_entropy`): cross-entropy between the per-pixel vertex
  posterior (softmax over V + 1 channels) and the target barycentrics, ``−Σ_k b_k log q_{n_k}``,
  at the annotated points (scores sampled bilinearly at the points), averaged over points.
- ``L_consistency`` (:func:`uv_consistency_loss`): *our reading* of "the UV annotation …
  must be consistent": the posterior-weighted mean UV of the vertices of the annotated
  part's chart (each in that chart) must equal the annotated UV (L1, foreground points).
- ``L_W`` (:func:`visibility_bce`): binary cross-entropy between predicted visibility and
  the pseudo-GT mesh's visibility (``core.render.vertex_visibility(...).weight``).
- ``L_V`` (:func:`vertex_loss`): L1 between predicted and pseudo-GT low-poly vertices (pixel space).
- ``L_E`` (:func:`edge_loss`): L1 between predicted and GT edge lengths (low-poly edges).
- ``L_N`` (:func:`normal_loss`): ``|⟨ê_pred, n_gt⟩|`` for each edge of each face (predicted
  edge direction against the GT face normal; Pose2Mesh's form).
- ``L_J`` (:func:`joint_loss`): confidence-weighted L1 between joints regressed from the
  predicted mesh and GT joints (2D or 3D).
- ``L_Is`` (:func:`silhouette_loss`): ``100·‖I_s − I_DP‖² + boundary term`` on the
  visibility-weighted soft silhouette, from ``core.render.soft``; rendered on a crop padded
  by ``pad`` pixels with the GT mask padded by zeros (out-of-crop vertices should get low
  visibility). *Our reading*: per-pixel means, boundary distances in image sides (the
  literal sums are ~10³ times the other terms, and the eq. 11 weights then mean nothing).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .lowpoly import LowPolyTemplate
from .targets import VertexTarget

__all__ = ["MESHPOSE_LOSS_WEIGHTS", "sample_scores", "barycentric_cross_entropy", "uv_consistency_loss",
           "visibility_bce", "vertex_loss", "edge_loss", "normal_loss", "joint_loss", "silhouette_loss",
           "weighted_total"]

MESHPOSE_LOSS_WEIGHTS = {"barycentric": 1.0, "uv_consistency": 1.0, "visibility": 10.0, "vertex": 0.1,
                         "edge": 1.0, "normal": 0.1, "joint": 1.0, "silhouette": 1.0}


def sample_scores(scores: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample (B, K, h, w) maps at (B, N, 2) map pixels → (B, N, K).

    Pixel (r, c) has its centre at (c + 0.5, r + 0.5); points beyond the border take the
    border value."""
    B, K, h, w = scores.shape
    grid = torch.stack([pixels[..., 0] / w * 2 - 1, pixels[..., 1] / h * 2 - 1], -1).to(scores)
    out = F.grid_sample(scores, grid[:, :, None], mode="bilinear", padding_mode="border", align_corners=False)
    return out[..., 0].transpose(1, 2)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def barycentric_cross_entropy(scores: torch.Tensor, target: VertexTarget) -> torch.Tensor:
    """``L_BL``: (B, V + 1, h, w) scores, targets at N points per image → scalar."""
    logq = torch.log_softmax(sample_scores(scores, target.pixels.to(scores.device)), dim=-1)   # (B, N, V+1)
    ids = target.vertex_ids.to(scores.device)
    picked = torch.gather(logq, 2, ids)                                                       # (B, N, 3)
    ce = -(target.weights.to(logq) * picked).sum(-1)
    return _masked_mean(ce, target.valid.to(scores.device))


def uv_consistency_loss(scores: torch.Tensor, target: VertexTarget, lowpoly: LowPolyTemplate) -> torch.Tensor:
    """``L_consistency`` (our reading, see module docstring) → scalar (UV units)."""
    V = lowpoly.num_vertices
    q = torch.softmax(sample_scores(scores, target.pixels.to(scores.device)), dim=-1)[..., :V]   # (B, N, V)
    part = target.part.to(scores.device)
    in_chart = torch.as_tensor(lowpoly.in_chart, device=scores.device)                          # (V, 25)
    chart_uv = torch.as_tensor(lowpoly.chart_uv, device=scores.device, dtype=q.dtype)           # (V, 25, 2)
    member = in_chart.T[part].to(q.dtype)                                                       # (B, N, V)
    uv_of = chart_uv.permute(1, 0, 2)[part]                                                     # (B, N, V, 2)
    mass = (q * member).sum(-1, keepdim=True)
    mean_uv = (q[..., None] * member[..., None] * uv_of).sum(2) / mass.clamp_min(1e-8)
    err = (mean_uv - target.uv.to(q)).abs().sum(-1)
    return _masked_mean(err, target.foreground.to(scores.device))


def visibility_bce(visibility_logits: torch.Tensor, target: torch.Tensor,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
    """``L_W``: (B, V) logits vs (B, V) targets in [0, 1] (mask: (B, V) bool, optional)."""
    target = torch.as_tensor(target, device=visibility_logits.device, dtype=visibility_logits.dtype)
    bce = F.binary_cross_entropy_with_logits(visibility_logits, target, reduction="none")
    return bce.mean() if mask is None else _masked_mean(bce, mask)


def vertex_loss(pred: torch.Tensor, gt: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """``L_V``: L1 over (B, V, 3) vertices, mean over vertices (optional (B, V) weights)."""
    l1 = (pred - gt).abs().sum(-1)
    return l1.mean() if weights is None else (l1 * weights).sum() / weights.sum().clamp_min(1e-8)


def edge_loss(pred: torch.Tensor, gt: torch.Tensor, edges) -> torch.Tensor:
    """``L_E``: mean |‖e_pred‖ − ‖e_gt‖| over the (E, 2) edges of (B, V, 3) meshes."""
    e = torch.as_tensor(np.asarray(edges), device=pred.device, dtype=torch.long)
    lp = (pred[:, e[:, 0]] - pred[:, e[:, 1]]).norm(dim=-1)
    lg = (gt[:, e[:, 0]] - gt[:, e[:, 1]]).norm(dim=-1)
    return (lp - lg).abs().mean()


def normal_loss(pred: torch.Tensor, gt: torch.Tensor, faces) -> torch.Tensor:
    """``L_N``: mean over faces and their three edges of |⟨ê_pred, n_gt⟩| (unit vectors)."""
    f = torch.as_tensor(np.asarray(faces), device=pred.device, dtype=torch.long)
    g = gt[:, f]                                                                 # (B, F, 3, 3)
    n = torch.cross(g[:, :, 1] - g[:, :, 0], g[:, :, 2] - g[:, :, 0], dim=-1)
    n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    p = pred[:, f]
    loss = 0.0
    for i, j in ((0, 1), (1, 2), (2, 0)):
        e = p[:, :, j] - p[:, :, i]
        e = e / e.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        loss = loss + (e * n).sum(-1).abs().mean()
    return loss / 3.0


def joint_loss(pred: torch.Tensor, gt: torch.Tensor, confidence: torch.Tensor | None = None) -> torch.Tensor:
    """``L_J``: confidence-weighted L1 over (B, J, D) joints (D = 2 or 3), mean over joints."""
    l1 = (pred - gt).abs().sum(-1)
    if confidence is None:
        return l1.mean()
    c = confidence.to(l1)
    return (l1 * c).sum() / c.sum().clamp_min(1e-8)


def silhouette_loss(points2d: torch.Tensor, faces, visibility: torch.Tensor, target_mask, image_size,
                    pad: int = 0, sigma: float | None = None, l2_weight: float = 100.0,
                    normalize: bool = True) -> torch.Tensor:
    """``L_Is``: visibility-weighted soft silhouette of the low-poly mesh against a GT mask.

    Args:
        points2d: (B, V, 2) fused vertex positions in the mask's pixels.
        faces: (F, 3) low-poly faces; visibility: (B, V) in [0, 1].
        target_mask: (B, H, W) GT foreground (DensePose mask); image_size: (H, W).
        pad: render on an image grown by ``pad`` pixels on every side (mask padded with 0).
        sigma: soft-rasteriser sharpness in px² of the rendered image; None → SoftRas's
            default σ = 1e-4 in normalised [−1, 1] coordinates, i.e. ``1e-4·(max(H, W)/2)²``
            (0.08 px² on a 56×56 map). Larger values blur the silhouette well beyond the mesh
            when limbs are only a few pixels wide.
        l2_weight: the 100 of eq. 10.
        normalize: per-pixel means (our reading of the paper, whose eq. 11 weights assume
            terms of comparable size): both sums over the rendered pixels are divided by
            their number, and the boundary distance D is measured in units of the rendered
            image's side instead of pixels — so the term no longer grows with the map
            resolution (with sums it was ≈ 3,600 on a 56² map against ≈ 3 for the weighted
            vertex term). False: eq. 8–10 literally (sums, D in pixels).
    """
    from core.render.soft import boundary_distance_map, meshpose_silhouette_loss, soft_silhouette

    H, W = (image_size, image_size) if isinstance(image_size, int) else image_size
    mask = torch.as_tensor(np.asarray(target_mask) if not torch.is_tensor(target_mask) else target_mask)
    if sigma is None:
        sigma = 1e-4 * (max(H, W) / 2.0) ** 2
    if pad:
        mask = F.pad(mask.float(), (pad, pad, pad, pad))
        points2d = points2d + pad
    sil = soft_silhouette(points2d, faces, (H + 2 * pad, W + 2 * pad), sigma=sigma, vertex_weights=visibility)
    if not normalize:
        return meshpose_silhouette_loss(sil, mask.to(sil), l2_weight=l2_weight)
    side = float(max(sil.shape[-2:]))
    distance = boundary_distance_map(mask).to(sil) / side
    return meshpose_silhouette_loss(sil, mask.to(sil), distance_map=distance, l2_weight=l2_weight) / sil[0].numel()


def weighted_total(terms: dict, weights: dict | None = None) -> torch.Tensor:
    """Σ weight·term over the given terms (names of :data:`MESHPOSE_LOSS_WEIGHTS`)."""
    weights = MESHPOSE_LOSS_WEIGHTS if weights is None else weights
    unknown = set(terms) - set(weights)
    if unknown:
        raise KeyError(f"no weight for loss terms {sorted(unknown)}; known: {sorted(weights)}")
    return sum(weights[k] * v for k, v in terms.items())

"""Similarity (Procrustes) alignment, as used for PA-MPJPE / reconstruction error."""
from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["SimilarityTransform", "compute_similarity_transform", "procrustes_align"]


class SimilarityTransform(NamedTuple):
    """``S1_aligned = scale[:, None, None] · S1 @ rotation.transpose(1, 2) + translation[:, None]``."""

    scale: torch.Tensor        # (B,)
    rotation: torch.Tensor     # (B, 3, 3), det +1
    translation: torch.Tensor  # (B, 3)


def compute_similarity_transform(S1: torch.Tensor, S2: torch.Tensor) -> SimilarityTransform:
    """Least-squares similarity transform (s, R, t) taking point set S1 onto S2.

    Minimises ``Σ_n ||s·R·S1_n + t − S2_n||²`` (Umeyama/Kabsch with scale): centre both sets,
    ``K = X1ᵀ X2``, SVD ``K = U Σ Vᵀ``, ``R = V·diag(1, 1, sign det(V Uᵀ))·Uᵀ`` (the sign
    correction forbids reflections), ``s = tr(R K)/||X1||²``, ``t = μ2 − s·R·μ1``
    (HMR/SPIN ``compute_similarity_transform``, batched).

    Args:
        S1: (B, N, 3) source points (e.g. predicted joints).
        S2: (B, N, 3) target points (e.g. ground truth).
    Returns:
        :class:`SimilarityTransform` with scale (B,), rotation (B, 3, 3), translation (B, 3).
        Differentiable (SVD gradients are ill-conditioned for degenerate point sets).
    """
    if S1.ndim != 3 or S1.shape[-1] != 3 or S1.shape != S2.shape:
        raise ValueError(f"compute_similarity_transform: S1 and S2 must both be (B, N, 3), got "
                         f"{tuple(S1.shape)} and {tuple(S2.shape)}")
    mu1 = S1.mean(dim=1, keepdim=True)
    mu2 = S2.mean(dim=1, keepdim=True)
    X1, X2 = S1 - mu1, S2 - mu2
    var1 = (X1 * X1).sum(dim=(1, 2))
    K = X1.transpose(1, 2) @ X2                                  # (B, 3, 3)
    U, _, Vh = torch.linalg.svd(K)
    V = Vh.transpose(1, 2)
    d = torch.sign(torch.linalg.det(V @ U.transpose(1, 2)))
    d = torch.where(d == 0, torch.ones_like(d), d)
    Z = torch.ones(S1.shape[0], 3, dtype=S1.dtype, device=S1.device)
    Z = torch.cat([Z[:, :2], d[:, None]], dim=1)
    R = V @ torch.diag_embed(Z) @ U.transpose(1, 2)
    scale = (R * K.transpose(1, 2)).sum(dim=(1, 2)) / var1      # tr(R K)
    t = mu2[:, 0] - scale[:, None] * (R @ mu1[:, 0, :, None])[..., 0]
    return SimilarityTransform(scale, R, t)


def procrustes_align(S1: torch.Tensor, S2: torch.Tensor) -> torch.Tensor:
    """Align S1 to S2 with the best similarity transform (see
    :func:`compute_similarity_transform`).

    Args:
        S1: (B, N, 3). S2: (B, N, 3).
    Returns:
        (B, N, 3) ``s·R·S1 + t``; PA-MPJPE = mean ||procrustes_align(pred, gt) − gt||.
    """
    s, R, t = compute_similarity_transform(S1, S2)
    return s[:, None, None] * (S1 @ R.transpose(1, 2)) + t[:, None, :]

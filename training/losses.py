"""Training losses as pure functions over batched tensors.

SPIN's terms (fact sheet ``spin_pymaf.md`` §2.2; PyMAF and Meta-HMR reuse them):

* 2D keypoints: confidence-weighted squared error on normalised crop coordinates, OpenPose
  joints × ``openpose_weight`` (0), GT joints × ``gt_weight`` (1), mean over 49 × 2;
* 3D keypoints: the 24 GT joints (49-set indices 25–48) of prediction and target, both
  centred at the mid-point of Right Hip and Left Hip (J24 indices 2, 3), confidence-weighted
  squared error, only samples with 3D ground truth;
* pose: squared error between rotation matrices, betas: squared error, vertices: L1 — only
  samples with a valid fit / GT SMPL;
* camera: ``exp(−10 s)²`` (keeps the weak-perspective scale positive).

Every term is computed **per sample** ((B,) values and a (B,) mask); :func:`reduce_terms`
turns them into SPIN's batch loss (each term averaged over the samples its mask selects,
weighted, summed, × ``scale`` = 60) or into per-sample losses (Meta-HMR's per-sample inner
step).

PyMAF's auxiliary IUV loss (§5.4) is :func:`iuv_loss`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from core.fitting.losses import keypoint_loss_2d
from core.render.parts import DENSEPOSE_TO_COARSE15

__all__ = ["Term", "keypoint_3d_loss", "rotmat_loss", "betas_loss", "vertex_loss", "camera_loss",
           "regression_terms", "masked_mean", "reduce_terms", "iuv_loss", "LOSS_KEYS"]

LOSS_KEYS = ("keypoint_2d", "keypoint_3d", "pose", "betas", "vertices", "camera")


@dataclass
class Term:
    """value (B,) per-sample loss; mask (B,) bool or None (all samples count)."""

    value: torch.Tensor
    mask: torch.Tensor | None = None


def keypoint_3d_loss(pred_joints: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample 3D keypoint loss.

    Args:
        pred_joints: (B, 49, 3) predicted SPIN-49 joints (body frame).
        target: (B, 24, 4) GT J24 joints + confidence, or (B, 49, 4) (its 24 GT joints are used).
    Returns:
        (B,) mean over 24 × 3 of ``conf · (pred − gt)²`` after centring both at the hips.
    """
    if target.shape[1] == 49:
        target = target[:, 25:]
    pred = pred_joints[:, 25:]
    pred_c = pred - pred[:, [2, 3]].mean(dim=1, keepdim=True)
    gt_c = target[..., :3] - target[:, [2, 3], :3].mean(dim=1, keepdim=True)
    return (target[..., 3:] * (pred_c - gt_c) ** 2).mean(dim=(1, 2))


def rotmat_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, 24, 3, 3) × 2 → (B,) mean squared error."""
    return ((pred - target) ** 2).flatten(1).mean(1)


def betas_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, 10) × 2 → (B,) mean squared error."""
    return ((pred - target) ** 2).mean(1)


def vertex_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, V, 3) × 2 → (B,) mean absolute error (root-relative meshes in the body frame)."""
    return (pred - target).abs().flatten(1).mean(1)


def camera_loss(cam: torch.Tensor) -> torch.Tensor:
    """(B, 3) weak-perspective (s, tx, ty) → (B,) ``exp(−10 s)²``."""
    return torch.exp(-10.0 * cam[:, 0]) ** 2


def regression_terms(joints2d_norm: torch.Tensor, joints3d: torch.Tensor, rotmat: torch.Tensor,
                     betas: torch.Tensor, cam: torch.Tensor, target, weights: Mapping,
                     vertices: torch.Tensor | None = None) -> dict[str, Term]:
    """SPIN's loss terms of one prediction against a :class:`training.targets.Targets`.

    Args:
        joints2d_norm (B, 49, 2), joints3d (B, 49, 3), rotmat (B, 24, 3, 3), betas (B, 10),
        cam (B, 3): the prediction. vertices (B, V, 3): needed when ``weights["vertices"] > 0``.
        weights: the ``loss`` config (uses openpose_weight, gt_weight, vertices).
    Returns:
        name → :class:`Term` for :data:`LOSS_KEYS` (``vertices`` only when weighted).
    """
    terms = {
        "keypoint_2d": Term(keypoint_loss_2d(joints2d_norm, target.keypoints, float(weights["openpose_weight"]),
                                             float(weights["gt_weight"]))),
        "keypoint_3d": Term(keypoint_3d_loss(joints3d, target.joints3d), target.has_pose_3d),
        "pose": Term(rotmat_loss(rotmat, target.rotmat), target.valid),
        "betas": Term(betas_loss(betas, target.betas), target.valid),
        "camera": Term(camera_loss(cam)),
    }
    if float(weights.get("vertices", 0.0)) > 0:
        if vertices is None or target.vertices is None:
            raise ValueError("the vertex loss is weighted but no full meshes were computed")
        terms["vertices"] = Term(vertex_loss(vertices, target.vertices), target.valid)
    return terms


def masked_mean(value: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``value`` (B,) over the samples ``mask`` selects (0 with the graph kept when
    none is selected)."""
    if mask is None:
        return value.mean()
    m = mask.to(value.dtype)
    return (value * m).sum() / m.sum().clamp(min=1.0)


def reduce_terms(terms: Mapping[str, Term], weights: Mapping, per_sample: bool = False,
                 scale: float | None = None):
    """Weighted sum of terms.

    Args:
        terms: name → Term. weights: name → weight (``keypoint_2d``/``keypoint_3d`` …).
        per_sample: return (B,) ``Σ_k w_k · mask · value`` instead of the batch loss
            ``Σ_k w_k · masked_mean(value_k)``.
        scale: overall factor (default ``weights["scale"]``, 60 for SPIN).
    Returns:
        (total, {name: weighted, unscaled batch value (detached)}).
    """
    s = float(weights.get("scale", 1.0) if scale is None else scale)
    total = 0.0
    parts = {}
    for name, t in terms.items():
        w = float(weights[name])
        batch_value = masked_mean(t.value, t.mask)
        parts[name] = batch_value.detach()
        if w == 0.0:
            continue
        if per_sample:
            m = torch.ones_like(t.value) if t.mask is None else t.mask.to(t.value.dtype)
            total = total + w * m * t.value
        else:
            total = total + w * batch_value
    if not torch.is_tensor(total):
        any_value = next(iter(terms.values())).value
        total = any_value.sum() * 0.0 if not per_sample else any_value * 0.0
    return s * total, parts


def iuv_loss(u: torch.Tensor, v: torch.Tensor, index_logits: torch.Tensor, ann_logits: torch.Tensor,
             part: torch.Tensor, uv: torch.Tensor, valid: torch.Tensor | None = None,
             uv_weight: float = 0.5) -> dict[str, torch.Tensor]:
    """PyMAF's dense auxiliary loss (fact sheet §5.4).

    Args:
        u, v, index_logits: (B, 25, H, W) predictions (per-part U and V, part logits with
            class 0 = background); ann_logits: (B, 15, H, W) coarse-part logits.
        part: (B, H, W) int64 GT part ids 0..24. uv: (B, 2, H, W) GT (U, V), 0 on background.
        valid: (B,) bool — samples with a valid fit (others do not count).
        uv_weight: weight of each SmoothL1 term (0.5).
    Returns:
        {"iuv_index": CE over 25 parts, "iuv_ann": CE over the 15 coarse classes,
         "iuv_u": uv_weight·SmoothL1(U), "iuv_v": uv_weight·SmoothL1(V), "iuv_total": sum}.
        The SmoothL1 terms are summed over the (pixel, part-channel) entries where the GT
        one-hot part map is 1 (incl. channel 0 on background, target 0) and divided by the
        number of valid samples; the CE terms are pixel means.
    """
    if part.shape != index_logits.shape[:1] + index_logits.shape[2:]:
        raise ValueError(f"iuv_loss: GT part map {tuple(part.shape)} does not match the predictions "
                         f"{tuple(index_logits.shape)} (resize the target to the head's resolution)")
    if valid is not None:
        keep = valid.bool()
        u, v, index_logits, ann_logits, part, uv = (t[keep] for t in (u, v, index_logits, ann_logits, part, uv))
    if part.shape[0] == 0:
        zero = (u.sum() + v.sum() + index_logits.sum() + ann_logits.sum()) * 0.0
        return {k: zero for k in ("iuv_index", "iuv_ann", "iuv_u", "iuv_v", "iuv_total")}
    part = part.long()
    coarse = torch.as_tensor(np.array(DENSEPOSE_TO_COARSE15), device=part.device).long()[part]
    onehot = F.one_hot(part, 25).permute(0, 3, 1, 2).to(u.dtype)            # (B, 25, H, W)
    n = part.shape[0]
    loss_u = F.smooth_l1_loss(u * onehot, uv[:, :1] * onehot, reduction="sum") / n
    loss_v = F.smooth_l1_loss(v * onehot, uv[:, 1:] * onehot, reduction="sum") / n
    out = {"iuv_index": F.cross_entropy(index_logits, part), "iuv_ann": F.cross_entropy(ann_logits, coarse),
           "iuv_u": uv_weight * loss_u, "iuv_v": uv_weight * loss_v}
    out["iuv_total"] = out["iuv_index"] + out["iuv_ann"] + out["iuv_u"] + out["iuv_v"]
    return out

"""Loss terms of the fitters (per sample, batched): SMPLify's camera and body objectives,
and the 2D keypoint / leg-orientation losses of EFT and Meta-HMR.

Index sets (SPIN-49 order, fact sheet §2.1 and §3.2):

* ``TORSO_OP`` = OP RHip, OP LHip, OP RShoulder, OP LShoulder (9, 12, 2, 5);
  ``TORSO_GT`` = Right Hip, Left Hip, Right Shoulder, Left Shoulder (27, 28, 33, 34).
* ``SMPLIFY_IGNORED`` = OP Neck, OP RHip, OP LHip, Right Hip, Left Hip (1, 9, 12, 27, 28):
  their confidences are zeroed in SMPLify's body stage.
"""
from __future__ import annotations

import numpy as np
import torch

from core.geometry import perspective_projection

__all__ = [
    "TORSO_OP", "TORSO_GT", "SMPLIFY_IGNORED", "gmof", "project_crop", "camera_torso_mask",
    "camera_fitting_loss", "reprojection_terms", "keypoint_loss_2d", "leg_orientation_loss",
    "normalize_keypoints", "keypoint_pixel_error",
]

TORSO_OP = (9, 12, 2, 5)
TORSO_GT = (27, 28, 33, 34)
SMPLIFY_IGNORED = (1, 9, 12, 27, 28)


def gmof(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Geman–McClure robustifier ``ρ(x) = σ² x² / (σ² + x²)`` (elementwise), computed in at
    least float32 (σ² x² overflows float16 from |x| ≈ 2.6 at σ = 100)."""
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    x2 = x * x
    s2 = sigma * sigma
    return s2 * x2 / (s2 + x2)


def project_crop(points: torch.Tensor, transl: torch.Tensor, focal: float, img_res: int) -> torch.Tensor:
    """(B, N, 3) body-frame points + (B, 3) camera translation → (B, N, 2) crop pixels
    (pinhole, focal ``focal``, principal point (img_res/2, img_res/2), no rotation)."""
    return perspective_projection(points, None, transl, focal, img_res / 2.0)


def camera_torso_mask(conf: torch.Tensor, use_gt_first: bool = True) -> torch.Tensor:
    """Which joints SMPLify's camera stage fits, per sample: (B, 49) conf → (B, 49) {0, 1}.

    SPIN's rule is "the 4 OpenPose torso joints if all are visible, else the 4 GT ones";
    because SPIN zeroes OP RHip/LHip before the stage runs (fact sheet §2.1 quirk), it
    effectively always uses the GT set. ``use_gt_first=True`` reproduces that: GT set if all
    4 GT joints are visible, else the OP set if all 4 are, else (this project's fallback)
    every visible joint of either torso set, else every visible joint.
    """
    vis = conf > 0
    B = conf.shape[0]
    mask = torch.zeros_like(conf)
    gt, op = list(TORSO_GT), list(TORSO_OP)
    first, second = (gt, op) if use_gt_first else (op, gt)
    all_first = vis[:, first].all(1)
    all_second = vis[:, second].all(1)
    for b in range(B):
        if all_first[b]:
            mask[b, first] = 1.0
        elif all_second[b]:
            mask[b, second] = 1.0
        else:
            torso = torch.zeros_like(vis[b])
            torso[gt + op] = True
            sel = vis[b] & torso
            mask[b] = (sel if sel.any() else vis[b]).to(conf.dtype)
    return mask


def camera_fitting_loss(joints2d: torch.Tensor, keypoints: torch.Tensor, torso_mask: torch.Tensor,
                        transl: torch.Tensor, transl_init: torch.Tensor,
                        depth_loss_weight: float = 100.0) -> dict[str, torch.Tensor]:
    """SMPLify camera stage (SPIN): squared 2D error over the torso joints (not robust, not
    confidence-weighted) + ``depth_w² (t_z − t_z,init)²``.

    Args:
        joints2d: (B, 49, 2) projected joints (px). keypoints: (B, 49, 3) targets.
        torso_mask: (B, 49) from :func:`camera_torso_mask`.
        transl, transl_init: (B, 3).
    Returns:
        {"camera_reprojection": (B,), "depth": (B,), "total": (B,)}.
    """
    err = ((joints2d - keypoints[..., :2]) ** 2).sum(-1)                 # (B, 49)
    reproj = (err * torso_mask).sum(-1)
    depth = depth_loss_weight ** 2 * (transl[:, 2] - transl_init[:, 2]) ** 2
    return {"camera_reprojection": reproj, "depth": depth, "total": reproj + depth}


def reprojection_terms(joints2d: torch.Tensor, keypoints: torch.Tensor, sigma: float = 100.0,
                       ignored=SMPLIFY_IGNORED) -> torch.Tensor:
    """SMPLify body-stage data term per joint: ``conf² · Σ_xy ρ(proj − target)`` with the
    ignored joints' confidence set to 0 (SPIN's per-joint "reprojection loss").

    Args:
        joints2d: (B, 49, 2). keypoints: (B, 49, 3). sigma: ρ's scale in pixels (100).
    Returns:
        (B, 49).
    """
    conf = keypoints[..., 2].clone()
    if ignored:
        conf[:, list(ignored)] = 0.0
    rho = gmof(joints2d - keypoints[..., :2], sigma).sum(-1)
    return conf ** 2 * rho


def normalize_keypoints(keypoints: torch.Tensor, img_res: int = 224) -> torch.Tensor:
    """(B, J, 3) crop pixels → SPIN's normalised coordinates ``(px − res/2)/(res/2)``
    (confidence unchanged)."""
    half = img_res / 2.0
    return torch.cat([(keypoints[..., :2] - half) / half, keypoints[..., 2:]], -1)


def keypoint_loss_2d(pred_norm: torch.Tensor, target_norm: torch.Tensor, openpose_weight: float = 0.0,
                     gt_weight: float = 1.0) -> torch.Tensor:
    """SPIN's 2D keypoint loss per sample: confidence-weighted squared error on normalised
    coordinates, OpenPose joints (0–24) × ``openpose_weight``, GT joints (25–48) ×
    ``gt_weight``, mean over the 49 × 2 coordinates.

    Args:
        pred_norm: (B, 49, 2). target_norm: (B, 49, 3) normalised (x, y, conf).
    Returns:
        (B,) — the batch loss of SPIN/EFT/Meta-HMR is its mean.
    """
    conf = target_norm[..., 2:].clone()
    conf[:, :25] *= openpose_weight
    conf[:, 25:] *= gt_weight
    return (conf * (pred_norm - target_norm[..., :2]) ** 2).mean(dim=(1, 2))


def leg_orientation_loss(pred_norm: torch.Tensor, target_norm: torch.Tensor,
                         min_length: float = 0.0089) -> torch.Tensor:
    """EFT's leg-orientation term per sample: for each leg, ``1 − cos`` of the angle between
    the target and predicted 2D knee→ankle directions (GT joints: right knee 26 → right
    ankle 25, left knee 29 → left ankle 30), applied when the target bone is longer than
    ``min_length`` (normalised units, ≈1 px at 224) and weighted by the product of the two
    joints' confidences.

    Args:
        pred_norm: (B, 49, 2). target_norm: (B, 49, 3).
    Returns:
        (B,) summed over the two legs.
    """
    total = pred_norm.new_zeros(pred_norm.shape[0])
    for knee, ankle in ((26, 25), (29, 30)):
        t = target_norm[:, ankle, :2] - target_norm[:, knee, :2]
        p = pred_norm[:, ankle] - pred_norm[:, knee]
        t_len = t.norm(dim=-1)
        w = target_norm[:, knee, 2] * target_norm[:, ankle, 2] * (t_len > min_length).to(t.dtype)
        cos = (t * p).sum(-1) / (t_len.clamp(min=1e-8) * p.norm(dim=-1).clamp(min=1e-8))
        total = total + w * (1.0 - cos)
    return total


def keypoint_pixel_error(joints2d: np.ndarray, keypoints: np.ndarray) -> float:
    """Mean Euclidean distance (px) between projected joints (J, 2) and the visible
    (conf > 0) targets of keypoints (J, 3); NaN when none is visible."""
    vis = keypoints[:, 2] > 0
    if not vis.any():
        return float("nan")
    return float(np.linalg.norm(joints2d[vis] - keypoints[vis, :2], axis=-1).mean())

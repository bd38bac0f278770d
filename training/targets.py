"""Regression targets of a batch: keypoints, 3D joints and the SMPL-layout parameters (GT
or a fit) turned into rotation matrices, meshes and a camera.

Keypoints come normalised ([−1, 1] crop frame, resolution-free); fitting and camera
estimation work in SPIN's virtual 224-pixel crop (f = 5000, principal point 112) whatever
the network's input size, via ``px = (norm + 1) · 112``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.geometry import FOCAL_LENGTH, IMG_RES, axis_angle_to_rotmat, estimate_translation, \
    weak_perspective_to_translation

__all__ = ["Targets", "keypoints_to_pixels", "body_at", "camera_for", "build_targets"]


@dataclass
class Targets:
    """keypoints (B, 49, 3) normalised + conf; keypoints_px (B, 49, 3) in the 224 crop;
    joints3d (B, 24, 4) + conf; has_pose_3d (B,) bool; pose (B, 72) axis-angle; rotmat
    (B, 24, 3, 3); betas (B, 10); valid (B,) bool — parameters to supervise with;
    joints (B, 49, 3) and vertices (B, V, 3) or None: the body at those parameters (body
    frame); transl (B, 3): camera translation placing it on the keypoints."""

    keypoints: torch.Tensor
    keypoints_px: torch.Tensor
    joints3d: torch.Tensor
    has_pose_3d: torch.Tensor
    pose: torch.Tensor
    rotmat: torch.Tensor
    betas: torch.Tensor
    valid: torch.Tensor
    joints: torch.Tensor
    vertices: torch.Tensor | None
    transl: torch.Tensor


def keypoints_to_pixels(kp_norm: torch.Tensor, img_res: int = IMG_RES) -> torch.Tensor:
    """(B, J, 3) normalised → crop pixels of the virtual ``img_res`` crop (conf kept)."""
    half = img_res / 2.0
    return torch.cat([(kp_norm[..., :2] + 1.0) * half, kp_norm[..., 2:]], dim=-1)


def body_at(body, pose: torch.Tensor, betas: torch.Tensor, full_mesh: bool):
    """Body output for axis-angle pose (B, 72) and betas (B, 10): full mesh or joints only."""
    kw = {} if full_mesh else {"vertex_ids": torch.zeros(0, dtype=torch.long, device=pose.device),
                               "return_vertices": False}
    return body(betas=betas, body_pose=pose[:, 3:], global_orient=pose[:, :3], **kw)


def camera_for(joints: torch.Tensor, keypoints_px: torch.Tensor, body) -> torch.Tensor:
    """SPIN's camera for a target body: least squares over the 24 GT joints (sqrt-conf
    weights), falling back to the body's mean camera when fewer than 2 are visible."""
    B = joints.shape[0]
    cam = torch.as_tensor(np.asarray(body.mean_params["cam"], np.float32), device=joints.device).expand(B, 3)
    fallback = weak_perspective_to_translation(cam, FOCAL_LENGTH, IMG_RES).to(joints.dtype)
    t = estimate_translation(joints[:, 25:].detach(), keypoints_px[:, 25:].detach().to(joints.dtype),
                             FOCAL_LENGTH, IMG_RES, fallback=fallback)
    bad = ~torch.isfinite(t).all(-1) | (t[:, 2] <= 0)
    return torch.where(bad[:, None], fallback, t)


def build_targets(body, batch: dict, pose: torch.Tensor | None = None, betas: torch.Tensor | None = None,
                  valid: torch.Tensor | None = None, full_mesh: bool = False) -> Targets:
    """Targets of a batch, supervising with ``pose``/``betas``/``valid`` (a fit) or, when
    None, with the batch's GT parameters where ``has_smpl``."""
    use_gt = pose is None
    pose = batch["pose"] if pose is None else pose
    betas = batch["betas"] if betas is None else betas
    valid = batch["has_smpl"] > 0.5 if valid is None else valid.bool()
    kp = batch["keypoints"]
    kp_px = keypoints_to_pixels(kp)
    with torch.no_grad():
        out = body_at(body, pose, betas, full_mesh)
        # synthetic batches carry the exact camera of their GT bodies
        transl = batch["transl"] if use_gt and "transl" in batch else camera_for(out.joints, kp_px, body)
    return Targets(keypoints=kp, keypoints_px=kp_px, joints3d=batch["pose_3d"], has_pose_3d=batch["has_pose_3d"] > 0.5,
                   pose=pose, rotmat=axis_angle_to_rotmat(pose.reshape(-1, 3)).reshape(-1, 24, 3, 3),
                   betas=betas, valid=valid, joints=out.joints, vertices=out.vertices if full_mesh else None,
                   transl=transl)

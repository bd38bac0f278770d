"""From regressed parameters to a mesh, 3D joints and 2D joints (crop camera)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from core.geometry import FOCAL_LENGTH, IMG_RES, perspective_projection, weak_perspective_to_translation

from .ief import RegressorState

__all__ = ["MeshPrediction", "run_body", "project_to_crop", "evaluate_state"]


@dataclass
class MeshPrediction:
    """A body evaluated at one regressor state.

    vertices: (B, V, 3) in the body frame (no translation), or (B, K, 3) when only the
        vertices `vertex_ids` (K,) were evaluated.
    vertex_ids: LongTensor (K,) or None (all vertices).
    joints3d: (B, 49, 3) SPIN's 49 joints, body frame.
    smpl_joints: (B, 24, 3) SMPL kinematic joints, body frame.
    transl: (B, 3) camera translation; camera-frame points = body-frame points + transl.
    joints2d: (B, 49, 2) projected joints in crop pixels.
    joints2d_norm: (B, 49, 2) the same in SPIN's normalised crop coordinates
        ((px − res/2) / (res/2), in [−1, 1] inside the crop).
    """

    vertices: torch.Tensor
    vertex_ids: torch.Tensor | None
    joints3d: torch.Tensor
    smpl_joints: torch.Tensor
    transl: torch.Tensor
    joints2d: torch.Tensor
    joints2d_norm: torch.Tensor


def run_body(body, state: RegressorState, vertex_ids: torch.Tensor | None = None):
    """Evaluate `body` (a ``core.body`` BodyModel) at `state`'s rotations and betas, no
    translation. Returns the body's output (vertices (B,V|K,3), joints (B,49,3),
    smpl_joints (B,24,3), rotmats)."""
    rotmat = state.rotmat
    return body(betas=state.betas, body_pose=rotmat[:, 1:], global_orient=rotmat[:, :1],
                vertex_ids=vertex_ids)


def project_to_crop(points: torch.Tensor, cam: torch.Tensor, focal: float = FOCAL_LENGTH,
                    img_res: int = IMG_RES) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Project body-frame points with SPIN's crop camera.

    Args:
        points: (B, N, 3) body-frame points.
        cam: (B, 3) weak-perspective (s, tx, ty).
        focal: crop focal length (5000 px for SPIN/PyMAF).
        img_res: crop side (224).
    Returns:
        pixels (B, N, 2) in the crop, normalised (B, N, 2) = (px − res/2)/(res/2),
        translation (B, 3) = (tx, ty, 2f/(res·s)).
    """
    transl = weak_perspective_to_translation(cam, focal, img_res)
    half = img_res / 2.0
    px = perspective_projection(points, None, transl, focal, half)
    return px, (px - half) / half, transl


def evaluate_state(body, state: RegressorState, vertex_ids: torch.Tensor | None = None,
                   focal: float = FOCAL_LENGTH, img_res: int = IMG_RES) -> MeshPrediction:
    """Body mesh (all vertices or `vertex_ids`), 49 joints and their crop projection."""
    out = run_body(body, state, vertex_ids)
    px, norm, transl = project_to_crop(out.joints, state.cam, focal, img_res)
    return MeshPrediction(vertices=out.vertices, vertex_ids=vertex_ids, joints3d=out.joints,
                          smpl_joints=out.smpl_joints, transl=transl, joints2d=px, joints2d_norm=norm)

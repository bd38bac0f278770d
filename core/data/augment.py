"""SPIN's training augmentation (fact sheet ``spin_pymaf.md`` §4.2) as small NumPy functions.

One sample draws :class:`AugmentParams` — horizontal flip (p = 0.5), rotation
``clip(N(0, 30°), −60°, 60°)`` set to 0 with p = 0.6, box-scale multiplier
``clip(N(1, 0.25), 0.75, 1.25)`` and a per-channel pixel multiplier ``U[0.6, 1.4]`` — and
every label is transformed consistently with the image:

* image: cropped with the rotation (``core.geometry.crop_image``), then flipped left↔right,
  then multiplied per channel and clipped to [0, 255];
* 2D keypoints: through the same crop affine, then flipped (J49 permutation, x negated in
  the normalised crop frame);
* 3D joints (J24, camera frame): rotated by ``Rz(−rot)``, then flipped (J24 permutation, x
  negated);
* SMPL axis-angle pose: global orientation pre-multiplied by ``Rz(−rot)``, then flipped
  (SMPL pose permutation, y and z of every joint's axis-angle negated).

Rotation comes before the flip everywhere (the image is cropped with the rotation and the
crop is flipped), so :func:`augment_pose` / :func:`unaugment_pose` are exact inverses.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.body.joint_names import J24_FLIP_PERM, J49_FLIP_PERM, SMPL_POSE_FLIP_PERM

__all__ = [
    "AugmentConfig", "AugmentParams", "sample_augmentation", "rot_z", "flip_keypoints_2d",
    "flip_joints_3d", "flip_pose", "rotate_global_orient", "augment_pose", "unaugment_pose",
    "augment_joints_3d", "apply_pixel_noise",
]

_J49 = np.asarray(J49_FLIP_PERM)
_J24 = np.asarray(J24_FLIP_PERM)
_POSE = np.asarray(SMPL_POSE_FLIP_PERM)


@dataclass(frozen=True)
class AugmentConfig:
    """SPIN's defaults (``train_options.py``): rot_factor 30°, scale_factor 0.25,
    noise_factor 0.4, flip probability 0.5, rotation kept with probability 0.4.
    ``enabled=False`` gives the identity (evaluation)."""

    enabled: bool = True
    flip_prob: float = 0.5
    rot_factor: float = 30.0
    rot_zero_prob: float = 0.6
    scale_factor: float = 0.25
    noise_factor: float = 0.4


@dataclass(frozen=True)
class AugmentParams:
    """One sample's augmentation: flip (bool), rot (degrees, positive = content turns
    counter-clockwise on screen), scale (box multiplier), pixel (3,) channel multipliers."""

    flip: bool = False
    rot: float = 0.0
    scale: float = 1.0
    pixel: tuple = (1.0, 1.0, 1.0)

    @property
    def is_identity(self) -> bool:
        return not self.flip and self.rot == 0.0 and self.scale == 1.0 and self.pixel == (1.0, 1.0, 1.0)


def sample_augmentation(rng: np.random.Generator, cfg: AugmentConfig = AugmentConfig()) -> AugmentParams:
    """Draw SPIN's augmentation for one sample (identity when ``cfg.enabled`` is False)."""
    if not cfg.enabled:
        return AugmentParams()
    flip = bool(rng.uniform() < cfg.flip_prob)
    nf = cfg.noise_factor
    pixel = tuple(float(x) for x in rng.uniform(1.0 - nf, 1.0 + nf, size=3))
    rot = float(np.clip(rng.normal() * cfg.rot_factor, -2.0 * cfg.rot_factor, 2.0 * cfg.rot_factor))
    if rng.uniform() < cfg.rot_zero_prob:
        rot = 0.0
    sf = cfg.scale_factor
    scale = float(np.clip(rng.normal() * sf + 1.0, 1.0 - sf, 1.0 + sf))
    return AugmentParams(flip, rot, scale, pixel)


def rot_z(deg: float) -> np.ndarray:
    """(3, 3) rotation about the camera z axis by ``deg`` degrees (x right, y down)."""
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _flip_points(points: np.ndarray, perm: np.ndarray, name: str, what: str) -> np.ndarray:
    """(..., N, C) points → left/right permutation ``perm`` (N,), x (column 0) negated."""
    points = np.asarray(points)
    if points.shape[-2] != len(perm):
        raise ValueError(f"{name}: expected (..., {len(perm)}, C) {what}, got {points.shape}")
    out = points[..., perm, :].copy()
    out[..., 0] = -out[..., 0]
    return out


def flip_keypoints_2d(kp: np.ndarray) -> np.ndarray:
    """Mirror SPIN-49 keypoints in the *normalised* crop frame: (..., 49, C) → J49
    permutation, x negated (other columns, e.g. confidence, kept)."""
    return _flip_points(kp, _J49, "flip_keypoints_2d", "SPIN-49 keypoints")


def flip_joints_3d(joints: np.ndarray) -> np.ndarray:
    """Mirror J24 3D joints (..., 24, C≥3) in the camera frame: J24 permutation, x negated."""
    return _flip_points(joints, _J24, "flip_joints_3d", "J24 joints")


def flip_pose(pose: np.ndarray) -> np.ndarray:
    """Mirror an SMPL axis-angle pose (..., 72): SMPL pose permutation, then y and z of each
    joint's axis-angle negated. An involution: ``flip_pose(flip_pose(p)) == p``."""
    pose = np.asarray(pose)
    if pose.shape[-1] != 72:
        raise ValueError(f"flip_pose: expected (..., 72) axis-angle pose, got {pose.shape}")
    out = pose[..., _POSE].copy()
    out[..., 1::3] = -out[..., 1::3]
    out[..., 2::3] = -out[..., 2::3]
    return out


def rotate_global_orient(pose: np.ndarray, deg: float) -> np.ndarray:
    """Pre-multiply the global orientation (first 3 entries, axis-angle) by ``Rz(deg)``.

    Args: pose (72,) (or any (3k,) whose first 3 are the global orientation); deg degrees.
    Returns: a copy with the new global orientation.
    """
    pose = np.asarray(pose, dtype=np.float64).copy()
    if deg != 0.0:
        from scipy.spatial.transform import Rotation

        pose[:3] = (Rotation.from_matrix(rot_z(deg)) * Rotation.from_rotvec(pose[:3])).as_rotvec()
    return pose


def augment_pose(pose: np.ndarray, params: AugmentParams) -> np.ndarray:
    """Pose as seen in the augmented crop: rotate the global orientation by ``Rz(−rot)``,
    then flip. (72,) → (72,) float64."""
    out = rotate_global_orient(pose, -params.rot)
    return flip_pose(out) if params.flip else out


def unaugment_pose(pose: np.ndarray, params: AugmentParams) -> np.ndarray:
    """Inverse of :func:`augment_pose` (un-flip, then rotate by ``Rz(+rot)``)."""
    pose = np.asarray(pose, dtype=np.float64)
    out = flip_pose(pose) if params.flip else pose
    return rotate_global_orient(out, params.rot)


def augment_joints_3d(joints: np.ndarray, params: AugmentParams) -> np.ndarray:
    """(24, C≥3) camera-frame J24 joints (e.g. SPIN's ``S`` with a confidence column):
    xyz rotated by ``Rz(−rot)``, then flipped. Extra columns are carried along."""
    joints = np.asarray(joints, dtype=np.float64).copy()
    if params.rot != 0.0:
        joints[:, :3] = joints[:, :3] @ rot_z(-params.rot).T
    return flip_joints_3d(joints) if params.flip else joints


def apply_pixel_noise(img: np.ndarray, pixel) -> np.ndarray:
    """Multiply each RGB channel of a (H, W, 3) image (uint8 or float in [0, 255]) and clip
    to [0, 255]. Returns float32."""
    img = np.asarray(img, dtype=np.float32)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"apply_pixel_noise: expected an (H, W, 3) image, got {img.shape}")
    return np.clip(img * np.asarray(pixel, np.float32)[None, None, :], 0.0, 255.0)

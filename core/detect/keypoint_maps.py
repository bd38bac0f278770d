"""Pure numpy maps between 2D keypoint layouts: MediaPipe-33, OpenPose BODY_25 and
COCO-18, SPIN-49, COCO-17.

All functions take and return ``(..., J, 3)`` float arrays of ``(x, y, confidence)`` and
work on any leading batch shape. A missing joint is all zeros ``(0, 0, 0)`` — OpenPose's
own convention — never NaN. Inputs with NaN/inf coordinates or confidences are treated as
missing.

Choices (documented so a reader can check them against the layouts in
``core.body.joint_names``):

* BODY_25 ``Neck`` = midpoint of the shoulders, ``MidHip`` = midpoint of the hips, with the
  smaller of the two confidences (missing if either side is missing). OpenPose's neck sits
  near the shoulder midpoint; this is the usual approximation.
* BODY_25 big toes ← MediaPipe ``foot_index``; heels ← ``heel``; small toes: no source →
  missing.
* SPIN-49's 24 GT joints (indices 25–48), when ``fill_gt=True``, copy the BODY_25 joint at
  the same anatomical point: ankles, knees, hips, wrists, elbows, shoulders, nose, eyes,
  ears. Neck (LSP), Top of Head (LSP), Pelvis (MPII), Thorax (MPII), Spine/Jaw/Head (H36M)
  have no detector equivalent (they are dataset- or regressor-specific points) → missing.
  Note that filling GT joints duplicates each detection in both halves of the 49 layout
  (twice the weight in a loss summed over 49 joints); pass ``fill_gt=False`` to keep SPIN's
  convention for OpenPose input (GT half all zeros).
"""
from __future__ import annotations

import numpy as np

from core.body.joint_names import (
    BODY25_TO_COCO17,
    COCO18_TO_BODY25,
    J24_TO_JCOCO,
)

__all__ = [
    "MEDIAPIPE33_TO_BODY25",
    "MEDIAPIPE33_TO_COCO17",
    "BODY25_TO_J24",
    "mediapipe33_to_body25",
    "mediapipe33_to_coco17",
    "body25_to_spin49",
    "spin49_to_coco17",
    "coco18_to_body25",
    "sanitize_keypoints",
]

# BODY_25 joint k ← MediaPipe landmark MEDIAPIPE33_TO_BODY25[k]; -1 = computed (midpoint)
# or missing (see _BODY25_MIDPOINTS / small toes).
MEDIAPIPE33_TO_BODY25: tuple[int, ...] = (
    0,    # Nose
    -1,   # Neck = mid(shoulders)
    12,   # RShoulder
    14,   # RElbow
    16,   # RWrist
    11,   # LShoulder
    13,   # LElbow
    15,   # LWrist
    -1,   # MidHip = mid(hips)
    24,   # RHip
    26,   # RKnee
    28,   # RAnkle
    23,   # LHip
    25,   # LKnee
    27,   # LAnkle
    5,    # REye
    2,    # LEye
    8,    # REar
    7,    # LEar
    31,   # LBigToe ← left_foot_index
    -1,   # LSmallToe: no source
    29,   # LHeel
    32,   # RBigToe ← right_foot_index
    -1,   # RSmallToe: no source
    30,   # RHeel
)
# BODY_25 joint → pair of MediaPipe landmarks whose midpoint it is.
_BODY25_MIDPOINTS_FROM_MP: dict[int, tuple[int, int]] = {1: (11, 12), 8: (23, 24)}

MEDIAPIPE33_TO_COCO17: tuple[int, ...] = (
    0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28,
)

# J24 joint k ← BODY_25 joint BODY25_TO_J24[k]; -1 = no equivalent.
BODY25_TO_J24: tuple[int, ...] = (
    11,   # Right Ankle
    10,   # Right Knee
    9,    # Right Hip
    12,   # Left Hip
    13,   # Left Knee
    14,   # Left Ankle
    4,    # Right Wrist
    3,    # Right Elbow
    2,    # Right Shoulder
    5,    # Left Shoulder
    6,    # Left Elbow
    7,    # Left Wrist
    -1,   # Neck (LSP)
    -1,   # Top of Head (LSP)
    -1,   # Pelvis (MPII)
    -1,   # Thorax (MPII)
    -1,   # Spine (H36M)
    -1,   # Jaw (H36M)
    -1,   # Head (H36M)
    0,    # Nose
    16,   # Left Eye
    15,   # Right Eye
    18,   # Left Ear
    17,   # Right Ear
)


def _check_layout(kp: np.ndarray, num_joints: int, name: str) -> np.ndarray:
    kp = np.asarray(kp, dtype=np.float64)
    if kp.ndim < 2 or kp.shape[-2:] != (num_joints, 3):
        raise ValueError(
            f"{name}: expected keypoints of shape (..., {num_joints}, 3) as (x, y, conf), "
            f"got {kp.shape}"
        )
    return kp


def sanitize_keypoints(kp: np.ndarray) -> np.ndarray:
    """Zero out invalid joints.

    Args:
        kp: (..., J, 3) ``(x, y, conf)``.
    Returns:
        (..., J, 3) float64 copy where every joint with a non-finite value or conf <= 0 is
        ``(0, 0, 0)``.
    """
    kp = np.array(kp, dtype=np.float64, copy=True)
    bad = ~np.isfinite(kp).all(axis=-1) | ~(kp[..., 2] > 0)
    kp[bad] = 0.0
    return kp


def _gather(src: np.ndarray, index: tuple[int, ...]) -> np.ndarray:
    """out[..., k, :] = src[..., index[k], :] where index[k] >= 0, else zeros."""
    idx = np.asarray(index)
    out = np.zeros(src.shape[:-2] + (len(idx), 3), dtype=np.float64)
    has = idx >= 0
    out[..., has, :] = src[..., idx[has], :]
    return out


def _midpoint(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 3) midpoint of two joints with min confidence; zeros if either is missing."""
    conf = np.minimum(a[..., 2], b[..., 2])
    xy = 0.5 * (a[..., :2] + b[..., :2])
    out = np.concatenate([xy, conf[..., None]], axis=-1)
    out[~(conf > 0)] = 0.0
    return out


def mediapipe33_to_body25(landmarks: np.ndarray) -> np.ndarray:
    """MediaPipe pose landmarks → OpenPose BODY_25.

    Args:
        landmarks: (..., 33, 3) ``(x, y, conf)`` in pixels.
    Returns:
        (..., 25, 3); Neck/MidHip are midpoints (min conf), small toes are missing.
    """
    mp = sanitize_keypoints(_check_layout(landmarks, 33, "mediapipe33_to_body25"))
    out = _gather(mp, MEDIAPIPE33_TO_BODY25)
    for k, (i, j) in _BODY25_MIDPOINTS_FROM_MP.items():
        out[..., k, :] = _midpoint(mp[..., i, :], mp[..., j, :])
    return out


def mediapipe33_to_coco17(landmarks: np.ndarray) -> np.ndarray:
    """MediaPipe pose landmarks → COCO-17 keypoints.

    Args:
        landmarks: (..., 33, 3).
    Returns:
        (..., 17, 3).
    """
    mp = sanitize_keypoints(_check_layout(landmarks, 33, "mediapipe33_to_coco17"))
    return _gather(mp, MEDIAPIPE33_TO_COCO17)


def coco18_to_body25(keypoints: np.ndarray) -> np.ndarray:
    """OpenPose COCO-18 output → BODY_25 (MidHip = mid(hips), feet missing).

    Args:
        keypoints: (..., 18, 3).
    Returns:
        (..., 25, 3).
    """
    c18 = sanitize_keypoints(_check_layout(keypoints, 18, "coco18_to_body25"))
    out = np.zeros(c18.shape[:-2] + (25, 3), dtype=np.float64)
    out[..., list(COCO18_TO_BODY25), :] = c18
    out[..., 8, :] = _midpoint(out[..., 9, :], out[..., 12, :])
    return out


def body25_to_spin49(body25: np.ndarray, fill_gt: bool = True) -> np.ndarray:
    """OpenPose BODY_25 → SPIN-49 (OpenPose part 0–24, GT part 25–48).

    Args:
        body25: (..., 25, 3).
        fill_gt: copy BODY_25 joints into the GT joints with the same anatomical point
            (see module docstring); False leaves the GT part all zeros (SPIN's layout
            for OpenPose detections).
    Returns:
        (..., 49, 3).
    """
    b25 = sanitize_keypoints(_check_layout(body25, 25, "body25_to_spin49"))
    gt = _gather(b25, BODY25_TO_J24) if fill_gt else np.zeros(b25.shape[:-2] + (24, 3))
    return np.concatenate([b25, gt], axis=-2)


def spin49_to_coco17(spin49: np.ndarray) -> np.ndarray:
    """SPIN-49 → COCO-17: the GT part through ``J24_TO_JCOCO``; where a GT joint is missing,
    the OpenPose joint at the same point is used instead.

    Args:
        spin49: (..., 49, 3).
    Returns:
        (..., 17, 3).
    """
    kp = sanitize_keypoints(_check_layout(spin49, 49, "spin49_to_coco17"))
    from_gt = kp[..., [25 + i for i in J24_TO_JCOCO], :]
    from_op = kp[..., list(BODY25_TO_COCO17), :]
    use_gt = from_gt[..., 2:3] > 0
    return np.where(use_gt, from_gt, from_op)

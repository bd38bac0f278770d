"""Joint-set conventions: names, flip permutations, index maps between joint sets, and
skeleton edge lists for drawing.

Everything here is a plain constant (tuples of str / int). Layouts follow SPIN's
``constants.py`` as described in the fact sheet ``spin_pymaf.md`` §3:

* **SPIN-49** = OpenPose BODY_25 (indices 0–24) followed by the "24 GT joints" (25–48).
* **J24** = the 24 GT joints alone (``SPIN_49_NAMES[25:]``); the first 14 are LSP-14's
  order, which is also the order of ``J14`` used for evaluation (with Head (H36M) as 14th).
* **SMPL-24** = SMPL's kinematic joints.
* **H36M-17** = rows of ``J_regressor_h36m`` as SPIN uses them (names inferred from
  ``H36M_TO_J14``; see the fact sheet §3.3).
* **COCO-17** = the COCO keypoint order; **OpenPose COCO-18** = OpenPose's older 18-joint
  output; **MediaPipe-33** = BlazePose's 33 landmarks.

Flip permutations: ``flipped[..., i, :] = original[..., PERM[i], :]`` (then negate x).
"""
from __future__ import annotations

__all__ = [
    "OPENPOSE_BODY25_NAMES", "OPENPOSE_COCO18_NAMES", "J24_NAMES", "SPIN_49_NAMES",
    "J14_NAMES", "J17_NAMES", "SMPL_24_NAMES", "H36M_17_NAMES", "COCO_17_NAMES",
    "MEDIAPIPE_33_NAMES",
    "J24_FLIP_PERM", "J49_FLIP_PERM", "BODY25_FLIP_PERM", "SMPL_JOINTS_FLIP_PERM",
    "SMPL_POSE_FLIP_PERM", "COCO17_FLIP_PERM", "MEDIAPIPE33_FLIP_PERM",
    "J24_TO_J14", "J24_TO_J17", "J24_TO_J19", "J24_TO_JCOCO", "H36M_TO_J17", "H36M_TO_J14",
    "BODY25_TO_COCO17", "COCO18_TO_BODY25",
    "BODY25_EDGES", "SPIN49_EDGES", "COCO17_EDGES", "J24_EDGES",
]

# --------------------------------------------------------------------------- names

OPENPOSE_BODY25_NAMES: tuple[str, ...] = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
    "MidHip", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye",
    "REar", "LEar", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
)

# OpenPose's older COCO-18 output (``--model_pose COCO``): BODY_25 without MidHip and feet.
OPENPOSE_COCO18_NAMES: tuple[str, ...] = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
    "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar",
)

J24_NAMES: tuple[str, ...] = (
    "Right Ankle", "Right Knee", "Right Hip", "Left Hip", "Left Knee", "Left Ankle",
    "Right Wrist", "Right Elbow", "Right Shoulder", "Left Shoulder", "Left Elbow",
    "Left Wrist", "Neck (LSP)", "Top of Head (LSP)", "Pelvis (MPII)", "Thorax (MPII)",
    "Spine (H36M)", "Jaw (H36M)", "Head (H36M)", "Nose", "Left Eye", "Right Eye",
    "Left Ear", "Right Ear",
)

SPIN_49_NAMES: tuple[str, ...] = tuple("OP " + n for n in OPENPOSE_BODY25_NAMES) + J24_NAMES

SMPL_24_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
)

# Rows of J_regressor_h36m as SPIN uses them (fact sheet §3.3, inferred from H36M_TO_J14).
H36M_17_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "left_knee", "left_ankle", "right_hip", "right_knee",
    "right_ankle", "spine", "neck_thorax", "jaw", "head", "left_shoulder", "left_elbow",
    "left_wrist", "right_shoulder", "right_elbow", "right_wrist",
)

COCO_17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)

MEDIAPIPE_33_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner",
    "right_eye", "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
    "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee",
    "left_ankle", "right_ankle", "left_heel", "right_heel", "left_foot_index",
    "right_foot_index",
)

# ------------------------------------------------------------------ flip permutations

J24_FLIP_PERM: tuple[int, ...] = (
    5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13, 14, 15, 16, 17, 18, 19, 21, 20, 23, 22,
)
BODY25_FLIP_PERM: tuple[int, ...] = (
    0, 1, 5, 6, 7, 2, 3, 4, 8, 12, 13, 14, 9, 10, 11, 16, 15, 18, 17, 22, 23, 24, 19, 20, 21,
)
J49_FLIP_PERM: tuple[int, ...] = BODY25_FLIP_PERM + tuple(25 + i for i in J24_FLIP_PERM)
SMPL_JOINTS_FLIP_PERM: tuple[int, ...] = (
    0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22,
)
# Axis-angle pose (72,): joint j → entries (3j, 3j+1, 3j+2). After permuting, negate the
# y and z components of every joint's axis-angle to mirror the pose.
SMPL_POSE_FLIP_PERM: tuple[int, ...] = tuple(
    3 * j + k for j in SMPL_JOINTS_FLIP_PERM for k in range(3)
)
COCO17_FLIP_PERM: tuple[int, ...] = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
MEDIAPIPE33_FLIP_PERM: tuple[int, ...] = (
    0, 4, 5, 6, 1, 2, 3, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21,
    24, 23, 26, 25, 28, 27, 30, 29, 32, 31,
)

# ---------------------------------------------------------------------- index maps

J24_TO_J17: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 18, 14, 16, 17)
J24_TO_J14: tuple[int, ...] = J24_TO_J17[:14]
J24_TO_J19: tuple[int, ...] = J24_TO_J14 + (19, 20, 21, 22, 23)   # PyMAF
J24_TO_JCOCO: tuple[int, ...] = (19, 20, 21, 22, 23, 9, 8, 10, 7, 11, 6, 3, 2, 4, 1, 5, 0)
H36M_TO_J17: tuple[int, ...] = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10, 0, 7, 9)
H36M_TO_J14: tuple[int, ...] = H36M_TO_J17[:14]

# J14/J17 names: LSP-14 order with Head (H36M) as the 14th joint, then Pelvis, Spine, Jaw.
J14_NAMES: tuple[str, ...] = tuple(J24_NAMES[i] for i in J24_TO_J14)
J17_NAMES: tuple[str, ...] = tuple(J24_NAMES[i] for i in J24_TO_J17)

# COCO-17 joint k taken from BODY_25 joint BODY25_TO_COCO17[k] (same anatomical point).
BODY25_TO_COCO17: tuple[int, ...] = (0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11)
# BODY_25 joint COCO18_TO_BODY25[k] receives OpenPose-COCO-18 joint k (MidHip and the six
# foot joints have no COCO-18 source).
COCO18_TO_BODY25: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)

# ------------------------------------------------------------------ skeleton edges

# OpenPose BODY_25's limb pairs (as drawn by OpenPose).
BODY25_EDGES: tuple[tuple[int, int], ...] = (
    (1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11),
    (8, 12), (12, 13), (13, 14), (1, 0), (0, 15), (15, 17), (0, 16), (16, 18),
    (14, 19), (19, 20), (14, 21), (11, 22), (22, 23), (11, 24),
)

# J24 (GT joints, 0-based within J24): LSP-14 limbs, head and torso centre line, face.
J24_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 4), (4, 5),            # legs through the hips
    (6, 7), (7, 8), (8, 12), (12, 9), (9, 10), (10, 11),  # arms through the LSP neck
    (12, 13),                                          # neck → top of head
    (14, 16), (16, 15), (15, 12),                      # pelvis → spine → thorax → neck
    (12, 17), (17, 18),                                # neck → jaw → head (H36M)
    (19, 20), (19, 21), (20, 22), (21, 23),            # nose, eyes, ears
)

SPIN49_EDGES: tuple[tuple[int, int], ...] = BODY25_EDGES + tuple(
    (25 + a, 25 + b) for a, b in J24_EDGES
)

COCO17_EDGES: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)

"""SMPL kinematic layout shared by every body (open and SMPL).

Joint names and flip permutations are defined once in ``core.body.joint_names``; the
list-valued names here are copies of them kept for existing callers.
"""
from core.body.joint_names import (
    COCO_17_NAMES, H36M_17_NAMES, SMPL_24_NAMES, SPIN_49_NAMES,
    SMPL_JOINTS_FLIP_PERM as _SMPL_JOINTS_FLIP_PERM,
)

SMPL_JOINT_NAMES = list(SMPL_24_NAMES)
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]

# SMPL's joint-level left/right permutation (SPIN constants.SMPL_JOINTS_FLIP_PERM)
SMPL_JOINTS_FLIP_PERM = list(_SMPL_JOINTS_FLIP_PERM)

# DensePose's 24 surface parts (index 0 = background). In each front/back pair the first id
# is the back (or inner/right-of-head) chart and the second the front — the project's convention.
DENSEPOSE_PART_NAMES = [
    "background", "torso_back", "torso_front", "right_hand", "left_hand", "left_foot",
    "right_foot", "upper_leg_right_back", "upper_leg_left_back", "upper_leg_right_front",
    "upper_leg_left_front", "lower_leg_right_back", "lower_leg_left_back",
    "lower_leg_right_front", "lower_leg_left_front", "upper_arm_left_back",
    "upper_arm_right_back", "upper_arm_left_front", "upper_arm_right_front",
    "lower_arm_left_back", "lower_arm_right_back", "lower_arm_left_front",
    "lower_arm_right_front", "head_right", "head_left",
]

# SPIN's 49-joint names (OpenPose BODY_25 then the 24 "GT" joints)
SPIN_JOINT_NAMES = list(SPIN_49_NAMES)

# smplx's vertex-picked extra joints, in smplx's order: nose, reye, leye, rear, lear,
# LBigToe, LSmallToe, LHeel, RBigToe, RSmallToe, RHeel (finger tips are not used by SPIN)
VERTEX_KEYPOINT_NAMES = ["nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe",
                         "LHeel", "RBigToe", "RSmallToe", "RHeel"]
SMPL_VERTEX_KEYPOINT_IDS = [332, 6260, 2800, 4071, 583, 3216, 3226, 3387, 6617, 6624, 6787]

# J_regressor_extra rows (SPIN, 9 rows)
EXTRA_JOINT_NAMES = ["Right Hip", "Left Hip", "Neck (LSP)", "Top of Head (LSP)",
                     "Pelvis (MPII)", "Thorax (MPII)", "Spine (H36M)", "Jaw (H36M)",
                     "Head (H36M)"]

# Source index of each of the 49 joints in the 54-set [24 SMPL joints, 21 vertex joints
# (5 face, 6 feet, 10 finger tips), 9 extra] — SPIN's JOINT_MAP resolved (fact sheet §3.2).
SPIN49_SOURCE = [24, 12, 17, 19, 21, 16, 18, 20, 0, 2, 5, 8, 1, 4, 7, 25, 26, 27, 28, 29, 30,
                 31, 32, 33, 34, 8, 5, 45, 46, 4, 7, 21, 19, 17, 16, 18, 20, 47, 48, 49, 50,
                 51, 52, 53, 24, 26, 25, 28, 27]

# H36M-17 regressor rows as SPIN uses them (fact sheet §3.3)
H36M_JOINT_NAMES = list(H36M_17_NAMES)
COCO17_NAMES = list(COCO_17_NAMES)

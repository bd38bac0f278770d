"""Anatomical range of motion (ROM) of SMPL's 23 body joints, and a sampler of plausible
poses built from it — the data the open pose prior is fitted to.

Joint frames. Every SMPL-layout body (the open body and SMPL) has identity rest rotations
and a T-pose rest shape, with the body frame x = the person's left, y = up, z = forward
(the direction the person faces). A joint rotation acts on the child bones in that frame, so:

* legs, spine, neck, head: bone along ±y; flexion = rotation about x, lateral
  (ab/adduction, side bending) about z, axial twist about y;
* arms (collar, shoulder, elbow, wrist, hand): bone along ±x (T-pose); elevation about z,
  forward/backward swing about y, twist about x;
* ankle and toes: foot along z; plantar/dorsal flexion about x, toe-in/out about y,
  inversion/eversion about z.

Each joint's rotation is composed from three angles in a fixed order
``R = R_a(θ_a) · R_b(θ_b) · R_c(θ_c)`` (``ORDERS``), the bone's own twist axis applied first.

Ranges (``LEFT_ROM``, degrees, left side; the right side mirrors it: x unchanged, y and z
negated — the same mirror as SPIN's pose flip) come from the American Academy of
Orthopaedic Surgeons' normative active ROM (AAOS, *Joint Motion: Method of Measuring and
Recording*, 1965; tabulated in Greene & Heckman, *The Clinical Measurement of Joint
Motion*, 1994), mapped onto SMPL's axes:

=================  ===========================================  ===========================
joint              clinical ROM (AAOS)                          SMPL angles used (left)
=================  ===========================================  ===========================
hip                flexion 120, extension 30, abduction 45,     x ∈ [−120, 30] (flexion is
                   adduction 30, internal/external rot. 45/45   −x), z ∈ [−30, 45], y ±45
knee               flexion 135 (0–140 in other tables)          x ∈ [−5, 140], y ±10, z ±5
ankle              dorsiflexion 20, plantarflexion 50,          x ∈ [−20, 50], y ±20,
                   inversion 35, eversion 15                    z ∈ [−35, 15]
toes (SMPL foot)   MTP extension 40 (of 70), flexion 20         x ∈ [−40, 20], y/z ±5
thoracolumbar      flexion 80, extension 25, lateral 35,        split over spine1/2/3:
spine              rotation 45                                  x ∈ [−10,30]+[−8,25]+[−7,25],
                                                                z ±12/12/11, y ±15 each
cervical spine     flexion 45, extension 45, lateral 45,        split over neck/head:
                   rotation 60                                  x ±25/±20, z ±25/±20,
                                                                y ±30 each
shoulder girdle    elevation ~30, protraction/retraction ~15    collar z ∈ [−10, 30], y ±15,
(collar)           (scapular motion, not in the AAOS table)     x ±10
shoulder           flexion 180, extension 60, abduction 180,    z ∈ [−95, 75] (arm down =
                   internal/external rotation 70/90             −90), y ∈ [−150, 50]
                                                                (forward = −y), x ∈ [−70, 90]
elbow + forearm    flexion 150, pronation/supination 80/80      y ∈ [−145, 5] (flexion = −y),
                   (twist shared with the wrist)                x ±50, z ±10
wrist              flexion 80, extension 70, radial 20,         z ∈ [−80, 70] (flexion = −z),
                   ulnar 30                                     y ∈ [−30, 20], x ±40
hand (SMPL)        knuckle flexion, small                       z ∈ [−30, 10], y/x ±10
=================  ===========================================  ===========================

The full 180° of shoulder elevation is shared between the shoulder joint and the collar
(scapulo-humeral rhythm), hence z ≤ 75 at the shoulder plus up to 30 at the collar.
These are *active* ranges of healthy adults; they do not cover contortion or extreme
sports poses, and combined limits (e.g. hip flexion with the knee straight) are not
modelled.

The sampler (:func:`sample_poses`) draws from a set of everyday posture families
(standing, walking, running, sitting, squatting, bending, reaching, kneeling/lunging,
asymmetric arms, and uniform-in-ROM "anything goes"), each a per-angle truncated normal
inside the ROM, and mirrors half of the samples left↔right. It is a hand-written
generative model of poses, **not** motion capture: it knows the limits and a few common
postures, not the correlations of real human movement (CMU mocap, which SMPLify's
``gmm_08.pkl`` was fitted to).
"""
from __future__ import annotations

import numpy as np
import torch

from core.body.joint_names import SMPL_24_NAMES, SMPL_JOINTS_FLIP_PERM
from core.geometry import rotmat_to_axis_angle

__all__ = ["JOINT_ORDER_NAMES", "ORDERS", "LEFT_ROM", "MIRROR_OF", "rom_table",
           "euler_to_rotmat", "rotmat_to_axis_angle_np", "euler_pose_to_axis_angle",
           "POSTURE_FAMILIES", "sample_euler_poses", "sample_poses", "mirror_axis_angle_pose"]

# Body joints 1..23 of SMPL (body_pose order); index into this list = body joint - 1.
JOINT_ORDER_NAMES = SMPL_24_NAMES[1:]

# Rotation composition per joint kind: R = R_o[0] · R_o[1] · R_o[2] (twist axis last).
_KIND_ORDER = {"leg": "xzy", "spine": "xzy", "foot": "xyz", "arm": "zyx", "elbow": "yzx"}
_KIND = {
    "hip": "leg", "knee": "leg", "spine1": "spine", "spine2": "spine", "spine3": "spine",
    "neck": "spine", "head": "spine", "ankle": "foot", "foot": "foot", "collar": "arm",
    "shoulder": "arm", "elbow": "elbow", "wrist": "arm", "hand": "arm",
}

# Left-side (and midline) ranges in degrees: joint → {axis: (low, high)}.
LEFT_ROM: dict[str, dict[str, tuple[float, float]]] = {
    "hip": {"x": (-120.0, 30.0), "y": (-45.0, 45.0), "z": (-30.0, 45.0)},
    "knee": {"x": (-5.0, 140.0), "y": (-10.0, 10.0), "z": (-5.0, 5.0)},
    "ankle": {"x": (-20.0, 50.0), "y": (-20.0, 20.0), "z": (-35.0, 15.0)},
    "foot": {"x": (-40.0, 20.0), "y": (-5.0, 5.0), "z": (-5.0, 5.0)},
    "spine1": {"x": (-10.0, 30.0), "y": (-15.0, 15.0), "z": (-12.0, 12.0)},
    "spine2": {"x": (-8.0, 25.0), "y": (-15.0, 15.0), "z": (-12.0, 12.0)},
    "spine3": {"x": (-7.0, 25.0), "y": (-15.0, 15.0), "z": (-11.0, 11.0)},
    "neck": {"x": (-25.0, 25.0), "y": (-30.0, 30.0), "z": (-25.0, 25.0)},
    "head": {"x": (-20.0, 20.0), "y": (-30.0, 30.0), "z": (-20.0, 20.0)},
    "collar": {"x": (-10.0, 10.0), "y": (-15.0, 15.0), "z": (-10.0, 30.0)},
    "shoulder": {"x": (-70.0, 90.0), "y": (-150.0, 50.0), "z": (-95.0, 75.0)},
    "elbow": {"x": (-50.0, 50.0), "y": (-145.0, 5.0), "z": (-10.0, 10.0)},
    "wrist": {"x": (-40.0, 40.0), "y": (-30.0, 20.0), "z": (-80.0, 70.0)},
    "hand": {"x": (-10.0, 10.0), "y": (-10.0, 10.0), "z": (-30.0, 10.0)},
}


def _kind_of(name: str) -> str:
    return name.split("_", 1)[1] if name.startswith(("left_", "right_")) else name


MIRROR_OF = tuple(j - 1 for j in SMPL_JOINTS_FLIP_PERM[1:])   # body joint i ↔ MIRROR_OF[i]
ORDERS = tuple(_KIND_ORDER[_KIND[_kind_of(n)]] for n in JOINT_ORDER_NAMES)


def rom_table() -> np.ndarray:
    """(23, 3, 2) degrees: per body joint and axis (x, y, z) the (low, high) range; right
    joints are the mirror of the left (y, z negated and swapped)."""
    out = np.zeros((23, 3, 2))
    for j, name in enumerate(JOINT_ORDER_NAMES):
        rom = LEFT_ROM[_kind_of(name)]
        for a, axis in enumerate("xyz"):
            lo, hi = rom[axis]
            if name.startswith("right_") and axis in "yz":
                lo, hi = -hi, -lo
            out[j, a] = (lo, hi)
    return out


def _axis_rot(axis: str, angle: np.ndarray) -> np.ndarray:
    """(N,) radians → (N, 3, 3) rotation about a coordinate axis."""
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(angle), np.zeros_like(angle)
    if axis == "x":
        rows = [[one, zero, zero], [zero, c, -s], [zero, s, c]]
    elif axis == "y":
        rows = [[c, zero, s], [zero, one, zero], [-s, zero, c]]
    else:
        rows = [[c, -s, zero], [s, c, zero], [zero, zero, one]]
    return np.stack([np.stack(r, -1) for r in rows], -2)


def euler_to_rotmat(angles_xyz: np.ndarray, order: str) -> np.ndarray:
    """(N, 3) angles (radians) about x, y, z → (N, 3, 3) ``R_order[0] R_order[1] R_order[2]``."""
    idx = {"x": 0, "y": 1, "z": 2}
    R = _axis_rot(order[0], angles_xyz[:, idx[order[0]]])
    for ax in order[1:]:
        R = R @ _axis_rot(ax, angles_xyz[:, idx[ax]])
    return R


def rotmat_to_axis_angle_np(R: np.ndarray) -> np.ndarray:
    """(N, 3, 3) → (N, 3) axis-angle (float64, angle in [0, π]);
    :func:`core.geometry.rotmat_to_axis_angle` on NumPy arrays."""
    return rotmat_to_axis_angle(torch.as_tensor(np.asarray(R, dtype=np.float64))).numpy()


def euler_pose_to_axis_angle(euler_deg: np.ndarray) -> np.ndarray:
    """(N, 23, 3) per-joint angles about x, y, z in degrees (composed with ``ORDERS``) →
    (N, 69) body-pose axis-angle (radians)."""
    euler = np.deg2rad(np.asarray(euler_deg, dtype=np.float64))
    N = euler.shape[0]
    out = np.zeros((N, 23, 3))
    for j in range(23):
        out[:, j] = rotmat_to_axis_angle_np(euler_to_rotmat(euler[:, j], ORDERS[j]))
    return out.reshape(N, 69)


def mirror_axis_angle_pose(pose: np.ndarray) -> np.ndarray:
    """(N, 69) body pose → its left/right mirror (swap sides, negate y and z), SPIN's flip."""
    p = np.asarray(pose).reshape(-1, 23, 3)[:, list(MIRROR_OF)].copy()
    p[..., 1:] *= -1.0
    return p.reshape(-1, 69)


# ----------------------------------------------------------------------------- sampling
# A posture family fixes (mean, std) in degrees for some left-side angles; every other
# angle uses the relaxed default (mean 0, std = 15 % of its range) — arms default to hanging.
# Keys "L:<joint>" / "R:<joint>" address one side (given in that side's own angles, i.e.
# as left-side values; the right side is mirrored), plain "<joint>" both sides.
_Spec = dict[str, dict[str, tuple[float, float]]]

_RELAXED: _Spec = {
    "shoulder": {"z": (-78.0, 10.0), "y": (-5.0, 12.0), "x": (0.0, 15.0)},
    "elbow": {"y": (-15.0, 12.0)},
    "wrist": {"z": (-5.0, 10.0)},
    "knee": {"x": (5.0, 6.0)},
    "hip": {"x": (-5.0, 6.0)},
}

POSTURE_FAMILIES: dict[str, _Spec] = {
    "standing": {},
    "walking": {  # L leg forward, R back; opposite arm swing (the mirror gives the other phase)
        "L:hip": {"x": (-25.0, 10.0)}, "R:hip": {"x": (12.0, 8.0)},
        "L:knee": {"x": (20.0, 15.0)}, "R:knee": {"x": (25.0, 20.0)},
        "L:shoulder": {"z": (-75.0, 8.0), "y": (20.0, 12.0)},
        "R:shoulder": {"z": (-75.0, 8.0), "y": (-25.0, 12.0)},
        "elbow": {"y": (-30.0, 15.0)},
    },
    "running": {
        "L:hip": {"x": (-55.0, 15.0)}, "R:hip": {"x": (15.0, 10.0)},
        "L:knee": {"x": (70.0, 25.0)}, "R:knee": {"x": (80.0, 30.0)},
        "L:shoulder": {"z": (-65.0, 10.0), "y": (35.0, 15.0)},
        "R:shoulder": {"z": (-65.0, 10.0), "y": (-45.0, 15.0)},
        "elbow": {"y": (-90.0, 15.0)},
        "spine1": {"x": (8.0, 5.0)},
    },
    "sitting": {
        "hip": {"x": (-90.0, 12.0), "z": (8.0, 8.0)},
        "knee": {"x": (90.0, 15.0)},
        "ankle": {"x": (5.0, 10.0)},
        "shoulder": {"z": (-70.0, 12.0), "y": (-30.0, 15.0)},
        "elbow": {"y": (-60.0, 20.0)},
        "spine1": {"x": (5.0, 8.0)}, "spine2": {"x": (5.0, 6.0)},
    },
    "squatting": {
        "hip": {"x": (-110.0, 10.0), "z": (15.0, 8.0)},
        "knee": {"x": (120.0, 12.0)},
        "ankle": {"x": (-15.0, 5.0)},
        "spine1": {"x": (15.0, 8.0)}, "spine2": {"x": (10.0, 6.0)}, "spine3": {"x": (10.0, 6.0)},
        "shoulder": {"z": (-50.0, 15.0), "y": (-60.0, 20.0)},
        "elbow": {"y": (-40.0, 25.0)},
    },
    "bending": {
        "hip": {"x": (-60.0, 20.0)},
        "knee": {"x": (15.0, 12.0)},
        "spine1": {"x": (22.0, 6.0)}, "spine2": {"x": (18.0, 5.0)}, "spine3": {"x": (15.0, 5.0)},
        "neck": {"x": (-10.0, 10.0)},
        "shoulder": {"z": (-80.0, 10.0), "y": (-50.0, 20.0)},
        "elbow": {"y": (-20.0, 15.0)},
    },
    "reaching": {
        "shoulder": {"z": (20.0, 35.0), "y": (-50.0, 40.0), "x": (0.0, 30.0)},
        "collar": {"z": (15.0, 8.0)},
        "elbow": {"y": (-35.0, 30.0)},
        "neck": {"x": (-10.0, 10.0)},
    },
    "kneeling_lunge": {
        "L:hip": {"x": (-90.0, 12.0)}, "L:knee": {"x": (90.0, 12.0)},
        "R:hip": {"x": (5.0, 12.0)}, "R:knee": {"x": (100.0, 20.0)},
        "R:ankle": {"x": (30.0, 12.0)},
        "shoulder": {"z": (-70.0, 12.0), "y": (-20.0, 20.0)},
        "elbow": {"y": (-40.0, 25.0)},
    },
    "asymmetric_arms": {
        "L:shoulder": {"z": (30.0, 30.0), "y": (-40.0, 35.0), "x": (10.0, 25.0)},
        "L:elbow": {"y": (-60.0, 35.0)}, "L:collar": {"z": (12.0, 8.0)},
        "R:shoulder": {"z": (-75.0, 10.0), "y": (-10.0, 15.0)},
        "R:elbow": {"y": (-25.0, 15.0)},
        "spine2": {"y": (0.0, 8.0)},
    },
    "anything": {},  # uniform within the ROM (handled in sample_euler_poses)
}


def _joint_indices(key: str) -> list[int]:
    side, _, kind = key.rpartition(":")
    names = [n for n in JOINT_ORDER_NAMES if _kind_of(n) == kind]
    if not names:
        raise KeyError(f"unknown joint kind {kind!r} in a posture family")
    if side == "L":
        names = [n for n in names if not n.startswith("right_")]
    elif side == "R":
        names = [n for n in names if not n.startswith("left_")]
    return [JOINT_ORDER_NAMES.index(n) for n in names]


def _family_params(family: str) -> tuple[np.ndarray, np.ndarray]:
    """(23, 3) means and stds in degrees, in each joint's own (mirrored for right) frame."""
    rom = rom_table()
    mean = np.zeros((23, 3))
    std = 0.15 * (rom[..., 1] - rom[..., 0])
    for spec in (_RELAXED, POSTURE_FAMILIES[family]):
        for key, axes in spec.items():
            for j in _joint_indices(key):
                for axis, (m, s) in axes.items():
                    a = "xyz".index(axis)
                    sign = -1.0 if JOINT_ORDER_NAMES[j].startswith("right_") and axis in "yz" else 1.0
                    mean[j, a] = sign * m
                    std[j, a] = s
    return mean, std


def sample_euler_poses(family: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 23, 3) per-joint angles in degrees for one posture family, inside the ROM.

    Truncated normals (resampled until inside ``rom_table()``), or uniform in the ROM for
    the "anything" family.
    """
    if family not in POSTURE_FAMILIES:
        raise KeyError(f"unknown posture family {family!r}; choose from {sorted(POSTURE_FAMILIES)}")
    rom = rom_table()
    lo, hi = rom[..., 0], rom[..., 1]
    if family == "anything":
        return rng.uniform(lo, hi, size=(n, 23, 3))
    mean, std = _family_params(family)
    out = rng.normal(mean, std, size=(n, 23, 3))
    for _ in range(50):
        bad = (out < lo) | (out > hi)
        if not bad.any():
            break
        out[bad] = rng.normal(np.broadcast_to(mean, out.shape)[bad], np.broadcast_to(std, out.shape)[bad])
    return np.clip(out, lo, hi)


def sample_poses(n_per_family: int = 4000, seed: int = 0,
                 families: tuple[str, ...] | None = None) -> np.ndarray:
    """Plausible body poses: (N, 69) axis-angle, N = n_per_family × len(families), half of
    each family mirrored left↔right (so the set is symmetric), rows shuffled.

    Args:
        n_per_family: samples per posture family.
        seed: NumPy generator seed (the result is deterministic).
        families: which families (default: all of ``POSTURE_FAMILIES``).
    """
    rng = np.random.default_rng(seed)
    fams = tuple(POSTURE_FAMILIES) if families is None else tuple(families)
    poses = []
    for fam in fams:
        p = euler_pose_to_axis_angle(sample_euler_poses(fam, n_per_family, rng))
        half = n_per_family // 2
        p[:half] = mirror_axis_angle_pose(p[:half])
        poses.append(p)
    out = np.concatenate(poses, 0)
    return out[rng.permutation(len(out))]

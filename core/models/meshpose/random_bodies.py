"""Random bodies for training and testing the upsampler: per-joint range-of-motion poses
and betas ~ N(0, 1).

No motion-capture data ships with the project, so poses are sampled joint by joint:
each of the 23 body joints gets three Euler angles (intrinsic x, then y, then z, in the
joint's rest frame: x to the body's left, y up, z forward, as SMPL's T-pose) drawn
uniformly from hand-set limits in :data:`JOINT_LIMITS_DEG` (roughly the human range of
motion, e.g. knee flexion 0..140°, shoulder from arm-down to arm-up). The global
orientation is a uniformly random rotation. Sampled poses are diverse and cover
physically implausible combinations too (no self-collision test); the upsampler only
needs the space of meshes a network could output to be covered.

The open body's shape space is whitened (its betas have unit variance over the people it
was built from), so ``betas ~ N(0, 1)`` spans realistic shapes.
"""
from __future__ import annotations

import torch

from core.geometry import quaternion_to_rotmat

__all__ = ["JOINT_LIMITS_DEG", "sample_poses", "sample_bodies", "euler_xyz_to_rotmat", "random_rotations"]

# (x range, y range, z range) in degrees per SMPL body joint 1..23 (x: left, y: up, z: forward).
# Signs: for a leg pointing down, −x swings it forward; for the left arm (pointing +x),
# −z lowers it and −y swings it forward; the right side mirrors y and z.
JOINT_LIMITS_DEG: dict[int, tuple[tuple[float, float], ...]] = {
    1: ((-110, 30), (-30, 40), (-15, 45)),      # left hip: flexion, rotation, abduction
    2: ((-110, 30), (-40, 30), (-45, 15)),      # right hip
    3: ((-15, 45), (-25, 25), (-15, 15)),       # spine1
    4: ((0, 140), (-5, 5), (-5, 5)),            # left knee
    5: ((0, 140), (-5, 5), (-5, 5)),            # right knee
    6: ((-10, 30), (-20, 20), (-10, 10)),       # spine2
    7: ((-30, 40), (-15, 15), (-20, 20)),       # left ankle
    8: ((-30, 40), (-15, 15), (-20, 20)),       # right ankle
    9: ((-10, 30), (-20, 20), (-10, 10)),       # spine3
    10: ((-20, 20), (-5, 5), (-5, 5)),          # left foot (toes)
    11: ((-20, 20), (-5, 5), (-5, 5)),          # right foot
    12: ((-30, 40), (-40, 40), (-20, 20)),      # neck
    13: ((-10, 10), (-15, 15), (-10, 20)),      # left collar
    14: ((-10, 10), (-15, 15), (-20, 10)),      # right collar
    15: ((-25, 25), (-35, 35), (-15, 15)),      # head
    16: ((-60, 60), (-90, 30), (-90, 40)),      # left shoulder: twist, forward, lower/raise
    17: ((-60, 60), (-30, 90), (-40, 90)),      # right shoulder
    18: ((-45, 45), (-140, 0), (-10, 10)),      # left elbow: twist, flexion
    19: ((-45, 45), (0, 140), (-10, 10)),       # right elbow
    20: ((-40, 40), (-30, 30), (-60, 60)),      # left wrist
    21: ((-40, 40), (-30, 30), (-60, 60)),      # right wrist
    22: ((-15, 15), (-15, 15), (-15, 15)),      # left hand
    23: ((-15, 15), (-15, 15), (-15, 15)),      # right hand
}


def euler_xyz_to_rotmat(angles: torch.Tensor) -> torch.Tensor:
    """Intrinsic x-y-z Euler angles (radians) → rotation matrices: R = Rx(a)·Ry(b)·Rz(c).

    Args:
        angles: (..., 3).
    Returns:
        (..., 3, 3).
    """
    a, b, c = angles.unbind(-1)
    one, zero = torch.ones_like(a), torch.zeros_like(a)
    rx = torch.stack([one, zero, zero, zero, a.cos(), -a.sin(), zero, a.sin(), a.cos()], -1)
    ry = torch.stack([b.cos(), zero, b.sin(), zero, one, zero, -b.sin(), zero, b.cos()], -1)
    rz = torch.stack([c.cos(), -c.sin(), zero, c.sin(), c.cos(), zero, zero, zero, one], -1)
    shape = angles.shape[:-1] + (3, 3)
    return rx.reshape(shape) @ ry.reshape(shape) @ rz.reshape(shape)


def random_rotations(n: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 3, 3) rotations uniform on SO(3) (normalised Gaussian quaternions)."""
    q = torch.randn(n, 4, generator=generator, dtype=torch.float64)
    return quaternion_to_rotmat(q).float()


def sample_poses(n: int, generator: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    """(n, 23, 3, 3) body-joint rotations, each Euler angle uniform within its limits.

    Args:
        n: number of poses.
        generator: torch.Generator (reproducible sampling).
        scale: shrinks every range towards 0 (1 = the full limits).
    """
    lo = torch.tensor([[r[0] for r in JOINT_LIMITS_DEG[j]] for j in range(1, 24)], dtype=torch.float64)
    hi = torch.tensor([[r[1] for r in JOINT_LIMITS_DEG[j]] for j in range(1, 24)], dtype=torch.float64)
    u = torch.rand(n, 23, 3, generator=generator, dtype=torch.float64)
    angles = torch.deg2rad((lo + (hi - lo) * u) * scale)
    return euler_xyz_to_rotmat(angles).float()


@torch.no_grad()
def sample_bodies(body, n: int, generator: torch.Generator, betas_std: float = 1.0):
    """Random posed bodies: returns the body's output (vertices (n, V, 3), smpl_joints, ...)
    for random poses (:func:`sample_poses`), a uniformly random global orientation and
    betas ~ N(0, betas_std²)."""
    betas = torch.randn(n, body.num_betas, generator=generator) * betas_std
    pose = sample_poses(n, generator)
    orient = random_rotations(n, generator)[:, None]
    ref = body.v_template
    return body(betas=betas.to(ref), body_pose=pose.to(ref), global_orient=orient.to(ref))

"""Body models in SMPL's layout: the embedded open body and (opt-in) SMPL.

>>> from core.body import load_body
>>> body = load_body("open")
>>> out = body(betas=torch.zeros(1, 10), body_pose=torch.zeros(1, 69), global_orient=torch.zeros(1, 3))
>>> out.vertices.shape, out.smpl_joints.shape, out.joints.shape
"""
from core.body.constants import (  # noqa: F401
    DENSEPOSE_PART_NAMES, SMPL_JOINT_NAMES, SMPL_PARENTS, SPIN_JOINT_NAMES,
)
from core.body.model import BodyModel, BodyOutput  # noqa: F401
from core.body.loading import BodyFileError, load_body, resolve_body  # noqa: F401

__all__ = ["load_body", "resolve_body", "BodyModel", "BodyOutput", "BodyFileError", "SMPL_JOINT_NAMES",
           "SPIN_JOINT_NAMES", "SMPL_PARENTS", "DENSEPOSE_PART_NAMES"]

"""The SMPL tensors that PyMAF's official state dict carries inside every regressor.

PyMAF builds a smplx ``SMPL`` (batch_size 64, no transl, + SPIN's ``J_regressor_extra``)
inside each of its three regressors, so `PyMAF_model_checkpoint.pt` holds 12 SMPL entries
per regressor (`regressor.{i}.smpl.*`). This module reproduces those entries — names,
shapes, dtypes — so the official checkpoint loads strictly. HMR Studio never computes with
them: meshes come from the project's BodyModel. The pose/shape entries that are
nn.Parameters in smplx (betas, global_orient, body_pose) are buffers here: same keys,
nothing for an optimiser to pick up.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["OfficialSMPLBuffers", "SMPLH_EXTRA_JOINT_VERTEX_IDS"]

# smplx VertexJointSelector (use_hands, use_feet_keypoints) for SMPL: nose, reye, leye,
# rear, lear, LBigToe, LSmallToe, LHeel, RBigToe, RSmallToe, RHeel, then finger tips
# l thumb/index/middle/ring/pinky, r thumb/index/middle/ring/pinky (fact sheet §3.1).
SMPLH_EXTRA_JOINT_VERTEX_IDS = (332, 6260, 2800, 4071, 583, 3216, 3226, 3387, 6617, 6624, 6787,
                                2746, 2319, 2445, 2556, 2673, 6191, 5782, 5905, 6016, 6133)


class _VertexJointSelector(nn.Module):
    def __init__(self, ids: torch.Tensor):
        super().__init__()
        self.register_buffer("extra_joints_idxs", ids)


def _body_array(body, name: str):
    """One of SMPL's arrays, in smplx's buffer layout, from a ``core.body`` BodyModel
    (its `smpl_arrays()`, SMPL-file layout) or None when the body cannot provide it."""
    arrays_fn = getattr(body, "smpl_arrays", None)
    if arrays_fn is None:
        return None
    arrays = arrays_fn()
    if name == "lbs_weights":
        value = arrays.get("weights")
    elif name == "posedirs":  # SMPL file (V, 3, 207) → smplx buffer (207, 3V)
        value = arrays.get("posedirs")
        value = None if value is None else np.asarray(value).reshape(-1, np.asarray(value).shape[-1]).T
    else:
        value = arrays.get(name)
    return None if value is None else torch.as_tensor(np.ascontiguousarray(value))


class OfficialSMPLBuffers(nn.Module):
    """Key-compatible stand-in for PyMAF's per-regressor `smpl` module.

    Entries (shapes for SMPL, V = 6890, F = 13776, 10 shape PCs, batch 64):
    betas [64,10], global_orient [64,3], body_pose [64,69], shapedirs [V,3,10],
    faces_tensor [F,3] int64, v_template [V,3], J_regressor [24,V], posedirs [207,3V],
    parents [24] int64, lbs_weights [V,24], J_regressor_extra [9,V],
    vertex_joint_selector.extra_joints_idxs [21] int64.

    Args:
        body: a ``core.body`` BodyModel built on SMPL to copy the arrays from, or None
            (zeros of the right shapes, to be filled by a checkpoint).
        num_vertices, num_faces: mesh size when no body is given.
    """

    BATCH = 64
    NUM_BETAS = 10

    def __init__(self, body=None, num_vertices: int = 6890, num_faces: int = 13776):
        super().__init__()
        V = body.num_vertices if body is not None else num_vertices
        F = len(body.faces) if body is not None else num_faces
        f32 = torch.float32
        zeros = {
            "betas": torch.zeros(self.BATCH, self.NUM_BETAS),
            "global_orient": torch.zeros(self.BATCH, 3),
            "body_pose": torch.zeros(self.BATCH, 69),
            "shapedirs": torch.zeros(V, 3, self.NUM_BETAS),
            "faces_tensor": torch.zeros(F, 3, dtype=torch.int64),
            "v_template": torch.zeros(V, 3),
            "J_regressor": torch.zeros(24, V),
            "posedirs": torch.zeros(207, 3 * V),
            "parents": torch.zeros(24, dtype=torch.int64),
            "lbs_weights": torch.zeros(V, 24),
            "J_regressor_extra": torch.zeros(9, V),
        }
        if body is not None:
            filled = {
                "faces_tensor": torch.as_tensor(np.asarray(body.faces), dtype=torch.int64),
                "parents": torch.as_tensor(np.asarray(body.parents), dtype=torch.int64),
                "J_regressor": torch.as_tensor(np.asarray(body.regressor("smpl24")), dtype=f32),
                "J_regressor_extra": torch.as_tensor(np.asarray(body.regressor("extra")), dtype=f32),
            }
            for name in ("v_template", "shapedirs", "posedirs", "lbs_weights"):
                value = _body_array(body, name)
                if value is not None:
                    filled[name] = value.to(f32)
            if "shapedirs" in filled:
                filled["shapedirs"] = filled["shapedirs"][..., : self.NUM_BETAS]
            for name, value in filled.items():
                if tuple(value.shape) != tuple(zeros[name].shape):
                    raise ValueError(f"official PyMAF SMPL buffers: body's {name} has shape "
                                     f"{tuple(value.shape)}, expected {tuple(zeros[name].shape)}")
                zeros[name] = value.to(zeros[name].dtype).clone()
        for name, value in zeros.items():
            self.register_buffer(name, value)
        self.vertex_joint_selector = _VertexJointSelector(
            torch.tensor(SMPLH_EXTRA_JOINT_VERTEX_IDS, dtype=torch.int64))

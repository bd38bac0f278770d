"""Iterative error feedback (IEF) regressor head shared by HMR/SPIN, PyMAF and CLIFF.

One IEF step: ``x = cat[feature, pose6d (144), betas (10), cam (3)] → fc1 → drop1 → fc2 →
drop2`` (no non-linearity, dropout 0.5 only in training), then residual updates
``pose6d += decpose(x)``, ``betas += decshape(x)``, ``cam += deccam(x)``. The starting point
is the mean body (buffers ``init_pose`` (1,144), ``init_shape`` (1,10), ``init_cam`` (1,3)).
Module names are SPIN's, so the head's state-dict keys match the official checkpoints.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

import numpy as np
import torch
from torch import nn

from core.geometry import rot6d_to_rotmat

if TYPE_CHECKING:
    from .prediction import MeshPrediction

__all__ = ["RegressorState", "IEFOutput", "IEFRegressor", "mean_params_tensors", "DEFAULT_MEAN_PARAMS"]

NUM_JOINTS = 24
NUM_BETAS = 10


def _default_mean_params() -> dict[str, np.ndarray]:
    """Neutral start when no body is given: identity joint rotations, the root turned 180°
    about x (upright person facing a y-down camera, like SPIN's mean), zero betas,
    cam (0.9, 0, 0). Replaced by the body's mean parameters or by loaded weights."""
    pose = np.tile(np.array([1, 0, 0, 1, 0, 0], np.float32), NUM_JOINTS)
    pose[:6] = (1, 0, 0, -1, 0, 0)
    return {"pose": pose, "shape": np.zeros(NUM_BETAS, np.float32),
            "cam": np.array([0.9, 0, 0], np.float32)}


DEFAULT_MEAN_PARAMS = _default_mean_params()


def mean_params_tensors(source=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean (pose6d (1,144), betas (1,10), cam (1,3)) float32 from a body (its
    `mean_params`), a mapping with keys pose/shape/cam (e.g. `smpl_mean_params.npz`),
    or None (the neutral default above)."""
    if source is None:
        params: Mapping = DEFAULT_MEAN_PARAMS
    elif isinstance(source, Mapping) or hasattr(source, "files"):
        params = source
    elif hasattr(source, "mean_params"):
        params = source.mean_params
    else:
        raise TypeError(f"mean params: expected a body, a mapping with pose/shape/cam, or None; "
                        f"got {type(source).__name__}")
    out = []
    for key, size in (("pose", NUM_JOINTS * 6), ("shape", NUM_BETAS), ("cam", 3)):
        value = torch.as_tensor(np.asarray(params[key]), dtype=torch.float32).reshape(-1)
        if value.numel() != size:
            raise ValueError(f"mean params '{key}' must have {size} values, got {value.numel()}")
        out.append(value[None].clone())
    return tuple(out)


@dataclass
class RegressorState:
    """Body parameters at one point of the regression.

    pose6d: (B, 144) 24 joints × 6D (R00, R01, R10, R11, R20, R21); joint 0 = global orient.
    betas: (B, 10). cam: (B, 3) weak-perspective (s, tx, ty) of the crop camera.
    rotmat: (B, 24, 3, 3) = rot6d_to_rotmat(pose6d).
    """

    pose6d: torch.Tensor
    betas: torch.Tensor
    cam: torch.Tensor
    rotmat: torch.Tensor

    @classmethod
    def from_params(cls, pose6d: torch.Tensor, betas: torch.Tensor, cam: torch.Tensor) -> "RegressorState":
        rotmat = rot6d_to_rotmat(pose6d.reshape(pose6d.shape[0], NUM_JOINTS, 6))
        return cls(pose6d, betas, cam, rotmat)

    def detach(self) -> "RegressorState":
        return RegressorState(self.pose6d.detach(), self.betas.detach(), self.cam.detach(),
                              self.rotmat.detach())


@dataclass
class IEFOutput:
    """What an IEF regressor's forward returns (HMR/SPIN, CLIFF): iterations = the state
    after each IEF iteration (final = iterations[-1]); features: (B, C) pooled backbone
    feature fed to the head; meshes: per iteration, when the model was asked for them
    (else empty)."""

    iterations: list[RegressorState]
    features: torch.Tensor
    meshes: list[MeshPrediction] = field(default_factory=list)

    @property
    def final(self) -> RegressorState:
        return self.iterations[-1]


class IEFRegressor(nn.Module):
    """The IEF head (see module docstring).

    Args:
        feat_dim: width of the image feature fed at every step (2048 for ResNet-50,
            2048 + 3 for CLIFF's feature + bbox info, 5·N for PyMAF's point features).
        mean_params: body / mapping / None, see :func:`mean_params_tensors`.
        hidden: fc1/fc2 width (1024).
        dropout: p of drop1/drop2 (0.5).
    """

    def __init__(self, feat_dim: int, mean_params=None, hidden: int = 1024, dropout: float = 0.5):
        super().__init__()
        self.feat_dim = feat_dim
        npose = NUM_JOINTS * 6
        self.fc1 = nn.Linear(feat_dim + npose + NUM_BETAS + 3, hidden)
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, hidden)
        self.drop2 = nn.Dropout(dropout)
        self.decpose = nn.Linear(hidden, npose)
        self.decshape = nn.Linear(hidden, NUM_BETAS)
        self.deccam = nn.Linear(hidden, 3)
        for layer in (self.decpose, self.decshape, self.deccam):
            nn.init.xavier_uniform_(layer.weight, gain=0.01)
        pose, shape, cam = mean_params_tensors(mean_params)
        self.register_buffer("init_pose", pose)
        self.register_buffer("init_shape", shape)
        self.register_buffer("init_cam", cam)

    def initial_state(self, batch_size: int) -> RegressorState:
        """The mean body, expanded to (B, ·)."""
        return RegressorState.from_params(self.init_pose.expand(batch_size, -1),
                                          self.init_shape.expand(batch_size, -1),
                                          self.init_cam.expand(batch_size, -1))

    def step(self, features: torch.Tensor, state: RegressorState) -> RegressorState:
        """One IEF iteration.

        Args:
            features: (B, feat_dim).
            state: the current parameters.
        Returns:
            the updated parameters.
        """
        if features.ndim != 2 or features.shape[1] != self.feat_dim:
            raise ValueError(f"IEF step: expected features (B, {self.feat_dim}), got {tuple(features.shape)}")
        x = torch.cat([features, state.pose6d, state.betas, state.cam], dim=1)
        x = self.drop2(self.fc2(self.drop1(self.fc1(x))))
        return RegressorState.from_params(state.pose6d + self.decpose(x),
                                          state.betas + self.decshape(x),
                                          state.cam + self.deccam(x))

    def iterate(self, features: torch.Tensor, n_iter: int,
                init: RegressorState | None = None) -> list[RegressorState]:
        """`n_iter` IEF steps from `init` (default: the mean); returns every step's state."""
        state = self.initial_state(features.shape[0]) if init is None else init
        states = []
        for _ in range(n_iter):
            state = self.step(features, state)
            states.append(state)
        return states

"""Pose and shape priors for SMPLify-style fitting.

* :class:`MaxMixturePrior` — SMPLify's 8-Gaussian pose prior in SMPLify-X's **merged**
  mode over the 69-D body-pose axis-angle (no global orientation)::

      E(θ) = min_k [ ½ (θ − μ_k)ᵀ Σ_k⁻¹ (θ − μ_k)
                     − log( w_k / ((2π)^{34.5} · √det Σ_k / min_j √det Σ_j) ) ]

  (SPIN fact sheet §2.1). Loaded from the user's ``gmm_08.pkl`` (SMPLify's GMM, fitted to
  CMU mocap; keys ``means`` (8,69), ``covars`` (8,69,69), ``weights`` (8,)) through the
  restricted unpickler, or from the project's open prior
  ``assets/priors/open_pose_prior.npz`` (built by ``python -m core.fitting.build_open_prior``
  from range-of-motion samples, see :mod:`core.fitting.rom`).
* :class:`JointLimitPrior` — squared hinge outside per-component axis-angle limits
  (shipped with the open prior).
* :func:`angle_prior` — SMPLify's elbow/knee bending prior ``Σ exp(θ_i s_i)²`` on body-pose
  indices (52, 55, 9, 12) with signs (+1, −1, −1, −1).
* :func:`shape_prior` — ``‖β‖²``.

All take batched tensors and return per-sample values (B,); the fitting code weights them.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core import ASSETS_DIR
from core.utils.fastpaths import reference_active

__all__ = [
    "OPEN_PRIOR_PATH", "ANGLE_PRIOR_INDICES", "ANGLE_PRIOR_SIGNS",
    "MaxMixturePrior", "JointLimitPrior", "PosePrior",
    "angle_prior", "shape_prior", "load_gmm_pkl", "load_open_prior", "load_pose_prior",
    "PriorFileError",
]

OPEN_PRIOR_PATH = ASSETS_DIR / "priors" / "open_pose_prior.npz"
# body_pose (69,) indices: left elbow y, right elbow y, left knee x, right knee x
# (full-pose indices 55, 58, 12, 15 minus the 3 global-orientation entries).
ANGLE_PRIOR_INDICES = (52, 55, 9, 12)
ANGLE_PRIOR_SIGNS = (1.0, -1.0, -1.0, -1.0)


class PriorFileError(FileNotFoundError):
    """A prior file is missing or malformed (the message says which and how to get it)."""


class MaxMixturePrior(nn.Module):
    """SMPLify's Gaussian-mixture pose prior, merged (max-mixture) mode.

    Args:
        means: (K, 69). covars: (K, 69, 69) positive definite. weights: (K,) > 0.
        name: where it came from ("smplify_gmm_08", "open_rom_gmm" …).
    Buffers: ``means`` (K,69), ``precisions`` (K,69,69), ``nll_const`` (K,) =
    ``−log(w_k / ((2π)^{D/2} · √det Σ_k / min_j √det Σ_j))``.
    """

    def __init__(self, means, covars, weights, name: str = "gmm"):
        super().__init__()
        means = np.asarray(means, dtype=np.float64)
        covars = np.asarray(covars, dtype=np.float64)
        weights = np.asarray(weights, dtype=np.float64).reshape(-1)
        K = len(weights)
        if means.ndim != 2 or means.shape[0] != K or covars.shape != (K, means.shape[1], means.shape[1]):
            raise ValueError(f"MaxMixturePrior: expected means (K, D), covars (K, D, D), weights (K,); got "
                             f"{means.shape}, {covars.shape}, {weights.shape}")
        if not (weights > 0).all():
            raise ValueError("MaxMixturePrior: mixture weights must be > 0")
        D = means.shape[1]
        sign, logdet = np.linalg.slogdet(covars)
        if not (sign > 0).all():
            raise ValueError("MaxMixturePrior: every covariance must be positive definite")
        half_logdet = 0.5 * logdet                               # log √det Σ_k
        nll = -(np.log(weights) - (0.5 * D * math.log(2 * math.pi) + half_logdet - half_logdet.min()))
        self.name = name
        self.dim = D
        self.register_buffer("means", torch.as_tensor(means, dtype=torch.float32))
        self.register_buffer("precisions", torch.as_tensor(np.linalg.inv(covars), dtype=torch.float32))
        self.register_buffer("nll_const", torch.as_tensor(nll, dtype=torch.float32))

    def components(self, body_pose: torch.Tensor) -> torch.Tensor:
        """(B, 69) axis-angle → (B, K) per-component energies (before the min)."""
        if body_pose.ndim != 2 or body_pose.shape[1] != self.dim:
            raise ValueError(f"pose prior: expected body_pose (B, {self.dim}) axis-angle, got {tuple(body_pose.shape)}")
        diff = body_pose[:, None, :] - self.means.to(body_pose.dtype)[None]       # (B,K,D)
        prec = self.precisions.to(body_pose.dtype)
        quad = (torch.einsum("bkd,kde->bke", diff, prec) * diff).sum(-1)          # two operands: one GEMM per k
        return 0.5 * quad + self.nll_const.to(body_pose.dtype)[None]

    def forward(self, body_pose: torch.Tensor) -> torch.Tensor:
        """(B, 69) axis-angle → (B,) min over components (merged mode); :meth:`reference`
        inside :func:`core.utils.fastpaths.reference_paths`."""
        if reference_active():
            return self.reference(body_pose)
        return self.components(body_pose).min(dim=1).values

    def reference(self, body_pose: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` as first written (one three-operand einsum, ≈2× slower at batch
        1): the reference the tests and ``benchmarks/bench_smplify.py`` compare with."""
        diff = body_pose[:, None, :] - self.means.to(body_pose.dtype)[None]
        quad = torch.einsum("bkd,kde,bke->bk", diff, self.precisions.to(body_pose.dtype), diff)
        return (0.5 * quad + self.nll_const.to(body_pose.dtype)[None]).min(dim=1).values


class JointLimitPrior(nn.Module):
    """Squared hinge ``Σ_i relu(lower_i − θ_i)² + relu(θ_i − upper_i)²`` over the 69
    body-pose axis-angle components (radians).

    A per-component box in axis-angle space approximates the anatomical limits; it is tight
    for single-axis joints (knee and elbow flexion, where it forbids bending backwards) and
    loose for ball joints (shoulders, hips), where the priors' mixture does the rest.
    """

    def __init__(self, lower, upper):
        super().__init__()
        lower = torch.as_tensor(np.asarray(lower, np.float32)).reshape(-1)
        upper = torch.as_tensor(np.asarray(upper, np.float32)).reshape(-1)
        if lower.shape != upper.shape or not bool((lower <= upper).all()):
            raise ValueError("JointLimitPrior: lower and upper must have the same shape and lower ≤ upper")
        self.register_buffer("lower", lower)
        self.register_buffer("upper", upper)

    def forward(self, body_pose: torch.Tensor) -> torch.Tensor:
        """(B, 69) → (B,)."""
        lo, hi = self.lower.to(body_pose.dtype), self.upper.to(body_pose.dtype)
        return (torch.relu(lo - body_pose) ** 2 + torch.relu(body_pose - hi) ** 2).sum(-1)


@dataclass
class PosePrior:
    """The pose prior SMPLify uses: the mixture and, optionally, joint limits.

    gmm: :class:`MaxMixturePrior`. limits: :class:`JointLimitPrior` or None.
    source: human-readable origin (file path and kind). is_open: True for the project's
    range-of-motion prior (no licensed data).
    """

    gmm: MaxMixturePrior
    limits: JointLimitPrior | None
    source: str
    is_open: bool

    def to(self, device=None, dtype=None) -> "PosePrior":
        self.gmm.to(device=device)
        if self.limits is not None:
            self.limits.to(device=device)
        return self


def angle_prior(body_pose: torch.Tensor) -> torch.Tensor:
    """SMPLify's bending prior: (B, 69) axis-angle → (B,) ``Σ_i exp(θ_i · s_i)²`` over the
    elbows' y and knees' x (penalises bending the wrong way)."""
    idx = list(ANGLE_PRIOR_INDICES)
    signs = body_pose.new_tensor(ANGLE_PRIOR_SIGNS)
    return torch.exp(body_pose[:, idx] * signs).pow(2).sum(-1)


def shape_prior(betas: torch.Tensor) -> torch.Tensor:
    """(B, K) → (B,) ``‖β‖²``."""
    return (betas ** 2).sum(-1)


# ----------------------------------------------------------------------------- loading
def load_gmm_pkl(path) -> MaxMixturePrior:
    """SMPLify's ``gmm_08.pkl`` (dict with ``means`` (8,69), ``covars`` (8,69,69),
    ``weights`` (8,)) → :class:`MaxMixturePrior`, via :func:`core.utils.io.restricted_load_pickle`."""
    from core.utils.io import restricted_load_pickle, to_plain_arrays

    path = Path(path)
    if not path.is_file():
        raise PriorFileError(f"GMM pose prior not found: {path}. SMPLify's gmm_08.pkl comes with "
                             f"SPIN's data (fetch_data.sh) or SMPLify; the open body uses the project's "
                             f"open prior instead (load_open_prior()).")
    data = restricted_load_pickle(path)
    if not isinstance(data, dict):
        raise PriorFileError(f"{path}: expected a dict with means/covars/weights, got {type(data).__name__}")
    data = to_plain_arrays(data)
    missing = [k for k in ("means", "covars", "weights") if k not in data]
    if missing:
        raise PriorFileError(f"{path}: missing keys {missing} (has {sorted(map(str, data))})")
    return MaxMixturePrior(data["means"], data["covars"], data["weights"], name="smplify_gmm")


def load_open_prior(path=OPEN_PRIOR_PATH) -> PosePrior:
    """The project's open pose prior (GMM + joint limits) from ``open_pose_prior.npz``."""
    path = Path(path)
    if not path.is_file():
        raise PriorFileError(f"open pose prior not found: {path}. It is part of the repository "
                             f"(assets/priors/); rebuild with: python -m core.fitting.build_open_prior")
    with np.load(path, allow_pickle=False) as f:
        d = {k: f[k] for k in f.files}
    for k in ("means", "covars", "weights", "limits_lower", "limits_upper"):
        if k not in d:
            raise PriorFileError(f"{path}: missing array {k!r}; rebuild with python -m core.fitting.build_open_prior")
    gmm = MaxMixturePrior(d["means"], d["covars"], d["weights"], name="open_rom_gmm")
    return PosePrior(gmm, JointLimitPrior(d["limits_lower"], d["limits_upper"]),
                     source=f"open range-of-motion prior ({path.name})", is_open=True)


_PRIOR_CACHE: dict = {}


def load_pose_prior(body_name: str = "open", smpl_dir=None, gmm_path=None,
                    joint_limits: bool | None = None) -> PosePrior:
    """Choose the pose prior for a body.

    * an explicit ``gmm_path`` → that ``gmm_08.pkl``;
    * ``body_name == "smpl"`` with ``smpl_dir`` holding ``gmm_08.pkl`` → SMPLify's GMM;
    * otherwise the open prior (with a warning when SMPL was asked for but no GMM found).

    Args:
        joint_limits: add the open prior's joint-limit hinges (default: only with the open
            prior; True also adds them to SMPLify's GMM).
    Returns:
        :class:`PosePrior` (cached per source; do not modify its buffers).
    """
    path = None
    if gmm_path is not None:
        path = Path(gmm_path)
    elif body_name == "smpl" and smpl_dir is not None:
        for cand in (Path(smpl_dir) / "gmm_08.pkl", Path(smpl_dir) / "smpl" / "gmm_08.pkl",
                     Path(smpl_dir) / "data" / "gmm_08.pkl"):       # flat, SPIN's data/, a repository root
            if cand.is_file():
                path = cand
                break
        if path is None:
            warnings.warn(f"no gmm_08.pkl in {smpl_dir}; using the open range-of-motion pose prior "
                          f"instead of SMPLify's GMM", stacklevel=2)
    key = (str(path), joint_limits)
    if key in _PRIOR_CACHE:
        return _PRIOR_CACHE[key]
    if path is None:
        prior = load_open_prior()
        if joint_limits is False:
            prior = PosePrior(prior.gmm, None, prior.source, True)
    else:
        gmm = load_gmm_pkl(path)
        limits = load_open_prior().limits if joint_limits else None
        prior = PosePrior(gmm, limits, source=f"SMPLify GMM ({path})", is_open=False)
    _PRIOR_CACHE[key] = prior
    return prior

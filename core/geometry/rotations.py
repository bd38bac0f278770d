"""Rotation representations: 6D, axis-angle, quaternions, rotation matrices.

All functions are batched over arbitrary leading dimensions ``...``, work on any float
dtype/device and are differentiable. Conventions:

- Rotation matrices act on column vectors: ``x' = R @ x``.
- Axis-angle: a 3-vector ``angle * unit_axis`` (radians), as in SMPL's 72-d pose.
- Quaternions are **w-first** ``(w, x, y, z)``. :func:`rotmat_to_quaternion` returns the
  unit quaternion with ``w >= 0``; :func:`axis_angle_to_quaternion` is smooth in its input
  and gives ``w = cos(θ/2)``, negative for θ > π.
- 6D (Zhou et al. 2019, SPIN/PyMAF/CLIFF layout): the first two *columns* of R written
  row-major, i.e. ``(R00, R01, R10, R11, R20, R21)``.

Small-angle and near-pi cases use Taylor expansions and "safe" square roots/divisions so
that values *and gradients* stay finite (no NaN at angle 0, exact at angle pi).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "rot6d_to_rotmat",
    "rotmat_to_rot6d",
    "axis_angle_to_rotmat",
    "rotmat_to_axis_angle",
    "axis_angle_to_quaternion",
    "quaternion_to_axis_angle",
    "quaternion_to_rotmat",
    "rotmat_to_quaternion",
    "skew",
]

# Below this squared angle (rad^2) the Taylor branches are used. With terms up to
# theta^4 the truncation error is < 1e-17 relative, far below float64 epsilon.
_SMALL_ANGLE_SQ = 1e-6


def _check_last(x: torch.Tensor, size: int, name: str, what: str) -> None:
    if not torch.is_tensor(x):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}; "
                        f"wrap NumPy input with torch.as_tensor(...)")
    if x.ndim < 1 or x.shape[-1] != size:
        raise ValueError(f"{name}: expected shape (..., {size}) ({what}), got {tuple(x.shape)}")


def _check_mat(R: torch.Tensor, name: str) -> None:
    if not torch.is_tensor(R):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(R).__name__}")
    if R.ndim < 2 or R.shape[-2:] != (3, 3):
        raise ValueError(f"{name}: expected rotation matrices of shape (..., 3, 3), "
                         f"got {tuple(R.shape)}")


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """sqrt(max(x, 0)) whose gradient is 0 (not inf/NaN) where x <= 0."""
    positive = x > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))),
                       torch.zeros_like(x))


def skew(v: torch.Tensor) -> torch.Tensor:
    """Cross-product matrix.

    Args:
        v: (..., 3).
    Returns:
        (..., 3, 3) K with ``K @ u == cross(v, u)``.
    """
    _check_last(v, 3, "skew", "3-vectors")
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*v.shape[:-1], 3, 3)


# ----------------------------------------------------------------------------- 6D
def rot6d_to_rotmat(x: torch.Tensor) -> torch.Tensor:
    """6D rotation representation → rotation matrix (SPIN/PyMAF convention).

    Args:
        x: (..., 6) = ``(R00, R01, R10, R11, R20, R21)``, i.e. a 3×2 matrix stored
           row-major whose columns are (approximately) the first two columns of R.
           A (B, 144) SPIN pose must be reshaped to (B, 24, 6) first.
    Returns:
        (..., 3, 3) rotation matrices ``[b1 | b2 | b3]`` (columns) with Gram-Schmidt
        ``b1 = normalize(col0)``, ``b2 = normalize(col1 - (b1·col1) b1)``, ``b3 = b1 × b2``.
    """
    _check_last(x, 6, "rot6d_to_rotmat", "6D rotations; reshape (B, 144) poses to (B, 24, 6)")
    m = x.reshape(*x.shape[:-1], 3, 2)
    a1, a2 = m[..., 0], m[..., 1]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def rotmat_to_rot6d(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix → 6D (inverse of :func:`rot6d_to_rotmat` on rotation matrices).

    Args:
        R: (..., 3, 3).
    Returns:
        (..., 6) = ``R[..., :, :2]`` flattened row-major ``(R00, R01, R10, R11, R20, R21)``.
    """
    _check_mat(R, "rotmat_to_rot6d")
    return R[..., :, :2].reshape(*R.shape[:-2], 6)


# ----------------------------------------------------------------------------- axis-angle
def axis_angle_to_rotmat(aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle → rotation matrix (Rodrigues), stable at angle 0.

    ``R = I + A(θ) K + B(θ) K²`` with ``K = skew(aa)`` (not normalised),
    ``A = sin θ / θ``, ``B = (1 - cos θ) / θ²`` (Taylor series for θ² < 1e-6).

    Args:
        aa: (..., 3) axis * angle in radians.
    Returns:
        (..., 3, 3).
    """
    _check_last(aa, 3, "axis_angle_to_rotmat", "axis-angle vectors")
    theta_sq = (aa * aa).sum(-1)
    small = theta_sq < _SMALL_ANGLE_SQ
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta_sq), theta_sq))
    a_big = torch.sin(theta) / theta
    # 1 - cos θ = 2 sin²(θ/2): no cancellation for small θ in float32.
    b_big = 2.0 * torch.sin(0.5 * theta) ** 2 / torch.where(small, torch.ones_like(theta_sq), theta_sq)
    a_small = 1.0 - theta_sq / 6.0 + theta_sq * theta_sq / 120.0
    b_small = 0.5 - theta_sq / 24.0 + theta_sq * theta_sq / 720.0
    a = torch.where(small, a_small, a_big)[..., None, None]
    b = torch.where(small, b_small, b_big)[..., None, None]
    K = skew(aa)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(K)
    return eye + a * K + b * (K @ K)


def axis_angle_to_quaternion(aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle → unit quaternion (w, x, y, z) = (cos(θ/2), sin(θ/2)·axis).

    ``w >= 0`` for θ <= π; not re-signed for θ > π, so the map stays smooth.

    Args:
        aa: (..., 3) radians.
    Returns:
        (..., 4) w-first.
    """
    _check_last(aa, 3, "axis_angle_to_quaternion", "axis-angle vectors")
    theta_sq = (aa * aa).sum(-1, keepdim=True)
    small = theta_sq < _SMALL_ANGLE_SQ
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta_sq), theta_sq))
    half = 0.5 * theta
    # sin(θ/2)/θ and cos(θ/2) with Taylor series near 0.
    k = torch.where(small, 0.5 - theta_sq / 48.0 + theta_sq * theta_sq / 3840.0,
                    torch.sin(half) / theta)
    w = torch.where(small, 1.0 - theta_sq / 8.0 + theta_sq * theta_sq / 384.0, torch.cos(half))
    return torch.cat([w, aa * k], dim=-1)


def quaternion_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """Quaternion (w, x, y, z) → axis-angle with angle in [0, π].

    The input is normalised and its sign chosen so that ``w >= 0`` (q and -q are the
    same rotation). Uses ``θ = 2·atan2(|v|, w)``, exact near π; near 0 the factor
    ``θ/|v|`` is evaluated with its Taylor series so the gradient is finite.

    Args:
        q: (..., 4) w-first, any non-zero norm.
    Returns:
        (..., 3).
    """
    _check_last(q, 4, "quaternion_to_axis_angle", "w-first quaternions")
    q = F.normalize(q, dim=-1)
    sign = torch.where(q[..., :1] < 0, -torch.ones_like(q[..., :1]), torch.ones_like(q[..., :1]))
    q = q * sign
    w, v = q[..., :1], q[..., 1:]
    s_sq = (v * v).sum(-1, keepdim=True)
    small = s_sq < _SMALL_ANGLE_SQ
    s = torch.sqrt(torch.where(small, torch.ones_like(s_sq), s_sq))
    factor_big = 2.0 * torch.atan2(s, w) / s
    # 2·atan(s/w)/s = 2/w · (1 - t²/3 + t⁴/5) with t = s/w; w >= ~1 here.
    w_safe = torch.where(small, w, torch.ones_like(w))
    t_sq = s_sq / (w_safe * w_safe)
    factor_small = 2.0 / w_safe * (1.0 - t_sq / 3.0 + t_sq * t_sq / 5.0)
    return v * torch.where(small, factor_small, factor_big)


# ----------------------------------------------------------------------------- quaternions
def quaternion_to_rotmat(q: torch.Tensor) -> torch.Tensor:
    """Quaternion (w, x, y, z) → rotation matrix. Non-unit input is normalised implicitly.

    Args:
        q: (..., 4) w-first, non-zero.
    Returns:
        (..., 3, 3).
    """
    _check_last(q, 4, "quaternion_to_rotmat", "w-first quaternions")
    w, x, y, z = q.unbind(-1)
    two_s = 2.0 / (q * q).sum(-1)
    R = torch.stack([
        1 - two_s * (y * y + z * z), two_s * (x * y - z * w), two_s * (x * z + y * w),
        two_s * (x * y + z * w), 1 - two_s * (x * x + z * z), two_s * (y * z - x * w),
        two_s * (x * z - y * w), two_s * (y * z + x * w), 1 - two_s * (x * x + y * y),
    ], dim=-1)
    return R.reshape(*q.shape[:-1], 3, 3)


def rotmat_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix → unit quaternion (w, x, y, z) with ``w >= 0``.

    Shepperd's method, branch-free: the four candidates ``4w², 4x², 4y², 4z²`` are computed
    from the diagonal, a quaternion is formed from each (dividing by its own large
    component), and the one with the largest component is selected with a gather. The
    selected divisor is always >= 1, so the result is accurate for every angle including π,
    and unselected candidates get zero (finite) gradient.

    Args:
        R: (..., 3, 3) (approximately) orthonormal with det +1.
    Returns:
        (..., 4) w-first, unit norm, ``w >= 0``.
    """
    _check_mat(R, "rotmat_to_quaternion")
    batch = R.shape[:-2]
    m = R.reshape(*batch, 9)
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m.unbind(-1)
    four_sq = torch.stack([
        1.0 + m00 + m11 + m22,  # 4 w²
        1.0 + m00 - m11 - m22,  # 4 x²
        1.0 - m00 + m11 - m22,  # 4 y²
        1.0 - m00 - m11 + m22,  # 4 z²
    ], dim=-1)
    two_abs = _safe_sqrt(four_sq)  # 2|w|, 2|x|, 2|y|, 2|z|
    # Row k: 4·q_k·q, from the off-diagonal terms; each divided by 2·2|q_k| below.
    cand = torch.stack([
        torch.stack([four_sq[..., 0], m21 - m12, m02 - m20, m10 - m01], dim=-1),
        torch.stack([m21 - m12, four_sq[..., 1], m10 + m01, m02 + m20], dim=-1),
        torch.stack([m02 - m20, m10 + m01, four_sq[..., 2], m12 + m21], dim=-1),
        torch.stack([m10 - m01, m20 + m02, m21 + m12, four_sq[..., 3]], dim=-1),
    ], dim=-2)  # (..., 4, 4)
    denom = 2.0 * torch.clamp(two_abs, min=0.1)[..., None]
    cand = cand / denom
    best = four_sq.argmax(dim=-1)  # (...)
    idx = best[..., None, None].expand(*batch, 1, 4)
    q = torch.gather(cand, -2, idx).squeeze(-2)
    q = F.normalize(q, dim=-1)
    sign = torch.where(q[..., :1] < 0, -torch.ones_like(q[..., :1]), torch.ones_like(q[..., :1]))
    return q * sign


def rotmat_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix → axis-angle (angle in [0, π]), via :func:`rotmat_to_quaternion`.

    Stable at angle 0 (finite gradients) and at π (no division by sin θ).

    Args:
        R: (..., 3, 3).
    Returns:
        (..., 3).
    """
    return quaternion_to_axis_angle(rotmat_to_quaternion(R))

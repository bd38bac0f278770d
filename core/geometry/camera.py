"""Camera models: SPIN weak-perspective crop camera, perspective projection, CLIFF's
full-frame camera, and SPIN's closed-form camera translation estimate.

Camera frame everywhere: x right, y down, z forward (OpenCV). Pixels: x right, y down.
A crop camera is a pinhole with focal ``f`` (5000 px for SPIN/PyMAF's 224 crop) and
principal point at the crop centre ``(res/2, res/2)``; the network's weak-perspective
``(s, tx, ty)`` means a translation ``(tx, ty, 2f/(res·s))``.
"""
from __future__ import annotations

import math
from typing import Union

import torch

from .rotations import _check_last

__all__ = [
    "FOCAL_LENGTH",
    "IMG_RES",
    "weak_perspective_to_translation",
    "translation_to_weak_perspective",
    "perspective_projection",
    "cliff_bbox_info",
    "cliff_cam_to_full",
    "estimate_translation",
    "default_focal",
]

FOCAL_LENGTH = 5000.0  # SPIN/PyMAF constants.FOCAL_LENGTH (px, for a 224 crop)
IMG_RES = 224          # SPIN/PyMAF constants.IMG_RES

Number = Union[float, int]


def _as_tensor(x, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(x, dtype=like.dtype, device=like.device)


def weak_perspective_to_translation(cam: torch.Tensor, focal: Number | torch.Tensor = FOCAL_LENGTH,
                                    img_res: Number = IMG_RES) -> torch.Tensor:
    """Weak-perspective crop camera → perspective camera translation (SPIN).

    Args:
        cam: (..., 3) = (s, tx, ty) as predicted by HMR/SPIN/PyMAF (s in crop units where
             the crop spans [-1, 1]).
        focal: focal length in crop pixels (float or (...,) tensor); 5000 for SPIN.
        img_res: crop side in pixels (224).
    Returns:
        (..., 3) translation ``(tx, ty, 2·f / (img_res·s + 1e-9))`` in the camera frame.
    """
    _check_last(cam, 3, "weak_perspective_to_translation", "cam (s, tx, ty)")
    s, tx, ty = cam.unbind(-1)
    f = _as_tensor(focal, cam)
    tz = 2.0 * f / (img_res * s + 1e-9)
    return torch.stack([tx, ty, tz], dim=-1)


def translation_to_weak_perspective(transl: torch.Tensor, focal: Number | torch.Tensor = FOCAL_LENGTH,
                                    img_res: Number = IMG_RES) -> torch.Tensor:
    """Inverse of :func:`weak_perspective_to_translation`.

    Args:
        transl: (..., 3) camera translation (tx, ty, tz), tz > 0.
        focal: focal length in crop pixels (float or (...,) tensor).
        img_res: crop side in pixels.
    Returns:
        (..., 3) = ``(2·f / (img_res·tz), tx, ty)``.
    """
    _check_last(transl, 3, "translation_to_weak_perspective", "transl (tx, ty, tz)")
    tx, ty, tz = transl.unbind(-1)
    f = _as_tensor(focal, transl)
    s = 2.0 * f / (img_res * tz)
    return torch.stack([s, tx, ty], dim=-1)


def perspective_projection(points: torch.Tensor, rotation: torch.Tensor | None,
                           translation: torch.Tensor, focal: Number | torch.Tensor,
                           center: torch.Tensor | tuple | list | Number) -> torch.Tensor:
    """Pinhole projection of camera-space points to pixels.

    ``X_c = R X + t``; ``u = fx·X_c/Z_c + cx``, ``v = fy·Y_c/Z_c + cy``. No clamping of
    Z_c: points at or behind the camera give inf/negative-depth pixels (caller's concern).

    Args:
        points: (B, N, 3).
        rotation: (B, 3, 3) or None for identity.
        translation: (B, 3).
        focal: float, (B,) (fx = fy) or (B, 2) (fx, fy), in pixels.
        center: principal point, (B, 2), (2,) or a float used for both axes; e.g. 112 for
            SPIN's 224 crop, (W/2, H/2) for a CLIFF full-frame camera.
    Returns:
        (B, N, 2) pixel coordinates.
    """
    if not torch.is_tensor(points) or points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"perspective_projection: points must be a (B, N, 3) tensor, got "
                         f"{tuple(points.shape) if torch.is_tensor(points) else type(points).__name__}")
    B = points.shape[0]
    if translation.shape != (B, 3):
        raise ValueError(f"perspective_projection: translation must be (B, 3) = ({B}, 3), "
                         f"got {tuple(translation.shape)}")
    if rotation is not None:
        if rotation.shape != (B, 3, 3):
            raise ValueError(f"perspective_projection: rotation must be (B, 3, 3) or None, "
                             f"got {tuple(rotation.shape)}")
        points = points @ rotation.transpose(-1, -2)
    points = points + translation[:, None, :]
    f = _as_tensor(focal, points)
    if f.ndim == 0:
        f = f.expand(B, 2)
    elif f.shape == (B,):
        f = f[:, None].expand(B, 2)
    elif f.shape != (B, 2):
        raise ValueError(f"perspective_projection: focal must be a float, (B,) or (B, 2); "
                         f"got {tuple(f.shape)} with B={B}")
    c = _as_tensor(center, points)
    if c.ndim == 0:
        c = c.expand(B, 2)
    elif c.shape == (2,):
        c = c.expand(B, 2)
    elif c.shape != (B, 2):
        raise ValueError(f"perspective_projection: center must be a float, (2,) or (B, 2); "
                         f"got {tuple(c.shape)} with B={B}")
    xy = points[..., :2] / points[..., 2:3]
    return xy * f[:, None, :] + c[:, None, :]


def _img_hw(img_size: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if img_size.shape[-1] != 2:
        raise ValueError(f"{name}: img_size must be (B, 2) = (height, width), got {tuple(img_size.shape)}")
    return img_size[..., 0], img_size[..., 1]


def cliff_bbox_info(center: torch.Tensor, scale: torch.Tensor, img_size: torch.Tensor,
                    focal: torch.Tensor) -> torch.Tensor:
    """CLIFF's normalised bounding-box descriptor fed to the regressor.

    ``[(cx − W/2)/f · 2.8, (cy − H/2)/f · 2.8, (b − 0.24 f)/(0.06 f)]`` with ``b = 200·scale``.

    Args:
        center: (B, 2) box centre (cx, cy) in full-image pixels.
        scale: (B,) SPIN scale (box side / 200).
        img_size: (B, 2) full image (height, width).
        focal: (B,) full-image focal length in pixels (see :func:`default_focal`).
    Returns:
        (B, 3).
    """
    _check_last(center, 2, "cliff_bbox_info", "center (cx, cy)")
    H, W = _img_hw(img_size, "cliff_bbox_info")
    b = 200.0 * scale
    return torch.stack([
        (center[..., 0] - W / 2.0) / focal * 2.8,
        (center[..., 1] - H / 2.0) / focal * 2.8,
        (b - 0.24 * focal) / (0.06 * focal),
    ], dim=-1)


def cliff_cam_to_full(cam: torch.Tensor, center: torch.Tensor, scale: torch.Tensor,
                      img_size: torch.Tensor, focal: torch.Tensor) -> torch.Tensor:
    """CLIFF: crop weak-perspective camera → translation in the full-image camera.

    With ``b = 200·scale``: ``tz = 2f/(b·s)``, ``tx_full = tx + 2(cx − W/2)/(b·s)``,
    ``ty_full = ty + 2(cy − H/2)/(b·s)``. Project with focal ``f`` and principal point
    ``(W/2, H/2)`` (identity rotation).

    Args:
        cam: (B, 3) = (s, tx, ty) predicted for the crop.
        center: (B, 2) box centre in full-image pixels.
        scale: (B,) box side / 200.
        img_size: (B, 2) (height, width) of the full image.
        focal: (B,) full-image focal length in pixels.
    Returns:
        (B, 3) translation (tx_full, ty_full, tz).
    """
    _check_last(cam, 3, "cliff_cam_to_full", "cam (s, tx, ty)")
    H, W = _img_hw(img_size, "cliff_cam_to_full")
    s, tx, ty = cam.unbind(-1)
    bs = 200.0 * scale * s + 1e-9
    tz = 2.0 * focal / bs
    return torch.stack([tx + 2.0 * (center[..., 0] - W / 2.0) / bs,
                        ty + 2.0 * (center[..., 1] - H / 2.0) / bs, tz], dim=-1)


def estimate_translation(joints3d: torch.Tensor, joints2d: torch.Tensor,
                         focal: Number | torch.Tensor = FOCAL_LENGTH, img_res: Number = IMG_RES,
                         center: torch.Tensor | None = None,
                         fallback: torch.Tensor | None = None) -> torch.Tensor:
    """Camera translation that best projects 3D joints onto 2D keypoints (SPIN).

    For each joint with 3D point (X, Y, Z), pixel (u, v) and principal point (cx, cy), the
    projection ``u = f(X + tx)/(Z + tz) + cx`` is linear in t after multiplying out:
    ``f·tx + (cx − u)·tz = (u − cx)·Z − f·X`` (same for y). Rows are weighted by
    ``sqrt(conf)`` and the weighted least-squares problem is solved with its 3×3 normal
    equations (SPIN's ``estimate_translation_np``, batched; SPIN passes the 24 "GT" joints,
    indices 25:49, in crop pixels).

    Args:
        joints3d: (B, J, 3) joints in the camera-aligned model frame (no translation).
        joints2d: (B, J, 3) target pixels (u, v, confidence) in the crop.
        focal: float or (B,) focal length in pixels.
        img_res: crop size; the principal point defaults to (img_res/2, img_res/2).
        center: optional (B, 2) or (2,) principal point overriding img_res/2.
        fallback: optional (B, 3) translation used for samples with fewer than 2 joints
            of positive confidence, or whose system is singular (degenerate keypoints).
            Without it such a sample raises ValueError.
    Returns:
        (B, 3) translation (tx, ty, tz). Differentiable w.r.t. all inputs.
    """
    if joints3d.ndim != 3 or joints3d.shape[-1] != 3:
        raise ValueError(f"estimate_translation: joints3d must be (B, J, 3), got {tuple(joints3d.shape)}")
    if joints2d.shape[:2] != joints3d.shape[:2] or joints2d.shape[-1] != 3:
        raise ValueError(f"estimate_translation: joints2d must be (B, J, 3) = (u, v, conf) matching "
                         f"joints3d {tuple(joints3d.shape)}, got {tuple(joints2d.shape)}")
    B, J, _ = joints3d.shape
    # least squares in at least float32, also under autocast (no half-precision LU)
    dtype, device = torch.promote_types(joints3d.dtype, torch.float32), joints3d.device
    joints3d, joints2d = joints3d.to(dtype), joints2d.to(dtype)
    if fallback is not None:
        fallback = fallback.to(dtype)
    f = torch.as_tensor(focal, dtype=dtype, device=device)
    f = f.expand(B) if f.ndim == 0 else f.reshape(B)
    if center is None:
        c = torch.full((B, 2), img_res / 2.0, dtype=dtype, device=device)
    else:
        c = torch.as_tensor(center, dtype=dtype, device=device).expand(B, 2)
    uv = joints2d[..., :2]
    conf = joints2d[..., 2].clamp(min=0)
    w = torch.sqrt(conf)                                   # (B, J)
    X, Y, Z = joints3d.unbind(-1)
    d = uv - c[:, None, :]                                 # (u - cx, v - cy)
    zeros = torch.zeros_like(X)
    fJ = f[:, None].expand(B, J)
    # Rows for x then y: [f, 0, -(u-cx)] and [0, f, -(v-cy)].
    rows_x = torch.stack([fJ, zeros, -d[..., 0]], dim=-1)
    rows_y = torch.stack([zeros, fJ, -d[..., 1]], dim=-1)
    rhs_x = d[..., 0] * Z - fJ * X
    rhs_y = d[..., 1] * Z - fJ * Y
    Q = torch.cat([rows_x, rows_y], dim=1) * torch.cat([w, w], dim=1)[..., None]   # (B, 2J, 3)
    r = torch.cat([rhs_x, rhs_y], dim=1) * torch.cat([w, w], dim=1)                # (B, 2J)
    with torch.autocast(device.type, enabled=False):
        A = Q.transpose(1, 2) @ Q
        b = (Q.transpose(1, 2) @ r[..., None])[..., 0]
    valid = (conf > 0).sum(dim=1) >= 2
    if not bool(valid.all()):
        bad = torch.nonzero(~valid).flatten().tolist()
        if fallback is None:
            raise ValueError(f"estimate_translation: samples {bad} have fewer than 2 keypoints with "
                             f"confidence > 0, so the translation is undetermined; pass "
                             f"fallback=(B, 3) (e.g. the network's translation) to use for them")
        eye = torch.eye(3, dtype=dtype, device=device)
        A = torch.where(valid[:, None, None], A, eye)
        b = torch.where(valid[:, None], b, torch.zeros_like(b))
    with torch.autocast(device.type, enabled=False):
        t, info = torch.linalg.solve_ex(A, b)
    # an exactly singular system may not give an exact zero pivot (LAPACK builds differ):
    # also treat an ill-conditioned one as singular
    cond = torch.linalg.cond(A)
    singular = (info != 0) | ~torch.isfinite(cond) | (cond > 1e12)
    if bool(singular.any()):  # e.g. all keypoints on one pixel
        if fallback is None:
            raise ValueError(f"estimate_translation: samples {torch.nonzero(singular).flatten().tolist()} give "
                             f"a singular system (degenerate keypoints); pass fallback=(B, 3)")
        valid = valid & ~singular
        t = torch.where(singular[:, None], torch.zeros_like(t), t)
    if fallback is not None:
        t = torch.where(valid[:, None], t, fallback.to(dtype))
    return t


def default_focal(img_h, img_w):
    """Default full-image focal length (CLIFF/Meta-HMR): the image diagonal in pixels,
    ``sqrt(W² + H²)`` (diagonal field of view 2·atan(1/2) ≈ 53°).

    Args:
        img_h, img_w: floats or tensors (broadcast together).
    Returns:
        float if both inputs are Python numbers, else a tensor.
    """
    if torch.is_tensor(img_h) or torch.is_tensor(img_w):
        ref = img_h if torch.is_tensor(img_h) else img_w
        dtype = ref.dtype if ref.is_floating_point() else torch.get_default_dtype()
        h = torch.as_tensor(img_h, device=ref.device).to(dtype)
        w = torch.as_tensor(img_w, device=ref.device).to(dtype)
        return torch.sqrt(h * h + w * w)
    return math.sqrt(float(img_w) ** 2 + float(img_h) ** 2)

"""SPIN-style crops: (center, scale) boxes, the crop affine, image/point warping, and
ImageNet normalisation.

Convention (SPIN/HMR): a box is ``center = (cx, cy)`` in original-image pixels and
``scale = side / 200``; the crop covers a square of side ``200·scale`` around the centre
and is resized to ``res × res`` (224). Continuous pixel coordinates follow OpenCV
(pixel ``i`` has its centre at coordinate ``i``), and the same 2×3 affine maps images and
points, so a keypoint at original pixel p lands at ``points_to_crop(p)`` in the crop.

The map is ``p_crop = R(−rot)·(res / (200·scale))·(p − center) + res/2``, which is SPIN's
``get_transform`` without its 1-based integer rounding. Positive ``rot`` (degrees) turns
the image content counter-clockwise on screen, like SPIN's rotation augmentation; 3D
quantities then rotate by ``Rz(−rot)`` in the camera frame.
"""
from __future__ import annotations

from typing import Sequence, Union

import cv2
import numpy as np
import torch

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "get_crop_transform",
    "invert_affine",
    "apply_affine",
    "crop_image",
    "uncrop_image",
    "points_to_crop",
    "points_from_crop",
    "bbox_from_keypoints",
    "bbox_from_xywh",
    "normalize_image",
    "denormalize_image",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Res = Union[int, Sequence[int]]
ArrayLike = Union[np.ndarray, torch.Tensor]


def _res_hw(res: Res) -> tuple[int, int]:
    if np.ndim(res) == 0:
        return int(res), int(res)
    if len(res) != 2:
        raise ValueError(f"res must be an int or (height, width), got {res!r}")
    return int(res[0]), int(res[1])


def get_crop_transform(center, scale, res: Res = 224, rot=0.0) -> np.ndarray:
    """2×3 affine mapping original-image pixels → crop pixels.

    Args:
        center: (2,) or (..., 2) box centre (cx, cy) in original pixels.
        scale: float or (...,) box side / 200.
        res: crop size: int (square) or (height, width). For a rectangular crop the box
            *height* is ``200·scale`` (CLIFF/Meta-HMR "rect"), the pixel scale is
            ``height / (200·scale)`` on both axes and the centre goes to (width/2, height/2).
        rot: float or (...,) rotation in degrees (positive = content turns
            counter-clockwise on screen), about the crop centre.
    Returns:
        (2, 3) float64, or (..., 2, 3) for batched inputs; apply as
        ``p_crop = M[:, :2] @ p + M[:, 2]``.
    """
    center = np.asarray(center, dtype=np.float64)
    if center.shape[-1:] != (2,):
        raise ValueError(f"get_crop_transform: center must be (..., 2), got {center.shape}")
    scale = np.asarray(scale, dtype=np.float64)
    if np.any(scale <= 0):
        raise ValueError(f"get_crop_transform: scale must be > 0 (box side / 200), got {scale}")
    rot = np.asarray(rot, dtype=np.float64)
    res_h, res_w = _res_hw(res)
    s = res_h / (200.0 * scale)
    a = -np.deg2rad(rot)
    cos, sin = np.cos(a) * s, np.sin(a) * s
    cx, cy = center[..., 0], center[..., 1]
    cos, sin, cx, cy = np.broadcast_arrays(cos, sin, cx, cy)
    M = np.empty(cos.shape + (2, 3), dtype=np.float64)
    M[..., 0, 0] = cos
    M[..., 0, 1] = -sin
    M[..., 0, 2] = -(cos * cx - sin * cy) + res_w / 2.0
    M[..., 1, 0] = sin
    M[..., 1, 1] = cos
    M[..., 1, 2] = -(sin * cx + cos * cy) + res_h / 2.0
    return M


def invert_affine(M: np.ndarray) -> np.ndarray:
    """Inverse of a 2×3 affine.

    Args:
        M: (..., 2, 3).
    Returns:
        (..., 2, 3) with ``apply_affine(apply_affine(p, M), invert_affine(M)) == p``.
    """
    M = np.asarray(M, dtype=np.float64)
    if M.shape[-2:] != (2, 3):
        raise ValueError(f"invert_affine: expected (..., 2, 3), got {M.shape}")
    A = M[..., :2]
    A_inv = np.linalg.inv(A)
    t = -(A_inv @ M[..., 2:3])
    return np.concatenate([A_inv, t], axis=-1)


def apply_affine(points: ArrayLike, M) -> ArrayLike:
    """Apply a 2×3 affine to points.

    Args:
        points: (..., 2) NumPy array or torch tensor (differentiable w.r.t. points).
            With a batched ``M`` of shape (B, 2, 3), points must be (B, N, 2).
        M: (2, 3) or (B, 2, 3).
    Returns:
        Same type and shape as ``points``.
    """
    M_np = np.asarray(M, dtype=np.float64)
    if M_np.shape[-2:] != (2, 3):
        raise ValueError(f"apply_affine: M must be (2, 3) or (B, 2, 3), got {M_np.shape}")
    if points.shape[-1] != 2:
        raise ValueError(f"apply_affine: points must be (..., 2), got {tuple(points.shape)}")
    if torch.is_tensor(points):
        dtype = points.dtype if points.is_floating_point() else torch.get_default_dtype()
        Mt = torch.as_tensor(M_np, dtype=dtype, device=points.device)
        p = points.to(dtype)
        single = p.ndim == 1
        if single:
            p = p[None]
        out = p @ Mt[..., :2].transpose(-1, -2) + Mt[..., None, :, 2]
        return out[0] if single else out
    p = np.asarray(points, dtype=np.float64)
    single = p.ndim == 1
    if single:
        p = p[None]
    out = p @ np.swapaxes(M_np[..., :2], -1, -2) + M_np[..., None, :, 2]
    return out[0] if single else out


def points_to_crop(points: ArrayLike, center, scale, res: Res = 224, rot=0.0) -> ArrayLike:
    """Original-image pixels → crop pixels (see :func:`get_crop_transform`).

    Args:
        points: (..., 2) (or (B, N, 2) with batched center/scale), NumPy or torch.
            Extra columns (e.g. confidence) are not accepted: pass ``kp[..., :2]``.
        center, scale, res, rot: the crop, as in :func:`get_crop_transform`.
    Returns:
        Same type/shape as ``points``.
    """
    return apply_affine(points, get_crop_transform(center, scale, res, rot))


def points_from_crop(points: ArrayLike, center, scale, res: Res = 224, rot=0.0) -> ArrayLike:
    """Crop pixels → original-image pixels (inverse of :func:`points_to_crop`).

    Args/Returns: as :func:`points_to_crop`.
    """
    return apply_affine(points, invert_affine(get_crop_transform(center, scale, res, rot)))


def _check_image(img: np.ndarray, name: str) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] > 4):
        raise ValueError(f"{name}: expected an (H, W) or (H, W, C<=4) image, got {img.shape}")
    if not (img.dtype == np.uint8 or np.issubdtype(img.dtype, np.floating)):
        raise TypeError(f"{name}: expected uint8 or float image, got dtype {img.dtype}")
    if img.dtype == np.float16:
        img = img.astype(np.float32)
    return np.ascontiguousarray(img)


def crop_image(img: np.ndarray, center, scale, res: Res = 224, rot=0.0) -> np.ndarray:
    """Cut the SPIN crop out of an image.

    One ``cv2.warpAffine`` with the affine of :func:`get_crop_transform`, bilinear
    interpolation and zero padding outside the image. This is the modern equivalent of
    SPIN's crop (PyMAF's video demo does the same); it is not bit-exact with SPIN master's
    ``scipy.misc.imresize`` (which also min-max stretched each crop to [0, 255]) and, like
    any bilinear warp, it does not low-pass filter when shrinking large boxes.

    Args:
        img: (H, W, C) or (H, W), uint8 or float (RGB for the models).
        center: (2,) box centre in original pixels.
        scale: box side / 200.
        res: crop size, int or (height, width).
        rot: degrees, see :func:`get_crop_transform`.
    Returns:
        (res_h, res_w, C) (or (res_h, res_w)) with the input dtype.
    """
    img = _check_image(img, "crop_image")
    if np.ndim(scale) != 0 or np.asarray(center).shape != (2,):
        raise ValueError("crop_image: crops one box: center must be (2,) and scale a float")
    res_h, res_w = _res_hw(res)
    M = get_crop_transform(center, scale, res, rot)
    out = cv2.warpAffine(img, M, (res_w, res_h), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if img.ndim == 3 and out.ndim == 2:  # cv2 drops a singleton channel
        out = out[..., None]
    return out


def uncrop_image(crop: np.ndarray, center, scale, img_shape: Sequence[int], rot=0.0) -> np.ndarray:
    """Paste a crop back into original-image coordinates (inverse warp, zeros elsewhere).

    Args:
        crop: (res_h, res_w[, C]) uint8 or float, e.g. a render over the crop.
        center, scale, rot: the crop's box (as used for :func:`crop_image`).
        img_shape: (H, W[, ...]) of the original image.
    Returns:
        (H, W[, C]) with the crop's dtype.
    """
    crop = _check_image(crop, "uncrop_image")
    res = (crop.shape[0], crop.shape[1])
    M_inv = invert_affine(get_crop_transform(center, scale, res, rot))
    H, W = int(img_shape[0]), int(img_shape[1])
    out = cv2.warpAffine(crop, M_inv, (W, H), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if crop.ndim == 3 and out.ndim == 2:
        out = out[..., None]
    return out


def bbox_from_keypoints(kp, conf_thresh: float = 0.2, rescale: float = 1.2,
                        center_mode: str = "bbox", aspect_ratio: float = 1.0) -> tuple[np.ndarray, float]:
    """Box (center, scale) around the confident keypoints.

    Keypoints with confidence ``> conf_thresh`` are used. The side is the larger extent
    ``max(width / aspect_ratio, height)`` times ``rescale``; ``scale = side / 200``.

    Centre choice: ``center_mode="bbox"`` (default) is the middle of the keypoints'
    min/max extent, so the box always contains every used keypoint; ``"mean"`` is the mean
    of the keypoints, as in SPIN's OpenPose demo (``rescale=1.2``), which can leave
    keypoints outside the box for lopsided poses.

    Args:
        kp: (N, 3) (x, y, conf) or (N, 2) (all used), original-image pixels.
        conf_thresh: strict confidence threshold (SPIN: 0.2).
        rescale: box enlargement (SPIN/Meta-HMR: 1.2).
        center_mode: "bbox" or "mean".
        aspect_ratio: crop width / height; 1 for SPIN's square crop, 0.75 for the
            256×192 "rect" crops of CLIFF/Meta-HMR (side = max(w·256/192, h)).
    Returns:
        (center (2,) float64, scale float).
    """
    kp = np.asarray(kp, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[1] not in (2, 3):
        raise ValueError(f"bbox_from_keypoints: kp must be (N, 2) or (N, 3), got {kp.shape}")
    if center_mode not in ("bbox", "mean"):
        raise ValueError(f"bbox_from_keypoints: center_mode must be 'bbox' or 'mean', got {center_mode!r}")
    valid = kp[:, 2] > conf_thresh if kp.shape[1] == 3 else np.ones(len(kp), bool)
    valid &= np.isfinite(kp[:, :2]).all(axis=1)
    pts = kp[valid, :2]
    if len(pts) == 0:
        raise ValueError(f"bbox_from_keypoints: no keypoint has confidence > {conf_thresh}; "
                         f"lower conf_thresh or give a box (bbox_from_xywh)")
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    side = max((hi[0] - lo[0]) / aspect_ratio, hi[1] - lo[1])
    if side <= 0:
        raise ValueError("bbox_from_keypoints: the confident keypoints span zero width and height "
                         "(need at least two distinct points); give a box instead")
    center = (lo + hi) / 2.0 if center_mode == "bbox" else pts.mean(axis=0)
    return center, float(side / 200.0 * rescale)


def bbox_from_xywh(x: float, y: float, w: float, h: float, rescale: float = 1.0) -> tuple[np.ndarray, float]:
    """Box (center, scale) from a top-left/width/height box (SPIN demo ``--bbox`` json).

    Args:
        x, y: top-left corner (pixels). w, h: size (pixels, > 0).
        rescale: enlargement (SPIN demo: 1.0, i.e. none).
    Returns:
        (center = (x + w/2, y + h/2) float64 (2,), scale = max(w, h)/200·rescale).
    """
    if w <= 0 or h <= 0:
        raise ValueError(f"bbox_from_xywh: width and height must be > 0, got w={w}, h={h}")
    return np.array([x + w / 2.0, y + h / 2.0], dtype=np.float64), float(max(w, h) / 200.0 * rescale)


def normalize_image(img: ArrayLike) -> torch.Tensor:
    """RGB image(s) → network input: ``(img/255 − mean)/std`` with ImageNet statistics.

    Args:
        img: (H, W, 3) or (B, H, W, 3), uint8, or float in [0, 255] (SPIN's augmented
            images); NumPy or torch.
    Returns:
        float32 tensor (3, H, W) or (B, 3, H, W).
    """
    t = torch.as_tensor(np.ascontiguousarray(img)) if not torch.is_tensor(img) else img
    if t.ndim not in (3, 4) or t.shape[-1] != 3:
        raise ValueError(f"normalize_image: expected (H, W, 3) or (B, H, W, 3) RGB, got {tuple(t.shape)}")
    if t.dtype != torch.uint8 and not t.is_floating_point():
        raise TypeError(f"normalize_image: expected uint8 or float in [0, 255], got {t.dtype}")
    t = t.to(torch.float32) / 255.0
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=t.device)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=t.device)
    t = (t - mean) / std
    return t.movedim(-1, -3).contiguous()


def denormalize_image(t: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`normalize_image`, for display.

    Args:
        t: (3, H, W) or (B, 3, H, W) normalised tensor.
    Returns:
        uint8 NumPy (H, W, 3) or (B, H, W, 3), rounded and clipped to [0, 255].
    """
    if not torch.is_tensor(t):
        t = torch.as_tensor(t)
    if t.ndim not in (3, 4) or t.shape[-3] != 3:
        raise ValueError(f"denormalize_image: expected (3, H, W) or (B, 3, H, W), got {tuple(t.shape)}")
    x = t.detach().to("cpu", torch.float32).movedim(-3, -1)
    x = x * torch.tensor(IMAGENET_STD) + torch.tensor(IMAGENET_MEAN)
    return (x * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()

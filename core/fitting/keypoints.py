"""2D keypoint inputs for fitting: any supported layout → SPIN-49 with confidences, and the
checks that turn bad input into a clear error or a documented, flagged result.

Layouts (:func:`to_spin49`, chosen by the number of joints or ``layout=``):

* ``"spin49"`` (49, 3): used as is.
* ``"body25"`` (25, 3) OpenPose BODY_25: into the OpenPose slots 0–24 and, with
  ``fill_gt=True``, also into the GT slots at the same anatomical points
  (:func:`core.detect.body25_to_spin49`).
* ``"coco17"`` (17, 3) COCO keypoints: into the GT slots 25–48 through SPIN's
  ``J24_TO_JCOCO`` (where SPIN keeps dataset keypoints); the OpenPose slots stay empty
  unless ``fill_openpose=True``.
* ``"mediapipe33"`` (33, 3) BlazePose landmarks in pixels: via BODY_25.
* a :class:`core.detect.DetectedPerson` (MediaPipe or OpenPose detection): its ``spin49``.

Coordinates are pixels of whatever image the caller fits in (the 224 crop for SMPLify);
:func:`prepare_keypoints` checks them against that crop.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from core.body.joint_names import BODY25_TO_COCO17, J24_TO_JCOCO

__all__ = ["LAYOUTS", "coco17_to_spin49", "to_spin49", "PreparedKeypoints", "prepare_keypoints"]

LAYOUTS = {49: "spin49", 25: "body25", 17: "coco17", 33: "mediapipe33"}


def coco17_to_spin49(coco17: np.ndarray, fill_openpose: bool = False) -> np.ndarray:
    """COCO-17 keypoints → SPIN-49.

    Args:
        coco17: (..., 17, 3) ``(x, y, conf)``; non-finite or conf ≤ 0 → missing.
        fill_openpose: also write the OpenPose slots (0–24) with the same points.
    Returns:
        (..., 49, 3); missing joints are zeros.
    """
    from core.detect.keypoint_maps import sanitize_keypoints

    kp = np.asarray(coco17, dtype=np.float64)
    if kp.ndim < 2 or kp.shape[-2:] != (17, 3):
        raise ValueError(f"coco17_to_spin49: expected (..., 17, 3), got {kp.shape}")
    kp = sanitize_keypoints(kp)
    out = np.zeros(kp.shape[:-2] + (49, 3))
    for coco_idx, j24 in enumerate(J24_TO_JCOCO):   # coco[k] = J24[J24_TO_JCOCO[k]]
        out[..., 25 + j24, :] = kp[..., coco_idx, :]
    if fill_openpose:
        for coco_idx, b25 in enumerate(BODY25_TO_COCO17):
            out[..., b25, :] = kp[..., coco_idx, :]
    return out


def to_spin49(keypoints, layout: str | None = None, fill_gt: bool = True) -> np.ndarray:
    """Any supported keypoint input → (49, 3) SPIN-49 float64 (see module docstring).

    Args:
        keypoints: (J, 3) array (J ∈ {49, 25, 17, 33}) or a DetectedPerson.
        layout: force a layout name; default from J.
        fill_gt: BODY_25/MediaPipe: also fill the GT slots.
    """
    if hasattr(keypoints, "spin49") and hasattr(keypoints, "body25"):
        return np.asarray(keypoints.spin49, dtype=np.float64).copy()
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[1] not in (2, 3):
        raise ValueError(f"keypoints: expected (J, 3) = (x, y, confidence) with J in {sorted(LAYOUTS)}, "
                         f"got shape {kp.shape}")
    if kp.shape[1] == 2:
        raise ValueError("keypoints: got (J, 2) without confidences; append a column of 1 for visible "
                         "joints and 0 for missing ones")
    layout = layout or LAYOUTS.get(kp.shape[0])
    if layout is None:
        raise ValueError(f"keypoints: {kp.shape[0]} joints is no known layout; supported: "
                         + ", ".join(f"{n} ({k} joints)" for k, n in LAYOUTS.items()))
    if layout == "spin49":
        return kp.copy()
    if layout == "body25":
        from core.detect.keypoint_maps import body25_to_spin49
        return body25_to_spin49(kp, fill_gt=fill_gt)
    if layout == "coco17":
        return coco17_to_spin49(kp)
    if layout == "mediapipe33":
        from core.detect.keypoint_maps import body25_to_spin49, mediapipe33_to_body25
        return body25_to_spin49(mediapipe33_to_body25(kp), fill_gt=fill_gt)
    raise ValueError(f"unknown keypoint layout {layout!r}; choose from {sorted(LAYOUTS.values())}")


@dataclass
class PreparedKeypoints:
    """Checked keypoints for a batch.

    keypoints: (B, 49, 3) float tensor, crop pixels + confidence; invalid joints zeroed.
    fittable: (B,) bool — enough visible joints to fit.
    warnings: per sample, a list of messages (empty when all was well).
    """

    keypoints: torch.Tensor
    fittable: torch.Tensor
    warnings: list[list[str]] = field(default_factory=list)


def prepare_keypoints(keypoints, img_res: int = 224, min_visible: int = 2,
                      outside_margin: float = 1.0, dtype=torch.float32, device=None) -> PreparedKeypoints:
    """Validate and clean (B, 49, 3) (or (49, 3)) crop-pixel keypoints for fitting.

    * NaN/inf coordinates or confidences → that joint is dropped (conf 0), with a warning.
    * negative confidences → 0.
    * a joint farther than ``outside_margin · img_res`` outside the crop → dropped, with a
      warning (a crop cuts limbs, so joints just outside are kept). If *every* visible
      joint of a sample is that far out, the coordinates are almost certainly full-image
      pixels: ValueError naming the fix.
    * fewer than ``min_visible`` distinct visible joints → the sample is marked not
      fittable (the fitter returns its initialisation and says so).

    Raises:
        ValueError: wrong shape, or keypoints in the wrong coordinate frame (see above).
    """
    kp = torch.as_tensor(np.asarray(keypoints.detach().cpu() if torch.is_tensor(keypoints) else keypoints,
                                    dtype=np.float64))
    if kp.ndim == 2:
        kp = kp[None]
    if kp.ndim != 3 or kp.shape[1:] != (49, 3):
        raise ValueError(f"keypoints: expected (B, 49, 3) or (49, 3) SPIN-49 (x, y, conf) in crop pixels, got "
                         f"{tuple(kp.shape)}; convert other layouts with core.fitting.keypoints.to_spin49")
    kp = kp.clone()
    B = kp.shape[0]
    warnings_: list[list[str]] = [[] for _ in range(B)]
    finite = torch.isfinite(kp).all(-1)
    for b in range(B):
        nonfinite = (~finite[b]).nonzero().flatten().tolist()
        if nonfinite:
            warnings_[b].append(f"{len(nonfinite)} keypoint(s) with NaN/inf values ignored (joints {nonfinite})")
    kp[~finite] = 0.0
    kp[..., 2] = kp[..., 2].clamp(min=0.0)
    visible = kp[..., 2] > 0
    lo, hi = -outside_margin * img_res, (1.0 + outside_margin) * img_res
    far = visible & ((kp[..., :2] < lo) | (kp[..., :2] > hi)).any(-1)
    for b in range(B):
        if visible[b].any() and bool(far[b][visible[b]].all()):
            xy = kp[b, visible[b], :2]
            raise ValueError(
                f"keypoints of sample {b} all lie far outside the {img_res}×{img_res} crop (x in "
                f"[{xy[:, 0].min():.0f}, {xy[:, 0].max():.0f}], y in [{xy[:, 1].min():.0f}, {xy[:, 1].max():.0f}]); "
                f"they look like full-image pixels — map them into the crop with core.geometry.points_to_crop "
                f"or core.detect.crop_person")
        n_far = int(far[b].sum())
        if n_far:
            warnings_[b].append(f"{n_far} keypoint(s) more than {outside_margin:g}×{img_res} px outside the crop "
                                f"ignored (joints {far[b].nonzero().flatten().tolist()})")
    kp[far] = 0.0
    visible = kp[..., 2] > 0
    fittable = torch.zeros(B, dtype=torch.bool)
    for b in range(B):
        pts = kp[b, visible[b], :2]
        n_distinct = len(torch.unique(torch.round(pts * 10), dim=0)) if len(pts) else 0
        if n_distinct < min_visible:
            warnings_[b].append(f"only {n_distinct} distinct visible keypoint(s) (< {min_visible}): too few to fit; "
                                f"the result is the initialisation, unchanged")
        else:
            fittable[b] = True
    return PreparedKeypoints(kp.to(dtype=dtype, device=device), fittable.to(device), warnings_)

"""SPIN crops of detected people: `PersonCrop` and the two box rules of SPIN's demo.

The crop geometry (affine, warping, box rules) lives in :mod:`core.geometry.crop`; this
module only ties it to detections:

* from keypoints (SPIN demo with an OpenPose file): keypoints with conf > 0.2,
  ``center`` = their mean, ``scale`` = max extent / 200 × 1.2. As in SPIN's demo the
  OpenPose BODY_25 part (SPIN-49 indices 0–24) is used; the 24 GT joints only when the
  BODY_25 part has no confident joint.
* from a box ``[x, y, w, h]`` (SPIN demo ``--bbox``): ``center`` = box centre,
  ``scale`` = max(w, h) / 200 (no enlargement by default).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from core.geometry.crop import (
    bbox_from_keypoints,
    bbox_from_xywh,
    crop_image,
    points_to_crop,
)

__all__ = ["PersonCrop", "crop_at", "crop_from_keypoints", "crop_from_box", "crop_person"]


@dataclass
class PersonCrop:
    """A square SPIN crop of one person.

    Attributes:
        center: (2,) crop centre in original-image pixels.
        scale: crop side / 200 (original pixels).
        box: (4,) xyxy of the cropped square in original-image pixels (may extend past the
            image; the outside is zero-padded in ``image``).
        image: (res, res, 3) uint8 RGB crop.
        keypoints: (49, 3) SPIN-49 ``(x, y, conf)`` in crop pixels; missing joints zeros.
        keypoints_image: (49, 3) the same keypoints in original-image pixels.
        res: crop side in pixels (224).
    """

    center: np.ndarray
    scale: float
    box: np.ndarray
    image: np.ndarray
    keypoints: np.ndarray
    keypoints_image: np.ndarray
    res: int = 224


def crop_at(image: np.ndarray, center, scale: float, keypoints49=None, res: int = 224
            ) -> PersonCrop:
    """Crop ``image`` at a given (center, scale) and carry keypoints into the crop.

    Args:
        image: (H, W, 3) uint8 RGB.
        center: (2,) pixels. scale: side / 200.
        keypoints49: (49, 3) SPIN-49 in image pixels, or None (all zeros).
        res: crop side.
    Returns:
        PersonCrop.
    """
    center = np.asarray(center, dtype=np.float64).reshape(2)
    scale = float(scale)
    if keypoints49 is None:
        kp_img = np.zeros((49, 3), dtype=np.float64)
    else:
        kp_img = np.asarray(keypoints49, dtype=np.float64)
        if kp_img.shape != (49, 3):
            raise ValueError(f"keypoints49 must be (49, 3) SPIN-49 (x, y, conf), got {kp_img.shape}")
        kp_img = kp_img.copy()
    kp_crop = np.zeros_like(kp_img)
    valid = kp_img[:, 2] > 0
    if valid.any():
        kp_crop[valid, :2] = points_to_crop(kp_img[valid, :2], center, scale, res)
        kp_crop[valid, 2] = kp_img[valid, 2]
    half = 100.0 * scale
    box = np.array([center[0] - half, center[1] - half, center[0] + half, center[1] + half])
    return PersonCrop(center=center, scale=scale, box=box,
                      image=crop_image(image, center, scale, res),
                      keypoints=kp_crop, keypoints_image=kp_img, res=res)


def crop_from_keypoints(image: np.ndarray, keypoints49, conf_thresh: float = 0.2,
                        rescale: float = 1.2, center_mode: str = "mean", res: int = 224
                        ) -> PersonCrop:
    """SPIN's crop rule from keypoints (see module docstring).

    Args:
        image: (H, W, 3) uint8 RGB.
        keypoints49: (49, 3) SPIN-49 in image pixels.
        conf_thresh: strict keypoint confidence threshold (SPIN: 0.2).
        rescale: enlargement of the max extent (SPIN: 1.2).
        center_mode: "mean" (SPIN) or "bbox" (middle of the extent; keeps every keypoint
            inside the crop).
        res: crop side.
    Raises:
        ValueError: no keypoint above ``conf_thresh``.
    """
    kp = np.asarray(keypoints49, dtype=np.float64)
    if kp.shape != (49, 3):
        raise ValueError(f"keypoints49 must be (49, 3) SPIN-49 (x, y, conf), got {kp.shape}")
    used = kp[:25] if (kp[:25, 2] > conf_thresh).sum() >= 2 else kp
    center, scale = bbox_from_keypoints(used, conf_thresh=conf_thresh, rescale=rescale,
                                        center_mode=center_mode)
    return crop_at(image, center, scale, kp, res)


def crop_from_box(image: np.ndarray, box_xywh: Sequence[float], keypoints49=None,
                  rescale: float = 1.0, res: int = 224) -> PersonCrop:
    """SPIN's crop rule from a ``[x_top_left, y_top_left, w, h]`` box.

    Args:
        image: (H, W, 3) uint8 RGB.
        box_xywh: (4,) box.
        keypoints49: optional (49, 3) to carry into the crop.
        rescale: enlargement (SPIN demo: 1.0).
        res: crop side.
    """
    x, y, w, h = (float(v) for v in np.asarray(box_xywh, dtype=np.float64).reshape(4))
    center, scale = bbox_from_xywh(x, y, w, h, rescale=rescale)
    return crop_at(image, center, scale, keypoints49, res)


def crop_person(image: np.ndarray, person, mode: str = "keypoints", res: int = 224,
                **kwargs) -> PersonCrop:
    """Crop a :class:`~core.detect.person.DetectedPerson`.

    Args:
        image: (H, W, 3) uint8 RGB (the image the person was detected in).
        person: DetectedPerson.
        mode: "keypoints" (SPIN's keypoint rule on ``person.spin49``; falls back to the box
            when fewer than two keypoints are confident) or "box" (``person.box``, with
            ``rescale`` default 1.2 here since detector boxes are tight).
        res: crop side.
        **kwargs: passed to crop_from_keypoints / crop_from_box.
    """
    if mode not in ("keypoints", "box"):
        raise ValueError(f"mode must be 'keypoints' or 'box', got {mode!r}")
    if mode == "keypoints":
        thr = kwargs.get("conf_thresh", 0.2)
        if (np.asarray(person.spin49)[:, 2] > thr).sum() >= 2:
            return crop_from_keypoints(image, person.spin49, res=res, **kwargs)
        kwargs = {k: v for k, v in kwargs.items() if k == "rescale"}
    kwargs.setdefault("rescale", 1.2)
    if person.area <= 0:
        raise ValueError("person has an empty box and no confident keypoints; cannot crop")
    return crop_from_box(image, person.box_xywh, keypoints49=person.spin49, res=res, **kwargs)

"""`DetectedPerson`: one person found in an image, in every keypoint layout the library uses,
plus small helpers on boxes (xyxy, full-image pixels)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["DetectedPerson", "box_from_keypoints", "box_iou", "sort_by_area"]


@dataclass
class DetectedPerson:
    """One person, coordinates in full-image pixels (x right, y down).

    Attributes:
        box: (4,) ``(x0, y0, x1, y1)`` person box.
        score: person confidence in [0, 1] (MediaPipe: mean landmark confidence; OpenPose:
            mean confidence of the detected joints).
        body25: (25, 3) OpenPose BODY_25 ``(x, y, conf)``; missing joints are zeros.
        spin49: (49, 3) SPIN's 49-joint layout (BODY_25 + 24 GT joints).
        coco17: (17, 3) COCO-17.
        source: "mediapipe" or "openpose".
        landmarks: (33, 3) MediaPipe landmarks ``(x, y, conf)`` or None (OpenPose input).
            conf = MediaPipe visibility, set to 0 where presence < the detector's threshold
            or the landmark lies outside the image.
        visibility: (33,) raw MediaPipe visibility, or None.
        presence: (33,) raw MediaPipe presence, or None.
        world_landmarks: (33, 3) MediaPipe metric landmarks (m, origin between the hips),
            or None.
        mask: (H, W) float32 person segmentation in [0, 1], or None.
    """

    box: np.ndarray
    score: float
    body25: np.ndarray
    spin49: np.ndarray
    coco17: np.ndarray
    source: str
    landmarks: Optional[np.ndarray] = None
    visibility: Optional[np.ndarray] = None
    presence: Optional[np.ndarray] = None
    world_landmarks: Optional[np.ndarray] = None
    mask: Optional[np.ndarray] = None

    @property
    def area(self) -> float:
        """Box area in pixels²."""
        x0, y0, x1, y1 = self.box
        return float(max(x1 - x0, 0.0) * max(y1 - y0, 0.0))

    @property
    def box_xywh(self) -> np.ndarray:
        """(4,) ``(x_top_left, y_top_left, w, h)`` — the form SPIN's demo reads."""
        x0, y0, x1, y1 = self.box
        return np.array([x0, y0, x1 - x0, y1 - y0], dtype=np.float64)


def box_from_keypoints(kp: np.ndarray, min_conf: float = 0.0) -> Optional[np.ndarray]:
    """Tight box around keypoints with conf > min_conf.

    Args:
        kp: (J, 3) ``(x, y, conf)``.
        min_conf: confidence threshold (strict).
    Returns:
        (4,) xyxy, or None when no keypoint passes.
    """
    kp = np.asarray(kp, dtype=np.float64)
    ok = (kp[:, 2] > min_conf) & np.isfinite(kp).all(axis=1)
    if not ok.any():
        return None
    xy = kp[ok, :2]
    return np.concatenate([xy.min(axis=0), xy.max(axis=0)])


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two xyxy boxes (0 for empty boxes)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def sort_by_area(people: list[DetectedPerson]) -> list[DetectedPerson]:
    """People sorted by box area, largest first (stable for equal areas)."""
    return sorted(people, key=lambda p: -p.area)

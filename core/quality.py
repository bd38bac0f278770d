"""A verdict on a method's result — good, doubtful or failed — with the reasons, from what
its :class:`~core.trace.Trace` holds.

A low loss is not a right fit, and a regressor always returns *a* mesh; this module checks
the things a researcher would check before trusting a result:

* the mesh: finite vertices, in front of the camera;
* the 2D keypoint error of the final step (``keypoints_2d_px``), in pixels of a 224-pixel
  crop (errors on other crop sizes are rescaled): ≤ :data:`GOOD_PX` good, ≤
  :data:`FAILED_PX` doubtful, above failed; larger than the crop is always failed;
* the target keypoints: confidences outside [0, 1], confident keypoints far outside the
  crop (keypoints of another person or of the wrong photo), and limb joints that are not
  visible (the body is cut by the frame or hidden: those parts are guessed).

The verdict is stored in ``trace.meta["quality"]`` (:meth:`QualityVerdict.to_meta`) and
shown by the front ends next to the result.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.trace import Trace

__all__ = ["QualityVerdict", "assess_trace", "GOOD_PX", "FAILED_PX", "LEVELS"]

GOOD_PX = 10.0
"""Mean 2D keypoint error (px on a 224 crop) up to which a result is called good."""
FAILED_PX = 30.0
"""Mean 2D keypoint error (px on a 224 crop) above which a result is called failed."""
LEVELS = ("good", "doubtful", "failed")

_REFERENCE_SIDE = 224.0
_CONFIDENT = 0.3
# SPIN-49 layout, OpenPose BODY_25 part: shoulders, elbows, wrists, hips, knees, ankles
_LIMB_JOINTS = {2: "right shoulder", 3: "right elbow", 4: "right wrist", 5: "left shoulder", 6: "left elbow",
                7: "left wrist", 9: "right hip", 10: "right knee", 11: "right ankle", 12: "left hip",
                13: "left knee", 14: "left ankle"}


@dataclass(frozen=True)
class QualityVerdict:
    """Attributes:
        level: ``"good"``, ``"doubtful"`` or ``"failed"``.
        reasons: one sentence per problem found (empty when good).
        keypoint_error_px: final mean 2D keypoint error rescaled to a 224 crop, or None.
    """

    level: str
    reasons: tuple[str, ...] = ()
    keypoint_error_px: float | None = None

    def to_meta(self) -> dict:
        return {"level": self.level, "reasons": list(self.reasons), "keypoint_error_px": self.keypoint_error_px}

    @classmethod
    def from_meta(cls, meta: dict | None) -> "QualityVerdict | None":
        """The verdict stored in a trace's meta, or None (older traces)."""
        if not isinstance(meta, dict) or meta.get("level") not in LEVELS:
            return None
        err = meta.get("keypoint_error_px")
        return cls(meta["level"], tuple(str(r) for r in meta.get("reasons", ())),
                   float(err) if isinstance(err, (int, float)) else None)

    @property
    def summary(self) -> str:
        """One line for a status bar, e.g. ``"doubtful: 2D keypoint error 14.2 px …"``."""
        return self.level if not self.reasons else f"{self.level}: " + "; ".join(self.reasons)


def _crop_side(trace: Trace) -> float:
    if trace.crop is not None:
        return float(max(trace.crop.shape[:2]))
    res = trace.camera.get("img_res")
    return float(np.asarray(res).reshape(-1)[0]) if res is not None else _REFERENCE_SIDE


def assess_trace(trace: Trace) -> QualityVerdict:
    """Judge the final step of ``trace`` (see module docstring)."""
    failed: list[str] = []
    doubtful: list[str] = []
    side = _crop_side(trace)
    final = trace.final
    v = final.vertices
    if v is not None:
        if not np.isfinite(v).all():
            failed.append("the mesh has invalid (non-finite) vertices")
        elif np.median(v[:, 2]) <= 0:
            failed.append("the mesh is behind the camera")
    err = final.losses.get("keypoints_2d_px")
    err224 = None
    if err is not None and np.isfinite(err):
        err224 = float(err) * _REFERENCE_SIDE / side
        if err > side:
            failed.append(f"the 2D keypoint error ({err:.0f} px) is larger than the crop ({side:.0f} px)")
        elif err224 > FAILED_PX:
            failed.append(f"the mesh does not match the keypoints (2D error {err224:.1f} px on a 224 crop; "
                          f"good ≤ {GOOD_PX:.0f})")
        elif err224 > GOOD_PX:
            doubtful.append(f"2D keypoint error {err224:.1f} px on a 224 crop (good ≤ {GOOD_PX:.0f})")
    elif err is not None:
        failed.append("the 2D keypoint error is not a number")
    kp = trace.target_keypoints
    if kp is not None and len(kp):
        conf = kp[:, 2]
        if (conf > 1.0 + 1e-3).any() or (conf < 0).any():
            doubtful.append(f"the target keypoints have implausible confidences (up to {conf.max():g}; "
                            f"expected 0–1)")
        sure = conf > _CONFIDENT
        outside = sure & ((kp[:, :2] < -0.25 * side) | (kp[:, :2] > 1.25 * side)).any(axis=1)
        if outside.any():
            doubtful.append(f"{int(outside.sum())} confident keypoints lie far outside the crop (another "
                            f"person's, or a keypoint file of another photo?)")
        limbs = [j for j in _LIMB_JOINTS if j < len(kp)]
        missing = [_LIMB_JOINTS[j] for j in limbs if not conf[j] > _CONFIDENT]
        if len(limbs) == len(_LIMB_JOINTS) and len(missing) >= 3:
            doubtful.append(f"{len(missing)} of 12 limb joints are not visible ({', '.join(missing[:4])}"
                            f"{'…' if len(missing) > 4 else ''}): the body is cut by the frame or hidden, "
                            f"those parts are guessed")
    level = "failed" if failed else "doubtful" if doubtful else "good"
    return QualityVerdict(level, tuple(failed + doubtful), err224)

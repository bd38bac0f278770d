"""Read OpenPose's per-image JSON output (``--write_json``).

The file holds ``{"version": ..., "people": [{"pose_keypoints_2d": [x0, y0, c0, x1, ...]},
...]}``. A flat list of 25×3 = 75 values is BODY_25; 18×3 = 54 values is OpenPose's COCO-18
model, mapped to BODY_25 (MidHip = mid(hips), feet missing). Undetected joints are
``(0, 0, 0)`` in OpenPose's files and stay so here.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Union

import numpy as np

from core.detect.keypoint_maps import body25_to_spin49, coco18_to_body25, sanitize_keypoints

__all__ = ["OpenPoseJSONError", "load_openpose_json", "read_openpose_body25",
           "read_openpose_spin49"]

JsonSource = Union[str, os.PathLike, Mapping[str, Any]]


class OpenPoseJSONError(ValueError):
    """An OpenPose JSON file that cannot be read as keypoints."""


def load_openpose_json(source: JsonSource) -> dict:
    """Load the JSON object from a path (str / PathLike) or pass a dict through.

    Raises:
        OpenPoseJSONError: missing file, not JSON, or not a JSON object.
    """
    if isinstance(source, Mapping):
        return dict(source)
    if not isinstance(source, (str, os.PathLike)):
        raise OpenPoseJSONError(
            f"expected a path to an OpenPose .json file or its parsed dict, got "
            f"{type(source).__name__}")
    path = Path(source)
    if not path.is_file():
        raise OpenPoseJSONError(f"OpenPose JSON file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise OpenPoseJSONError(
            f"{path} is not a valid JSON file ({err}); expected OpenPose --write_json output"
        ) from err
    if not isinstance(data, dict):
        raise OpenPoseJSONError(
            f"{path}: top level is a {type(data).__name__}, expected an object with a "
            f"'people' list")
    return data


MAX_CONFIDENCE = 1.0 + 1e-3
"""OpenPose confidences lie in [0, 1] (a little rounding slack)."""
MAX_COORDINATE = 1e6
"""Keypoint coordinates (pixels) beyond this magnitude cannot belong to a photo."""


def _check_plausible(kp: np.ndarray, person: int) -> None:
    """Refuse values OpenPose cannot write: confidences outside [0, 1] (a fit would weight
    those joints hundreds of times over the others) and absurd coordinates."""
    finite = np.isfinite(kp).all(axis=1)
    conf = kp[finite, 2]
    bad = np.flatnonzero(finite)[(conf < 0) | (conf > MAX_CONFIDENCE)]
    if bad.size:
        j = int(bad[0])
        raise OpenPoseJSONError(
            f"people[{person}] joint {j} has confidence {kp[j, 2]:g}; OpenPose confidences lie between 0 and 1. "
            f"Is the third value of each joint really a confidence? Re-export the file with openpose --write_json")
    far = np.flatnonzero(finite & (np.abs(kp[:, :2]) > MAX_COORDINATE).any(axis=1))
    if far.size:
        j = int(far[0])
        raise OpenPoseJSONError(
            f"people[{person}] joint {j} is at ({kp[j, 0]:g}, {kp[j, 1]:g}) pixels, far outside any photo; "
            f"the file does not hold pixel coordinates of this photo")


def read_openpose_body25(source: JsonSource) -> np.ndarray:
    """Keypoints of every person in an OpenPose JSON file, as BODY_25.

    Args:
        source: path to the JSON file or its parsed dict.
    Returns:
        (P, 25, 3) float64 ``(x, y, conf)`` in image pixels; P = 0 when nobody was detected.
    Raises:
        OpenPoseJSONError: malformed file (missing 'people' or 'pose_keypoints_2d', non-numeric
            values, a length other than 75 (BODY_25) or 54 (COCO-18)), or values OpenPose
            cannot write (confidences outside [0, 1], coordinates beyond ±1e6 px).
    """
    data = load_openpose_json(source)
    if "people" not in data:
        raise OpenPoseJSONError(
            "OpenPose JSON has no 'people' key; expected {'people': [{'pose_keypoints_2d': "
            "[...]}, ...]} as written by openpose --write_json")
    people = data["people"]
    if not isinstance(people, list):
        raise OpenPoseJSONError(f"'people' must be a list, got {type(people).__name__}")
    out = []
    for i, person in enumerate(people):
        if not isinstance(person, Mapping) or "pose_keypoints_2d" not in person:
            raise OpenPoseJSONError(f"people[{i}] has no 'pose_keypoints_2d' list")
        try:
            flat = np.asarray(person["pose_keypoints_2d"], dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise OpenPoseJSONError(
                f"people[{i}].pose_keypoints_2d is not a flat list of numbers ({err})") from err
        if flat.ndim != 1:
            raise OpenPoseJSONError(
                f"people[{i}].pose_keypoints_2d must be a flat list, got shape {flat.shape}")
        if flat.size not in (75, 54):
            raise OpenPoseJSONError(
                f"people[{i}].pose_keypoints_2d has {flat.size} values; expected 75 (BODY_25, "
                f"25 joints × (x, y, c)) or 54 (COCO-18, 18 × 3)")
        _check_plausible(flat.reshape(-1, 3), i)
        if flat.size == 75:
            out.append(sanitize_keypoints(flat.reshape(25, 3)))
        else:
            out.append(coco18_to_body25(flat.reshape(18, 3)))
    if not out:
        return np.zeros((0, 25, 3), dtype=np.float64)
    return np.stack(out)


def read_openpose_spin49(source: JsonSource, fill_gt: bool = True) -> np.ndarray:
    """Like :func:`read_openpose_body25` but in SPIN's 49-joint layout.

    Args:
        source: path or parsed dict.
        fill_gt: see :func:`core.detect.keypoint_maps.body25_to_spin49`.
    Returns:
        (P, 49, 3).
    """
    b25 = read_openpose_body25(source)
    return body25_to_spin49(b25, fill_gt=fill_gt)

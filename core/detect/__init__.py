"""Person and 2D keypoint detection: image → people (box, keypoints) → SPIN crops.

Simple API::

    from core.detect import detect_people, people_from_openpose, crop_person
    people = detect_people(image_rgb)            # MediaPipe BlazePose, largest first
    people = people_from_openpose("im_keypoints.json", image_rgb.shape)
    crop = crop_person(image_rgb, people[0])     # SPIN 224 crop + keypoints in crop pixels

``detect_people`` needs mediapipe (the ``detect`` extra) and raises
:class:`MediapipeUnavailable` with install instructions without it; the OpenPose path and
the layout maps are plain numpy.
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from core.detect.crops import PersonCrop, crop_at, crop_from_box, crop_from_keypoints, crop_person
from core.detect.keypoint_maps import (
    body25_to_spin49,
    coco18_to_body25,
    mediapipe33_to_body25,
    mediapipe33_to_coco17,
    spin49_to_coco17,
)
from core.detect.mediapipe_pose import (
    MediapipePoseDetector,
    MediapipeUnavailable,
    detection_windows,
    to_rgb_uint8,
)
from core.detect.openpose_json import (
    OpenPoseJSONError,
    JsonSource,
    read_openpose_body25,
)
from core.detect.person import DetectedPerson, box_from_keypoints, sort_by_area

__all__ = [
    "DetectedPerson", "PersonCrop", "MediapipePoseDetector", "MediapipeUnavailable",
    "OpenPoseJSONError",
    "detect_people", "people_from_openpose",
    "crop_person", "crop_at", "crop_from_box", "crop_from_keypoints",
    "mediapipe33_to_body25", "mediapipe33_to_coco17", "body25_to_spin49",
    "spin49_to_coco17", "coco18_to_body25", "read_openpose_body25",
    "to_rgb_uint8", "detection_windows",
]


@functools.lru_cache(maxsize=2)
def _shared_detector(max_people: int, min_confidence: float, with_masks: bool
                     ) -> MediapipePoseDetector:
    return MediapipePoseDetector(max_people=max_people, min_confidence=min_confidence,
                                 with_masks=with_masks)


def detect_people(image_rgb, max_people: int = 4, min_confidence: float = 0.5,
                  with_masks: bool = True) -> list[DetectedPerson]:
    """Detect people and their 2D keypoints with MediaPipe (model loaded once per setting).

    Args:
        image_rgb: (H, W, 3) uint8 RGB; gray/RGBA/uint16/float are converted
            (:func:`to_rgb_uint8`).
        max_people: at most this many people (the largest boxes are kept).
        min_confidence: MediaPipe's person detection / pose presence threshold.
        with_masks: include per-person segmentation masks (H, W).
    Returns:
        list of DetectedPerson sorted by box area, largest first; [] when nobody is found.
    Raises:
        MediapipeUnavailable: mediapipe is not installed.
    """
    return _shared_detector(int(max_people), float(min_confidence), bool(with_masks)
                            ).detect(image_rgb)


def people_from_openpose(json_path_or_dict: JsonSource, image_shape: Sequence[int],
                         fill_gt: bool = True) -> list[DetectedPerson]:
    """People from an OpenPose JSON file, in the same form as :func:`detect_people`.

    Args:
        json_path_or_dict: path to OpenPose ``--write_json`` output, or its parsed dict.
        image_shape: (H, W[, C]) of the image the keypoints belong to.
        fill_gt: fill SPIN-49's GT joints from BODY_25 (see body25_to_spin49).
    Returns:
        list of DetectedPerson (source "openpose"), largest box first; people without
        any detected joint are dropped.
    Raises:
        OpenPoseJSONError: malformed file.
        ValueError: keypoints lie outside an image of ``image_shape`` (wrong image, or the
            JSON was computed on a resized copy).
    """
    if len(image_shape) < 2 or image_shape[0] <= 0 or image_shape[1] <= 0:
        raise ValueError(f"image_shape must be (H, W[, C]) with H, W > 0, got {image_shape}")
    H, W = int(image_shape[0]), int(image_shape[1])
    people = []
    for i, b25 in enumerate(read_openpose_body25(json_path_or_dict)):
        valid = b25[:, 2] > 0
        if not valid.any():
            continue
        xy = b25[valid, :2]
        tol = 0.02 * max(H, W) + 1.0
        if (xy[:, 0] < -tol).any() or (xy[:, 1] < -tol).any() or \
                (xy[:, 0] > W + tol).any() or (xy[:, 1] > H + tol).any():
            raise ValueError(
                f"OpenPose person {i} has keypoints outside an image of size {W}×{H} "
                f"(x in [{xy[:, 0].min():.1f}, {xy[:, 0].max():.1f}], y in "
                f"[{xy[:, 1].min():.1f}, {xy[:, 1].max():.1f}]); pass the shape of the image "
                f"OpenPose ran on")
        box = np.clip(box_from_keypoints(b25), 0.0, [W, H, W, H])
        spin49 = body25_to_spin49(b25, fill_gt=fill_gt)
        people.append(DetectedPerson(
            box=box, score=float(b25[valid, 2].mean()), body25=b25, spin49=spin49,
            coco17=spin49_to_coco17(spin49), source="openpose"))
    return sort_by_area(people)

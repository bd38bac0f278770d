"""Multi-person 2D pose detection with MediaPipe's BlazePose (Tasks API), fully offline.

How the model is obtained
-------------------------
The mediapipe 0.10.21 wheel ships only the *legacy* solution's models
(``modules/pose_detection/pose_detection.tflite``, ``modules/pose_landmark/
pose_landmark_full.tflite``); the Tasks API's ``.task`` bundles are downloads. The Tasks
``PoseLandmarker`` (which supports several people through ``num_poses``) refuses those
files only because they lack input-normalisation metadata. So, in memory and once per
process, we add that metadata with mediapipe's own ``metadata_writers`` — detector input
in [-1, 1] (mean 127.5, std 127.5), landmark input in [0, 1] (mean 0, std 255), the ranges
of the legacy graphs — zip the two models into a ``.task`` bundle and hand the bytes to
``PoseLandmarker`` (``model_asset_buffer``). Nothing is downloaded or written to disk.
Landmarks agree with the legacy ``mp.solutions.pose`` to within ~1–4 px on test photos.
A user-supplied official bundle (e.g. ``pose_landmarker_heavy.task``) can be passed as
``model_path`` instead.

Several people
--------------
``PoseLandmarker(num_poses=N)`` runs the pose detector on the whole image letterboxed to
224×224, then the landmark model on each detected person. People that are small in the
letterboxed image (e.g. two people side by side in a wide photo) score below the detection
threshold, so for images whose long side exceeds 1.3× the short side we also run square
windows (side = short side, stride = half of it) along the long axis, map every result back
to full-image pixels and merge duplicates: two candidates are the same person when the
median distance between their jointly confident landmarks is below 10 % of the larger box
side; the candidate with the higher score wins. Square images are run once.
"""
from __future__ import annotations

import functools
import io
import zipfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from core.detect.keypoint_maps import (
    body25_to_spin49,
    mediapipe33_to_body25,
    mediapipe33_to_coco17,
)
from core.detect.person import DetectedPerson, box_from_keypoints, sort_by_area

__all__ = [
    "MediapipeUnavailable",
    "MediapipePoseDetector",
    "to_rgb_uint8",
    "detection_windows",
    "pose_landmarker_bundle",
]

INSTALL_HINT = (
    "MediaPipe is needed for automatic person/keypoint detection: install the detect extra: "
    "pip install 'hmr-studio[detect]'; or supply an OpenPose JSON "
    "(core.detect.people_from_openpose) or a person box instead."
)


class MediapipeUnavailable(ImportError):
    """mediapipe (the ``detect`` extra) is not installed or lacks its bundled pose models."""


def _import_mediapipe():
    """Import the parts of mediapipe used here, or raise MediapipeUnavailable."""
    try:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision
        from mediapipe.tasks.python.metadata.metadata_writers import (
            metadata_writer,
            writer_utils,
        )
    except ImportError as err:
        raise MediapipeUnavailable(f"{INSTALL_HINT} (import error: {err})") from err
    return mp, vision, BaseOptions, metadata_writer, writer_utils


# ------------------------------------------------------------------- image input

def to_rgb_uint8(image) -> np.ndarray:
    """Convert an image to a C-contiguous (H, W, 3) uint8 RGB array.

    Accepts (H, W) gray, (H, W, 1), (H, W, 3) RGB, (H, W, 4) RGBA (alpha dropped); dtypes
    uint8, uint16 (÷257), bool, other integers within [0, 255], floats in [0, 1] (×255) or
    [0, 255]. Anything with a PIL-style ``__array__`` works too.

    Raises:
        ValueError: wrong number of dimensions/channels, empty image, NaN/inf pixels, or
            integer values outside [0, 255] for non-uint16 types.
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(
            f"expected an image of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got "
            f"{arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"empty image of shape {arr.shape}")
    arr = arr[:, :, :3]
    if arr.dtype == np.uint8:
        out = arr
    elif arr.dtype == np.uint16:
        out = np.round(arr.astype(np.float64) / 257.0).astype(np.uint8)
    elif arr.dtype == np.bool_:
        out = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.integer):
        if arr.min() < 0 or arr.max() > 255:
            raise ValueError(
                f"integer image of dtype {arr.dtype} has values in [{arr.min()}, {arr.max()}]"
                f"; expected [0, 255] — convert it to uint8 first")
        out = arr.astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ValueError("float image contains NaN or inf pixels")
        scale = 255.0 if arr.max() <= 1.0 else 1.0
        out = np.clip(np.round(arr.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    else:
        raise ValueError(f"unsupported image dtype {arr.dtype}")
    return np.ascontiguousarray(out)


def detection_windows(height: int, width: int, min_aspect: float = 1.3
                      ) -> list[tuple[int, int, int, int]]:
    """Windows (x0, y0, x1, y1) to run the detector on: the whole image, plus — when the
    long side is at least ``min_aspect`` × the short side — square windows of side = short
    side at stride short/2 along the long axis, the last one flush with the image end.

    Returns:
        list of integer windows, the full image first.
    """
    wins = [(0, 0, width, height)]
    short, long_ = min(height, width), max(height, width)
    if long_ < min_aspect * short:
        return wins
    stride = max(short // 2, 1)
    starts = list(range(0, long_ - short + 1, stride))
    if starts[-1] != long_ - short:
        starts.append(long_ - short)
    for s in starts:
        wins.append((s, 0, s + short, short) if width >= height else (0, s, short, s + short))
    return wins


# ----------------------------------------------------------------------- the model

def _mediapipe_dir() -> Path:
    mp = _import_mediapipe()[0]
    return Path(mp.__file__).resolve().parent


@functools.lru_cache(maxsize=1)
def pose_landmarker_bundle() -> bytes:
    """The ``.task`` bundle (bytes) built from the tflite models inside the mediapipe wheel.

    Raises:
        MediapipeUnavailable: mediapipe missing, or its wheel lacks the pose models.
    """
    _, _, _, metadata_writer, writer_utils = _import_mediapipe()
    root = _mediapipe_dir() / "modules"
    sources = {
        # name inside the bundle: (file in the wheel, input mean, input std)
        "pose_detector.tflite": (root / "pose_detection" / "pose_detection.tflite", 127.5, 127.5),
        "pose_landmarks_detector.tflite": (
            root / "pose_landmark" / "pose_landmark_full.tflite", 0.0, 255.0),
    }
    bio = io.BytesIO()
    with zipfile.ZipFile(bio, "w", zipfile.ZIP_STORED) as bundle:
        for name, (path, mean, std) in sources.items():
            if not path.is_file():
                raise MediapipeUnavailable(
                    f"the installed mediapipe has no bundled pose model {path}; install "
                    f"mediapipe==0.10.21 (pip install 'hmr-studio[detect]') or pass the path "
                    f"of an official pose_landmarker_*.task file as model_path")
            model = bytearray(path.read_bytes())
            writer = (metadata_writer.MetadataWriter.create(model)
                      .add_general_info(path.stem)
                      .add_image_input([mean], [std]))
            for _ in writer_utils.get_output_tensor_types(model):
                writer.add_feature_output()
            bundle.writestr(name, bytes(writer.populate()[0]))
    return bio.getvalue()


# -------------------------------------------------------------------- the detector

class MediapipePoseDetector:
    """Multi-person BlazePose detector (see module docstring for the method).

    Args:
        max_people: at most this many people are returned (the largest boxes).
        min_confidence: MediaPipe's person detection and pose presence thresholds.
        keypoint_presence: a landmark whose presence is below this gets confidence 0.
        with_masks: also return a per-person segmentation mask (H, W).
        max_side: images whose long side exceeds this are downscaled for detection
            (coordinates and masks are mapped back to the original size).
        windows: run extra square windows on elongated images (see detection_windows).
        model_path: optional official ``pose_landmarker_*.task`` file to use instead of
            the bundle built from the wheel.
    """

    def __init__(self, max_people: int = 4, min_confidence: float = 0.5,
                 keypoint_presence: float = 0.5, with_masks: bool = True,
                 max_side: int = 1280, windows: bool = True,
                 model_path: Optional[str] = None):
        if max_people < 1:
            raise ValueError(f"max_people must be >= 1, got {max_people}")
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        if max_side < 64:
            raise ValueError(f"max_side must be >= 64 px, got {max_side}")
        self.max_people = int(max_people)
        self.min_confidence = float(min_confidence)
        self.keypoint_presence = float(keypoint_presence)
        self.with_masks = bool(with_masks)
        self.max_side = int(max_side)
        self.windows = bool(windows)
        mp, vision, BaseOptions, _, _ = _import_mediapipe()
        self._mp = mp
        if model_path is not None:
            if not Path(model_path).is_file():
                raise FileNotFoundError(f"pose landmarker bundle not found: {model_path}")
            base = BaseOptions(model_asset_path=str(model_path))
        else:
            base = BaseOptions(model_asset_buffer=pose_landmarker_bundle())
        options = vision.PoseLandmarkerOptions(
            base_options=base,
            running_mode=vision.RunningMode.IMAGE,
            num_poses=self.max_people,
            min_pose_detection_confidence=self.min_confidence,
            min_pose_presence_confidence=self.min_confidence,
            output_segmentation_masks=self.with_masks,
        )
        self._landmarker = vision.PoseLandmarker.create_from_options(options)

    # -- lifecycle
    def close(self) -> None:
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def __enter__(self) -> "MediapipePoseDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- detection
    def detect(self, image) -> list[DetectedPerson]:
        """Detect people.

        Args:
            image: (H, W, 3) uint8 RGB (other layouts/dtypes go through to_rgb_uint8).
        Returns:
            list of DetectedPerson sorted by box area, largest first; [] if nobody.
        """
        if self._landmarker is None:
            raise RuntimeError("this MediapipePoseDetector was closed")
        rgb = to_rgb_uint8(image)
        H, W = rgb.shape[:2]
        factor = min(1.0, self.max_side / max(H, W))
        if factor < 1.0:
            import cv2
            small = cv2.resize(rgb, (max(1, round(W * factor)), max(1, round(H * factor))),
                               interpolation=cv2.INTER_AREA)
        else:
            small = rgb
        h, w = small.shape[:2]
        wins = detection_windows(h, w) if self.windows else [(0, 0, w, h)]
        candidates: list[DetectedPerson] = []
        for win in wins:
            candidates.extend(self._detect_window(small, win, (H, W)))
        people = _merge_duplicates(candidates)
        return sort_by_area(people)[: self.max_people]

    def _detect_window(self, small: np.ndarray, win: Sequence[int],
                       full_shape: tuple[int, int]) -> list[DetectedPerson]:
        x0, y0, x1, y1 = win
        crop = np.ascontiguousarray(small[y0:y1, x0:x1])
        mp_image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=crop)
        result = self._landmarker.detect(mp_image)
        H, W = full_shape
        h, w = small.shape[:2]
        sx, sy = W / w, H / h      # detection image → original pixels
        out = []
        for i, lms in enumerate(result.pose_landmarks):
            nx = np.array([lm.x for lm in lms], dtype=np.float64)
            ny = np.array([lm.y for lm in lms], dtype=np.float64)
            vis = np.array([lm.visibility or 0.0 for lm in lms], dtype=np.float64)
            pres = np.array([lm.presence or 0.0 for lm in lms], dtype=np.float64)
            inside = (nx >= 0) & (nx < 1) & (ny >= 0) & (ny < 1)
            conf = np.where(inside & (pres >= self.keypoint_presence), vis, 0.0)
            conf = np.nan_to_num(np.clip(conf, 0.0, 1.0))
            xs = (x0 + nx * (x1 - x0)) * sx
            ys = (y0 + ny * (y1 - y0)) * sy
            # Zero-confidence landmarks keep their (finite) predicted position.
            landmarks = np.nan_to_num(np.stack([xs, ys, conf], axis=1),
                                      nan=0.0, posinf=0.0, neginf=0.0)
            world = None
            if result.pose_world_landmarks and i < len(result.pose_world_landmarks):
                world = np.array([[lm.x, lm.y, lm.z] for lm in result.pose_world_landmarks[i]],
                                 dtype=np.float64)
            mask = None
            if self.with_masks and result.segmentation_masks and i < len(result.segmentation_masks):
                mask = self._full_mask(result.segmentation_masks[i].numpy_view(), win,
                                       (h, w), (H, W))
            out.append(_make_person(landmarks, vis, pres, world, mask, (H, W)))
        return out

    @staticmethod
    def _full_mask(win_mask: np.ndarray, win: Sequence[int], small_shape: tuple[int, int],
                   full_shape: tuple[int, int]) -> np.ndarray:
        x0, y0, x1, y1 = win
        canvas = np.zeros(small_shape, dtype=np.float32)
        canvas[y0:y1, x0:x1] = np.asarray(win_mask, dtype=np.float32).reshape(y1 - y0, x1 - x0)
        if small_shape != full_shape:
            import cv2
            canvas = cv2.resize(canvas, (full_shape[1], full_shape[0]),
                                interpolation=cv2.INTER_LINEAR)
        return np.clip(canvas, 0.0, 1.0)


def _make_person(landmarks: np.ndarray, vis: np.ndarray, pres: np.ndarray,
                 world: Optional[np.ndarray], mask: Optional[np.ndarray],
                 full_shape: tuple[int, int]) -> DetectedPerson:
    """Build a DetectedPerson from (33, 3) landmarks in full-image pixels."""
    H, W = full_shape
    box = box_from_keypoints(landmarks, min_conf=0.5)
    if box is None or (landmarks[:, 2] > 0.5).sum() < 2:
        box = box_from_keypoints(landmarks, min_conf=0.0)
    if mask is not None and (mask > 0.5).any():
        ys, xs = np.nonzero(mask > 0.5)
        mbox = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)
        box = mbox if box is None else np.concatenate(
            [np.minimum(box[:2], mbox[:2]), np.maximum(box[2:], mbox[2:])])
    if box is None:
        box = np.zeros(4)
    box = np.clip(box, 0.0, [W, H, W, H]).astype(np.float64)
    body25 = mediapipe33_to_body25(landmarks)
    return DetectedPerson(
        box=box,
        score=float(landmarks[:, 2].mean()),
        body25=body25,
        spin49=body25_to_spin49(body25, fill_gt=True),
        coco17=mediapipe33_to_coco17(landmarks),
        source="mediapipe",
        landmarks=landmarks,
        visibility=vis,
        presence=pres,
        world_landmarks=world,
        mask=mask,
    )


def _same_person(a: DetectedPerson, b: DetectedPerson, rel_dist: float = 0.1) -> bool:
    """Whether two candidates are the same person (see module docstring)."""
    ka, kb = a.landmarks, b.landmarks
    both = (ka[:, 2] > 0) & (kb[:, 2] > 0)
    size = max(a.box[2] - a.box[0], a.box[3] - a.box[1],
               b.box[2] - b.box[0], b.box[3] - b.box[1], 1.0)
    if both.sum() < 3:
        return False
    dist = np.median(np.linalg.norm(ka[both, :2] - kb[both, :2], axis=1))
    return bool(dist < rel_dist * size)


def _merge_duplicates(candidates: list[DetectedPerson]) -> list[DetectedPerson]:
    """Greedy merge: highest score first, drop candidates that match a kept person."""
    kept: list[DetectedPerson] = []
    for cand in sorted(candidates, key=lambda p: -p.score):
        if not any(_same_person(cand, k) for k in kept):
            kept.append(cand)
    return kept

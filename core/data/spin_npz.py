"""SPIN/PyMAF ``.npz`` annotation files (fact sheet ``spin_pymaf.md`` §4.1) as a torch Dataset
with SPIN's crop and augmentation (§4.2, :mod:`core.data.augment`).

Fields read (all optional except ``imgname``, ``center``, ``scale``): ``part`` (N,24,3),
``openpose`` (N,25,3), ``S`` (N,24,4), ``pose`` (N,72), ``shape`` (N,10), ``has_smpl`` (N,),
``gender`` (N,) 'm'/'f', ``maskname``/``partname`` (N,).

Every sample is a dict (see :data:`core.data.SAMPLE_KEYS`):

=================  =========================================================================
``img``            (3, R, R) float32, RGB, ImageNet-normalised (R = ``img_res``, 224)
``keypoints``      (49, 3) float32: OpenPose-25 then the 24 GT joints, (x, y) in the
                   normalised crop frame ``2·px/R − 1`` ∈ [−1, 1], confidence
``pose_3d``        (24, 4) float32 camera-frame J24 joints (m) + confidence
``pose``           (72,) float32 SMPL axis-angle (global orientation in the crop's camera)
``betas``          (10,) float32
``has_smpl``       float32 0/1; ``has_pose_3d`` float32 0/1
``center``         (2,) float32 box centre (original pixels); ``scale`` float32 box side/200
                   *after* the scale augmentation (the box actually cropped)
``rot``            float32 degrees; ``is_flipped`` float32 0/1 (what was applied)
``dataset``        str dataset name; ``sample_index`` int64 row in the file
``imgname``        str path of the image; ``gender`` int64 (0 male, 1 female, −1 unknown)
=================  =========================================================================

Pixel convention of the keypoints: crop pixel ``i`` spans ``[i, i+1)`` (as the renderer and
the crop camera, whose principal point ``R/2`` is the crop centre), so the horizontal flip
is exactly ``x → −x`` in the normalised frame. ``core.geometry.crop_image`` samples pixel
``i`` at its centre ``i``; hence the +0.5 after ``points_to_crop``.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from core.geometry import crop_image, normalize_image, points_to_crop

from .augment import (AugmentConfig, AugmentParams, apply_pixel_noise, augment_joints_3d, augment_pose,
                      flip_keypoints_2d, sample_augmentation)

__all__ = ["SpinNpzDataset", "read_image_rgb", "keypoints_to_crop"]

_GENDER = {"m": 0, "male": 0, "f": 1, "female": 1}


def read_image_rgb(path) -> np.ndarray:
    """(H, W, 3) uint8 RGB image, with a clear error when it is missing or unreadable."""
    path = Path(path)
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        hint = "" if path.exists() else " (no such file — check the dataset's image root)"
        raise FileNotFoundError(f"cannot read image {path}{hint}")
    return np.ascontiguousarray(img[:, :, ::-1])


def keypoints_to_crop(kp: np.ndarray, center, scale, res: int, rot: float, flip: bool) -> np.ndarray:
    """Original-image keypoints (J, 3) → normalised crop frame (J, 3) (x, y ∈ [−1, 1] inside
    the crop, confidence kept), through SPIN's crop affine and flip (J must be 49 to flip)."""
    kp = np.asarray(kp, dtype=np.float64)
    px = points_to_crop(kp[:, :2], center, scale, res, rot) + 0.5
    out = np.concatenate([2.0 * px / res - 1.0, kp[:, 2:3]], axis=1)
    return flip_keypoints_2d(out) if flip else out


class SpinNpzDataset(Dataset):
    """One SPIN/PyMAF annotation file.

    Args:
        npz_path: the ``.npz`` file.
        img_root: folder the ``imgname`` entries are relative to.
        name: dataset name (default: the file stem), used by the fits dictionary.
        augment: :class:`AugmentConfig` (None or ``enabled=False``: no augmentation).
        img_res: crop side R (224; smaller for quick tests).
    """

    def __init__(self, npz_path, img_root, name: str | None = None, augment: AugmentConfig | None = None,
                 img_res: int = 224):
        npz_path = Path(npz_path)
        if not npz_path.is_file():
            raise FileNotFoundError(f"SPIN annotation file not found: {npz_path}")
        data = np.load(npz_path, allow_pickle=False)
        for key in ("imgname", "center", "scale"):
            if key not in data.files:
                raise KeyError(f"{npz_path} has no '{key}' field (SPIN's .npz format needs imgname, center, scale; "
                               f"it has {sorted(data.files)})")
        self.path = npz_path
        self.img_root = Path(img_root)
        self.name = name or npz_path.stem
        self.augment = augment or AugmentConfig(enabled=False)
        self.img_res = int(img_res)
        self.imgname = data["imgname"].astype(str)
        n = len(self.imgname)
        self.center = np.asarray(data["center"], np.float64).reshape(n, 2)
        self.scale = np.asarray(data["scale"], np.float64).reshape(n)
        if np.any(self.scale <= 0):
            raise ValueError(f"{npz_path}: scale must be > 0 (box side / 200)")

        def field(key, shape):
            if key in data.files:
                return np.asarray(data[key], np.float64).reshape((n,) + shape)
            return None

        part = field("part", (24, 3))
        openpose = field("openpose", (25, 3))
        self.keypoints = np.concatenate([openpose if openpose is not None else np.zeros((n, 25, 3)),
                                         part if part is not None else np.zeros((n, 24, 3))], axis=1)
        self.S = field("S", (24, 4))
        self.has_pose_3d = np.ones(n) if self.S is not None else np.zeros(n)
        if self.S is None:
            self.S = np.zeros((n, 24, 4))
        self.pose = field("pose", (72,))
        self.betas = field("shape", (10,))
        if self.pose is not None and self.betas is not None:
            self.has_smpl = (np.asarray(data["has_smpl"], np.float64).reshape(n) if "has_smpl" in data.files
                             else np.ones(n))
        else:
            self.pose, self.betas, self.has_smpl = np.zeros((n, 72)), np.zeros((n, 10)), np.zeros(n)
        if "gender" in data.files:
            self.gender = np.array([_GENDER.get(str(g).lower(), -1) for g in data["gender"]], np.int64)
        else:
            self.gender = np.full(n, -1, np.int64)
        self.maskname = data["maskname"].astype(str) if "maskname" in data.files else None
        self.partname = data["partname"].astype(str) if "partname" in data.files else None

    def __len__(self) -> int:
        return len(self.imgname)

    def __getitem__(self, index: int) -> dict:
        return self.get(index, np.random.default_rng())

    def get(self, index: int, rng: np.random.Generator, params: AugmentParams | None = None) -> dict:
        """Sample ``index`` with augmentation drawn from ``rng`` (or the given ``params``)."""
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range [0, {len(self)})")
        p = params if params is not None else sample_augmentation(rng, self.augment)
        res = self.img_res
        center, scale = self.center[index], self.scale[index] * p.scale
        img = crop_image(read_image_rgb(self.img_root / self.imgname[index]), center, scale, res, p.rot)
        if p.flip:
            img = img[:, ::-1]
        img = apply_pixel_noise(img, p.pixel)
        kp = keypoints_to_crop(self.keypoints[index], center, scale, res, p.rot, p.flip)
        pose = augment_pose(self.pose[index], p) if self.has_smpl[index] > 0 else self.pose[index]
        item = {
            "img": normalize_image(img),
            "keypoints": torch.as_tensor(kp, dtype=torch.float32),
            "pose_3d": torch.as_tensor(augment_joints_3d(self.S[index], p), dtype=torch.float32),
            "pose": torch.as_tensor(pose, dtype=torch.float32),
            "betas": torch.as_tensor(self.betas[index], dtype=torch.float32),
            "has_smpl": torch.tensor(float(self.has_smpl[index])),
            "has_pose_3d": torch.tensor(float(self.has_pose_3d[index])),
            "center": torch.as_tensor(center, dtype=torch.float32),
            "scale": torch.tensor(float(scale)),
            "rot": torch.tensor(float(p.rot)),
            "is_flipped": torch.tensor(float(p.flip)),
            "dataset": self.name,
            "sample_index": torch.tensor(index, dtype=torch.int64),
            "imgname": str(self.img_root / self.imgname[index]),
            "gender": torch.tensor(int(self.gender[index])),
        }
        return item

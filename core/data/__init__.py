"""Datasets: SPIN/PyMAF ``.npz`` files with SPIN's augmentation, the fits dictionary, mixed
datasets, deterministic resumable streams, and synthetic open-body renders.

Every dataset returns dicts with (at least) :data:`SAMPLE_KEYS`, so trainers and the
evaluation accept either source:

>>> from core.data import SpinNpzDataset, SyntheticShards, AugmentConfig
>>> ds = SpinNpzDataset("data/dataset_extras/lsp_dataset_original_train.npz", "datasets/lsp",
...                     augment=AugmentConfig())
>>> sample = ds[0]; sample["img"].shape, sample["keypoints"].shape
"""
from .augment import AugmentConfig, AugmentParams, augment_pose, sample_augmentation, unaugment_pose
from .fits import FitsDict, load_fits_file, save_fits_file
from .mixed import MixedDataset
from .spin_npz import SpinNpzDataset
from .stream import DeterministicStream, PositionSampler
from .synthetic import SyntheticConfig, SyntheticGenerator, SyntheticShards, write_dataset

SAMPLE_KEYS = ("img", "keypoints", "pose_3d", "pose", "betas", "has_smpl", "has_pose_3d", "center",
               "scale", "rot", "is_flipped", "dataset", "sample_index", "imgname", "gender")
"""Keys every dataset sample has (see :class:`SpinNpzDataset` for shapes and meaning)."""

__all__ = ["AugmentConfig", "AugmentParams", "augment_pose", "unaugment_pose", "sample_augmentation",
           "FitsDict", "load_fits_file", "save_fits_file", "MixedDataset", "SpinNpzDataset",
           "DeterministicStream", "PositionSampler", "SyntheticConfig", "SyntheticGenerator",
           "SyntheticShards", "write_dataset", "SAMPLE_KEYS"]

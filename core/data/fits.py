"""SPIN's fits dictionary: the current best SMPL fit of every training sample.

Stored per dataset in the *original* (un-augmented) frame: pose (N, 72) axis-angle, betas
(N, 10) and, for PyMAF's final fits, a validity flag (N,). A training batch reads the fits
of its samples with the sample's augmentation applied (global orientation rotated by
``Rz(−rot)``, then flipped) and writes improved fits back with it undone
(:func:`core.data.augment.augment_pose` / :func:`~core.data.augment.unaugment_pose`).

Files (fact sheet ``spin_pymaf.md`` §2.2, §5.4):

* static fits ``<ds>_fits.npy``: (N, 82) = 72 pose + 10 betas (SPIN's
  ``data/static_fits`` and what SPIN's trainer persists);
* final fits ``<ds>.npz``: ``pose`` (N, 72), ``betas`` (N, 10), ``valid_fit`` (N,) (PyMAF's
  ``data/final_fits``); H36M's final fits are an (N, 82) ``.npy`` (all valid).

Writes are atomic (``core.utils.io``: temporary file in the same folder + ``os.replace``), so a crash never
leaves a half-written fits file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from core.utils.io import atomic_open, atomic_savez

from .augment import AugmentParams, augment_pose, unaugment_pose

__all__ = ["FitsDict", "load_fits_file", "save_fits_file"]


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)


def load_fits_file(path) -> dict:
    """Read a static (``.npy`` (N, 82)) or final (``.npz`` pose/betas/valid_fit) fits file.

    Returns:
        {"pose": (N, 72) float32, "betas": (N, 10) float32, "valid": (N,) bool or None}.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"fits file not found: {path}")
    if path.suffix == ".npy":
        arr = np.load(path)
        if arr.ndim != 2 or arr.shape[1] != 82:
            raise ValueError(f"{path}: static fits must be (N, 82) = 72 pose + 10 betas, got {arr.shape}")
        return {"pose": arr[:, :72].astype(np.float32), "betas": arr[:, 72:].astype(np.float32), "valid": None}
    if path.suffix == ".npz":
        data = np.load(path)
        missing = {"pose", "betas"} - set(data.files)
        if missing:
            raise KeyError(f"{path}: final fits need 'pose' and 'betas' (and optionally 'valid_fit'); "
                           f"missing {sorted(missing)}")
        pose = np.asarray(data["pose"], np.float32)
        betas = np.asarray(data["betas"], np.float32)
        if pose.ndim != 2 or pose.shape[1] != 72 or betas.shape != (len(pose), 10):
            raise ValueError(f"{path}: expected pose (N, 72) and betas (N, 10), got {pose.shape} and {betas.shape}")
        valid = np.asarray(data["valid_fit"]).astype(bool).reshape(-1) if "valid_fit" in data.files else None
        return {"pose": pose, "betas": betas, "valid": valid}
    raise ValueError(f"{path}: fits files are .npy (N, 82) or .npz (pose, betas, valid_fit)")


def save_fits_file(path, pose: np.ndarray, betas: np.ndarray, valid: np.ndarray | None = None) -> Path:
    """Write fits atomically: ``.npy`` → (N, 82); ``.npz`` → pose, betas (+ valid_fit)."""
    path = Path(path)
    pose = np.asarray(pose, np.float32)
    betas = np.asarray(betas, np.float32)
    if path.suffix == ".npy":
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path) as f:
            np.save(f, np.concatenate([pose, betas], axis=1))
    elif path.suffix == ".npz":
        arrays = {"pose": pose, "betas": betas}
        if valid is not None:
            arrays["valid_fit"] = np.asarray(valid, bool)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_savez(path, **arrays)
    else:
        raise ValueError(f"{path}: save fits as .npy (static layout) or .npz (final layout)")
    return path


class FitsDict:
    """Per-dataset fits (see module docstring).

    Args:
        fits: name → {"pose": (N, 72), "betas": (N, 10), "valid": (N,) bool or None}.
    """

    def __init__(self, fits: Mapping[str, Mapping]):
        self.fits: dict[str, dict] = {}
        for name, f in fits.items():
            pose = np.array(f["pose"], np.float32)
            betas = np.array(f["betas"], np.float32)
            if pose.ndim != 2 or pose.shape[1] != 72 or betas.shape != (len(pose), 10):
                raise ValueError(f"fits '{name}': expected pose (N, 72), betas (N, 10); got {pose.shape}, {betas.shape}")
            valid = f.get("valid")
            self.fits[name] = {"pose": pose, "betas": betas,
                               "valid": None if valid is None else np.array(valid, bool).reshape(len(pose))}

    @classmethod
    def from_files(cls, files: Mapping[str, str | Path]) -> "FitsDict":
        """{dataset name: fits file} → FitsDict."""
        return cls({name: load_fits_file(path) for name, path in files.items()})

    @classmethod
    def zeros(cls, sizes: Mapping[str, int]) -> "FitsDict":
        """Empty fits (zero pose and betas) — e.g. when no static fits exist yet."""
        return cls({n: {"pose": np.zeros((k, 72)), "betas": np.zeros((k, 10))} for n, k in sizes.items()})

    def __contains__(self, name: str) -> bool:
        return name in self.fits

    def size(self, name: str) -> int:
        return len(self._get(name)["pose"])

    def _get(self, name: str) -> dict:
        try:
            return self.fits[name]
        except KeyError:
            raise KeyError(f"no fits for dataset '{name}'; have {sorted(self.fits)}") from None

    @staticmethod
    def _params(rot, flip, i) -> AugmentParams:
        return AugmentParams(flip=bool(_np(flip)[i] > 0.5), rot=float(_np(rot)[i]))

    def read(self, datasets: Sequence[str], indices, rot, flip):
        """Fits of a batch, as seen in each sample's augmented crop.

        Args:
            datasets: B dataset names; indices: (B,) rows; rot: (B,) degrees; flip: (B,) 0/1.
        Returns:
            pose (B, 72) float32 tensor, betas (B, 10) float32 tensor, valid (B,) bool tensor
            (True where the file has no validity flag).
        """
        idx = _np(indices).astype(np.int64).reshape(-1)
        pose, betas, valid = [], [], []
        for i, (name, k) in enumerate(zip(datasets, idx)):
            f = self._get(name)
            if not 0 <= k < len(f["pose"]):
                raise IndexError(f"fits '{name}': index {k} out of range [0, {len(f['pose'])})")
            pose.append(augment_pose(f["pose"][k], self._params(rot, flip, i)))
            betas.append(f["betas"][k])
            valid.append(True if f["valid"] is None else bool(f["valid"][k]))
        return (torch.as_tensor(np.stack(pose), dtype=torch.float32),
                torch.as_tensor(np.stack(betas), dtype=torch.float32),
                torch.as_tensor(valid))

    def write(self, datasets: Sequence[str], indices, pose, betas, rot, flip, mask=None) -> int:
        """Store fits given in the augmented crops' frames (undoing flip, then rotation).

        Args:
            pose (B, 72), betas (B, 10): tensors or arrays; mask (B,) bool: rows to store
            (default all). Returns the number of rows written.
        """
        idx = _np(indices).astype(np.int64).reshape(-1)
        pose, betas = _np(pose).astype(np.float64), _np(betas)
        mask = np.ones(len(idx), bool) if mask is None else _np(mask).astype(bool).reshape(-1)
        n = 0
        for i, (name, k) in enumerate(zip(datasets, idx)):
            if not mask[i]:
                continue
            f = self._get(name)
            f["pose"][k] = unaugment_pose(pose[i], self._params(rot, flip, i))
            f["betas"][k] = betas[i]
            n += 1
        return n

    def save(self, directory, layout: str = "static") -> dict[str, Path]:
        """Write every dataset's fits atomically into ``directory``: ``<ds>_fits.npy``
        (layout "static") or ``<ds>.npz`` with valid_fit (layout "final")."""
        if layout not in ("static", "final"):
            raise ValueError(f"layout must be 'static' or 'final', got {layout!r}")
        directory = Path(directory)
        out = {}
        for name, f in self.fits.items():
            path = directory / (f"{name}_fits.npy" if layout == "static" else f"{name}.npz")
            out[name] = save_fits_file(path, f["pose"], f["betas"], f["valid"] if layout == "final" else None)
        return out

    # ----------------------------------------------------------------- checkpoint state
    def state_dict(self) -> dict:
        """Tensors (CPU copies), for a training checkpoint (loadable with ``weights_only``)."""
        return {name: {k: torch.from_numpy(v.copy()) for k, v in f.items() if v is not None}
                for name, f in self.fits.items()}

    def load_state_dict(self, state: Mapping) -> None:
        self.__init__({name: {k: _np(v) for k, v in f.items()} for name, f in state.items()})

"""Several datasets mixed with fixed per-sample ratios (SPIN's ``MixedDataset``: e.g. 30 %
Human3.6M, 60 % in-the-wild, 10 % MPI-INF-3DHP).

Each sample first picks a dataset with the given probabilities, then a uniformly random
sample of it. The length (one "epoch") defaults to the largest member's size, as in SPIN.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from torch.utils.data import Dataset

__all__ = ["MixedDataset"]


class MixedDataset(Dataset):
    """Args:
        datasets: members; each needs ``__len__`` and ``get(index, rng)``.
        ratios: one non-negative weight per member (normalised to sum 1).
        length: samples per epoch (default: the largest member's length).
    """

    def __init__(self, datasets: Sequence[Dataset], ratios: Sequence[float], length: int | None = None):
        if len(datasets) == 0:
            raise ValueError("MixedDataset needs at least one dataset")
        if len(ratios) != len(datasets):
            raise ValueError(f"MixedDataset: {len(datasets)} datasets but {len(ratios)} ratios")
        r = np.asarray(ratios, np.float64)
        if np.any(r < 0) or r.sum() <= 0:
            raise ValueError(f"MixedDataset: ratios must be ≥ 0 and not all 0, got {list(ratios)}")
        for d in datasets:
            if len(d) == 0:
                raise ValueError(f"MixedDataset: member {getattr(d, 'name', d)!r} is empty")
            if not hasattr(d, "get"):
                raise TypeError(f"MixedDataset: member {type(d).__name__} has no get(index, rng)")
        self.datasets = list(datasets)
        self.ratios = r / r.sum()
        self._cum = np.cumsum(self.ratios)
        self.length = int(length) if length is not None else max(len(d) for d in datasets)

    def __len__(self) -> int:
        return self.length

    def choose(self, rng: np.random.Generator) -> tuple[int, int]:
        """(member, index within it) for one draw."""
        k = int(min(np.searchsorted(self._cum, rng.uniform(), side="right"), len(self.datasets) - 1))
        while self.ratios[k] == 0:      # only reachable through float round-off at the end
            k -= 1
        return k, int(rng.integers(len(self.datasets[k])))

    def get(self, index: int, rng: np.random.Generator) -> dict:
        k, i = self.choose(rng)
        return self.datasets[k].get(i, rng)

    def __getitem__(self, index: int) -> dict:
        return self.get(index, np.random.default_rng())

"""Deterministic, resumable sample streams.

Training draws samples by *position* in an endless stream: position ``p`` belongs to epoch
``e = p // n`` (n = dataset length), picks ``permutation_e[p % n]`` and draws its
augmentation from a generator seeded with ``(seed, p)``. The batch of global step ``k``
therefore depends only on (seed, k, batch size, number of processes) — a run resumed from
a checkpoint at step k sees exactly the batches it would have seen, and each DDP process
takes its own interleaved share of the positions (:class:`PositionSampler`).
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
from torch.utils.data import Dataset, Sampler

__all__ = ["DeterministicStream", "PositionSampler"]


class DeterministicStream(Dataset):
    """Position → sample (see module docstring).

    Args:
        dataset: needs ``__len__`` and ``get(index, rng)``; if it has
            ``epoch_permutation(rng)`` that order is used (e.g. shard-blocked shuffles).
        seed: stream seed.
        shuffle: permute every epoch (False: positions map to ``p % n`` in order).
    """

    def __init__(self, dataset, seed: int = 0, shuffle: bool = True):
        if not hasattr(dataset, "get"):
            raise TypeError(f"DeterministicStream: {type(dataset).__name__} has no get(index, rng)")
        self.dataset = dataset
        self.seed = int(seed)
        self.shuffle = shuffle
        self._perm_epoch = -1
        self._perm = None

    def __len__(self) -> int:
        return len(self.dataset)

    def permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            n = len(self.dataset)
            if not self.shuffle:
                self._perm = np.arange(n)
            else:
                rng = np.random.default_rng([self.seed, epoch, 7])
                perm_fn = getattr(self.dataset, "epoch_permutation", None)
                self._perm = perm_fn(rng) if perm_fn is not None else rng.permutation(n)
            self._perm_epoch = epoch
        return self._perm

    def index_of(self, position: int) -> int:
        n = len(self.dataset)
        return int(self.permutation(position // n)[position % n])

    def __getitem__(self, position: int) -> dict:
        position = int(position)
        if position < 0:
            raise IndexError(f"stream positions are ≥ 0, got {position}")
        return self.dataset.get(self.index_of(position), np.random.default_rng([self.seed, position]))


class PositionSampler(Sampler[int]):
    """Consecutive stream positions for one process.

    Process ``rank`` of ``world`` yields ``start + i·world + rank`` for i = 0, 1, …,
    ``length − 1`` on its first pass, and continues where it stopped on each further pass
    (each Lightning epoch re-iterates the sampler). With batch size B, global step k uses
    the positions ``[k·B·world, (k+1)·B·world)`` across processes, so resuming at step k
    means ``start = k·B·world``.
    """

    def __init__(self, length: int, start: int = 0, rank: int = 0, world: int = 1):
        if length <= 0:
            raise ValueError(f"PositionSampler: length must be > 0, got {length}")
        if not 0 <= rank < world:
            raise ValueError(f"PositionSampler: rank {rank} not in [0, {world})")
        self.length, self.start, self.rank, self.world = int(length), int(start), int(rank), int(world)
        self._passes = 0

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[int]:
        first = self.start + self._passes * self.length * self.world
        self._passes += 1
        for i in range(self.length):
            yield first + i * self.world + self.rank

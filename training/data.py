"""Datasets from config sources, and the Lightning DataModule with a resumable sampler.

The training loader draws positions of a :class:`core.data.DeterministicStream` through a
:class:`core.data.PositionSampler` started at ``global_step · batch_size · world_size``, so a
resumed run continues with exactly the batches it would have seen, and each DDP process
takes its own share (Lightning's distributed sampler is turned off for this reason:
``Trainer(use_distributed_sampler=False)``).
"""
from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from core.data import AugmentConfig, DeterministicStream, MixedDataset, PositionSampler, SpinNpzDataset, SyntheticShards

__all__ = ["build_source", "build_dataset", "fits_files", "HMRDataModule"]


def build_source(source: dict, cfg: dict, train: bool):
    """One configured source → a dataset with ``get(index, rng)``."""
    aug = dict(cfg["augment"])
    pixel_noise = aug.pop("synthetic_pixel_noise", 0.0)
    if source["kind"] == "synthetic":
        return SyntheticShards(source["path"], img_res=cfg["img_res"], pixel_noise=pixel_noise if train else 0.0,
                               name=source.get("name"))
    if source["kind"] == "npz":
        if not train:
            aug["enabled"] = False
        return SpinNpzDataset(source["path"], source.get("img_root") or ".", name=source.get("name"),
                              augment=AugmentConfig(**aug), img_res=cfg["img_res"])
    raise ValueError(f"unknown data source kind {source['kind']!r}")


def build_dataset(sources: list[dict], cfg: dict, train: bool = True):
    """Sources → one dataset (a :class:`MixedDataset` when there are several)."""
    members = [build_source(s, cfg, train) for s in sources]
    if len(members) == 1:
        return members[0]
    return MixedDataset(members, [float(s.get("ratio", 1.0)) for s in sources])


def fits_files(members: list, sources: list[dict]) -> dict[str, str]:
    """{dataset name: fits file} for the sources that name a ``fits`` file."""
    return {m.name: s["fits"] for m, s in zip(members, sources) if s.get("fits")}


class HMRDataModule(pl.LightningDataModule):
    """Train (and optional validation) loaders for every method."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = cfg
        self.train_set = None
        self.val_set = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set = build_dataset(self.cfg["data"]["train"], self.cfg, train=True)
        if self.val_set is None and self.cfg["data"]["val"]:
            self.val_set = build_dataset(self.cfg["data"]["val"], self.cfg, train=False)

    def members(self) -> list:
        """The training datasets (members of a mix, or the single one), in source order."""
        self.setup()
        return list(getattr(self.train_set, "datasets", [self.train_set]))

    def fits_files(self) -> dict[str, str]:
        return fits_files(self.members(), self.cfg["data"]["train"])

    def train_dataloader(self) -> DataLoader:
        self.setup()
        cfg = self.cfg
        world = self.trainer.world_size if self.trainer is not None else 1
        rank = self.trainer.global_rank if self.trainer is not None else 0
        step = self.trainer.global_step if self.trainer is not None else 0
        bs = int(cfg["batch_size"])
        stream = DeterministicStream(self.train_set, seed=int(cfg["seed"]))
        per_rank = max(bs, (len(self.train_set) // (bs * world)) * bs)
        sampler = PositionSampler(per_rank, start=step * bs * world, rank=rank, world=world)
        # its own generator: creating an iterator must not draw from the global RNG (the
        # dropout masks of a resumed run would shift at every epoch boundary)
        gen = torch.Generator().manual_seed(int(cfg["seed"]) + rank)
        # workers live across epochs (the sampler runs in this process, so batches do not
        # depend on it); page-locked batches when a GPU takes them
        workers = int(cfg["num_workers"])
        return DataLoader(stream, batch_size=bs, sampler=sampler, num_workers=workers, drop_last=True,
                          persistent_workers=workers > 0, pin_memory=torch.cuda.is_available(), generator=gen)

    def val_dataloader(self):
        if self.val_set is None:
            return []
        stream = DeterministicStream(self.val_set, seed=0, shuffle=False)
        return DataLoader(stream, batch_size=int(self.cfg["batch_size"]), shuffle=False,
                          num_workers=int(self.cfg["num_workers"]))

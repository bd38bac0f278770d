"""PyMAF (conference recipe, fact sheet ``spin_pymaf.md`` §5.4): deep supervision of the
three regression levels with SPIN's losses (weights ×60: keypoints 300, pose 60, betas
0.06) plus the dense IUV auxiliary loss on the 56² head (at 224² input).

Targets: SPIN's *final fits* when a data source names a ``fits`` file (``.npz`` with
pose/betas/valid_fit) — extreme betas (|β| > 3) zeroed, GT SMPL where available, valid =
valid_fit or has_smpl — else the GT parameters. No SMPLify in the loop.

IUV targets: a batch's own rendered maps when it has them (synthetic data: ``iuv_part`` /
``iuv_uv``), else rendered on the fly from the target mesh placed with SPIN's camera
estimate (``core.render.render_iuv``, the crop camera at the head's resolution; PyMAF
renders its GT IUV the same way). Maps at another resolution are resampled (nearest).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from core.data import FitsDict
from core.geometry import FOCAL_LENGTH, IMG_RES
from core.render.camera import spin_intrinsics
from core.render.iuv import render_iuv

from .base import BaseModule
from .losses import iuv_loss
from .targets import Targets

__all__ = ["PyMAFModule", "iuv_targets"]


def _resize_nearest(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(t.shape[-2:]) == tuple(size):
        return t
    x = t.float()
    squeeze = x.ndim == 3
    x = F.interpolate(x[:, None] if squeeze else x, size=size, mode="nearest")
    return (x[:, 0] if squeeze else x).to(t.dtype)


def iuv_targets(body, batch: dict, targets: Targets, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """GT part (B, H, W) int64 and UV (B, 2, H, W) at the head's resolution ``size``."""
    if "iuv_part" in batch:
        return _resize_nearest(batch["iuv_part"], size), _resize_nearest(batch["iuv_uv"], size)
    with torch.no_grad():
        out = body(betas=targets.betas, body_pose=targets.pose[:, 3:], global_orient=targets.pose[:, :3])
        verts = (out.vertices + targets.transl[:, None]).float().cpu().numpy()
    maps = render_iuv(verts, body.faces, body.face_part, body.face_uv, spin_intrinsics(FOCAL_LENGTH, IMG_RES),
                      IMG_RES, out_size=size)
    dev = targets.pose.device
    part = torch.as_tensor(maps.part.astype(np.int64), device=dev)
    uv = torch.as_tensor(np.stack([maps.u, maps.v], 1), device=dev)
    return part, uv


class PyMAFModule(BaseModule):
    """``python -m training pymaf``."""

    OPTIONS = {
        "iuv_weight": 1.0,          # PyMAF adds the IUV terms with weight 1 (index/ann CE, 0.5 U/V)
        "uv_weight": 0.5,
        "extreme_betas": 3.0,
        "use_gt_smpl": True,
    }

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.model = self.build_regressor(**({} if "layout" in cfg["model"] else {"layout": "project"}))
        self.fits: FitsDict | None = None

    def setup(self, stage: str) -> None:
        if self.fits is None and self.trainer is not None and self.trainer.datamodule is not None:
            files = self.trainer.datamodule.fits_files()
            self.fits = FitsDict.from_files(files) if files else FitsDict({})

    def make_targets(self, batch) -> Targets:
        o = self.options
        has_smpl = (batch["has_smpl"] > 0.5) & bool(o["use_gt_smpl"])
        names = batch["dataset"]
        if self.fits is None or not any(n in self.fits for n in names):
            return self.targets(batch)
        pose, betas, valid = batch["pose"].clone(), batch["betas"].clone(), has_smpl.clone()
        rows = [i for i, n in enumerate(names) if n in self.fits]
        fp, fb, fv = self.fits.read([names[i] for i in rows], batch["sample_index"][rows], batch["rot"][rows],
                                    batch["is_flipped"][rows])
        fb = torch.where((fb.abs() > float(o["extreme_betas"])).any(-1, keepdim=True), torch.zeros_like(fb), fb)
        r = torch.as_tensor(rows, device=pose.device)
        keep = ~has_smpl[r]
        pose[r] = torch.where(keep[:, None], fp.to(pose), pose[r])
        betas[r] = torch.where(keep[:, None], fb.to(betas), betas[r])
        valid[r] = valid[r] | fv.to(valid.device)
        return self.targets(batch, pose=pose, betas=betas, valid=valid)

    def compute(self, batch):
        with self.fp32():
            targets = self.make_targets(batch)
        out = self.model(batch["img"])
        loss = 0.0
        logs = {}
        for i, level in enumerate(out.levels[1:]):
            level_loss, parts = self.supervise(level.state, level.mesh, targets, prefix=f"level{i}/")
            loss = loss + level_loss
            logs.update(parts)
        iuv = out.iuv
        part_gt, uv_gt = iuv_targets(self.body, batch, targets, tuple(iuv.u.shape[-2:]))
        dense = iuv_loss(iuv.u, iuv.v, iuv.uv_index, iuv.ann_index, part_gt, uv_gt, targets.valid,
                         float(self.options["uv_weight"]))
        loss = loss + float(self.options["iuv_weight"]) * dense["iuv_total"]
        logs.update({k: v.detach() for k, v in dense.items()})
        panel = None
        if self.panel_due():
            with torch.no_grad():
                final = out.final.state.detach()
                n = min(int(self.cfg["logging"]["panel_samples"]), batch["img"].shape[0])
                panel = self.panel_rows(batch, final, self.mesh_of(final, full=True),
                                        iuv_pred=(iuv.part[:n].cpu().numpy(), iuv.uv[:n].float().cpu().numpy()),
                                        iuv_target=(part_gt[:n].cpu().numpy(), uv_gt[:n].float().cpu().numpy()))
        return loss, logs, panel

    def predict_final(self, images):
        out = self.model(images)
        state = out.final.state
        return state, self.mesh_of(state, full=True)

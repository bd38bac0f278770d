"""SPIN: the HMR regressor trained with SMPLify in the loop (fact sheet ``spin_pymaf.md`` §2.2).

Per batch:

1. the current best fit of every sample is read from the fits dictionary (with the
   sample's augmentation applied) and scored: SPIN's SMPLify reprojection score (mean over
   the 49 joints of ``conf² ρ_σ=100(reprojection)``) with the camera estimated from the
   24 GT keypoints;
2. the network predicts; with ``run_smplify`` SMPLify (``core.fitting.smplify``, SPIN's
   schedule: camera stage + body stage) starts from the prediction, and each sample's fit
   is replaced **only if its score improves** (written back un-augmented);
3. fits with any |β| > 3 get β = 0; samples with GT SMPL use it instead (``use_gt_smpl``);
4. a fit is *valid* (supervises pose and betas) if its score < ``smplify_threshold`` (100)
   or the sample has GT SMPL;
5. SPIN's losses on the final IEF output (× 60).

The fits are part of the Lightning checkpoint (a resumed run continues with them) and are
written to ``<out>/fits/<dataset>_fits.npy`` at the end. Under DDP every process applies
every process's fit updates (all-gathered), so the copies stay identical.
"""
from __future__ import annotations

from pathlib import Path

import torch

from core.data import FitsDict
from core.fitting.losses import project_crop, reprojection_terms
from core.fitting.smplify import FitInit, run_smplify
from core.geometry import FOCAL_LENGTH, IMG_RES

from .hmr import HMRModule
from .targets import body_at, camera_for, keypoints_to_pixels

__all__ = ["SPINModule", "fit_scores"]


def fit_scores(body, pose: torch.Tensor, betas: torch.Tensor, keypoints_px: torch.Tensor):
    """SPIN's score of fits: (B,) mean over 49 joints of SMPLify's per-joint reprojection
    term, the camera translation (B, 3) fitted to the GT keypoints, and the body output."""
    with torch.no_grad(), torch.autocast(keypoints_px.device.type, enabled=False):  # geometry in float32
        pose, betas, keypoints_px = pose.float(), betas.float(), keypoints_px.float()
        out = body_at(body, pose, betas, full_mesh=False)
        transl = camera_for(out.joints, keypoints_px, body)
        j2d = project_crop(out.joints, transl, FOCAL_LENGTH, IMG_RES)
        score = reprojection_terms(j2d, keypoints_px.to(j2d.dtype)).mean(-1)
    return score, transl, out


class SPINModule(HMRModule):
    """``python -m training spin``."""

    OPTIONS = {
        "run_smplify": True,        # SMPLify in the loop (SPIN README's --run_smplify)
        "smplify_iters": 100,       # per stage
        "smplify_lr": 1e-2,
        "smplify_threshold": 100.0,
        "extreme_betas": 3.0,       # |β| above this → β = 0
        "use_gt_smpl": True,        # GT SMPL (has_smpl) overrides the fit
    }

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.fits: FitsDict | None = None
        self._prior = None

    # ------------------------------------------------------------------ fits lifecycle
    def setup(self, stage: str) -> None:
        if self.fits is not None:
            return
        dm = self.trainer.datamodule
        members = dm.members()
        files = dm.fits_files()
        sizes = {m.name: len(m) for m in members}
        fits = {}
        if files:
            loaded = FitsDict.from_files(files)
            fits.update(loaded.fits)
            for name, f in loaded.fits.items():
                if len(f["pose"]) != sizes.get(name, len(f["pose"])):
                    raise ValueError(f"fits for '{name}' have {len(f['pose'])} rows but the dataset has {sizes[name]}")
        missing = {n: k for n, k in sizes.items() if n not in fits}
        fits.update(FitsDict.zeros(missing).fits)
        self.fits = FitsDict(fits)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        if self.fits is not None:
            checkpoint["fits"] = self.fits.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        if "fits" in checkpoint:
            self.fits = FitsDict.zeros({})
            self.fits.load_state_dict(checkpoint["fits"])

    def on_train_end(self) -> None:
        if self.trainer.is_global_zero and self.fits is not None:
            self.fits.save(Path(self.cfg["out_dir"]) / "fits", layout="static")

    # ------------------------------------------------------------------ one step
    def _prior_for_body(self):
        if self._prior is None:
            from core.fitting.priors import load_pose_prior

            self._prior = load_pose_prior(self.body.name)
        return self._prior

    def _gather_updates(self, ids, idx, pose, betas, rot, flip, mask):
        """All processes' updates (identity on one process)."""
        if self.trainer.world_size <= 1:
            return ids, idx, pose, betas, rot, flip, mask
        g = [self.all_gather(t) for t in (ids, idx, pose, betas, rot, flip, mask.to(torch.uint8))]
        flat = [t.reshape(-1, *t.shape[2:]) for t in g]
        flat[-1] = flat[-1].bool()
        return tuple(flat)

    def update_fits(self, batch, pred_state, opt_pose, opt_betas, opt_score, kp_px):
        """SMPLify from the prediction; keep per sample the better of old and new fit."""
        o = self.options
        init = FitInit.from_rotmats(pred_state.rotmat.detach().float(), pred_state.betas.detach().float(),
                                    cam=pred_state.cam.detach().float())
        with torch.enable_grad(), self.fp32():  # SMPLify in float32 under any precision
            res = run_smplify(self.body, kp_px.detach().float(), init=init, prior=self._prior_for_body(),
                              num_iters=int(o["smplify_iters"]), step_size=float(o["smplify_lr"]))
        new_pose = torch.cat([res.global_orient, res.body_pose], 1).to(opt_pose)
        better = (res.fit_score.to(opt_score) < opt_score) & res.fitted.to(opt_score.device)
        opt_pose = torch.where(better[:, None], new_pose, opt_pose)
        opt_betas = torch.where(better[:, None], res.betas.to(opt_betas), opt_betas)
        opt_score = torch.where(better, res.fit_score.to(opt_score), opt_score)
        names = sorted(self.fits.fits)
        ids = torch.tensor([names.index(n) for n in batch["dataset"]], device=opt_pose.device)
        ids, idx, pose_g, betas_g, rot, flip, mask = self._gather_updates(
            ids, batch["sample_index"], opt_pose, opt_betas, batch["rot"], batch["is_flipped"], better)
        self.fits.write([names[i] for i in ids.tolist()], idx, pose_g, betas_g, rot, flip, mask=mask)
        return opt_pose, opt_betas, opt_score, float(better.float().mean())

    def compute(self, batch):
        o = self.options
        kp_px = keypoints_to_pixels(batch["keypoints"])
        opt_pose, opt_betas, file_valid = self.fits.read(batch["dataset"], batch["sample_index"], batch["rot"],
                                                         batch["is_flipped"])
        opt_pose, opt_betas = opt_pose.to(kp_px), opt_betas.to(kp_px)
        opt_score = fit_scores(self.body, opt_pose, opt_betas, kp_px)[0]

        state = self.model(batch["img"]).final
        improved = 0.0
        if o["run_smplify"]:
            opt_pose, opt_betas, opt_score, improved = self.update_fits(
                batch, state, opt_pose, opt_betas, opt_score, kp_px)

        extreme = (opt_betas.abs() > float(o["extreme_betas"])).any(-1)
        opt_betas = torch.where(extreme[:, None], torch.zeros_like(opt_betas), opt_betas)
        has_smpl = (batch["has_smpl"] > 0.5) & bool(o["use_gt_smpl"])
        opt_pose = torch.where(has_smpl[:, None], batch["pose"], opt_pose)
        opt_betas = torch.where(has_smpl[:, None], batch["betas"], opt_betas)
        valid = ((opt_score < float(o["smplify_threshold"])) & file_valid.to(kp_px.device)) | has_smpl

        targets = self.targets(batch, pose=opt_pose, betas=opt_betas, valid=valid)
        loss, logs = self.supervise(state, self.mesh_of(state), targets)
        logs.update({"fits/valid": valid.float().mean(), "fits/score": opt_score.mean(),
                     "fits/improved": torch.tensor(improved)})
        panel = None
        if self.panel_due():
            with torch.no_grad():
                panel = self.panel_rows(batch, state, self.mesh_of(state.detach(), full=True))
        return loss, logs, panel

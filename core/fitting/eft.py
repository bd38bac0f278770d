"""EFT — Exemplar Fine-Tuning (Joo, Neverova, Vedaldi, 3DV 2021): fine-tune a copy of the
regressor on one image's 2D keypoints, per sample (fact sheet ``meta_eft_meshpose.md`` §2).

As EFT's ``eftFitter`` does:

* the **whole network** is fine-tuned by Adam (lr ``5e-6``, weight decay 0) — except
  BatchNorm (eval mode: running statistics used and never updated; affine weights frozen)
  and Dropout (off): ``exemplerTrainingMode`` (:func:`core.fitting.tto.set_exemplar_mode`);
* **per sample**: before each sample the weights *and* the Adam state are restored from the
  backup taken before the first sample (the caller's model is never modified);
* at most ``max_iters`` (20) iterations, stopping early when the 2D keypoint loss falls
  below ``threshold`` (1e-4);
* loss = ``60 × [5·L2D + 0.001·mean(β²) + mean(exp(−10 s)²) + 0.005·L_leg]`` where L2D is
  SPIN's confidence-weighted MSE on normalised crop coordinates with the OpenPose joints
  weighted 0 and the 24 GT joints 1; the GT hips and pelvis (25+2, 25+3, 25+14) are off
  unless ``with_hip``; the GT ankles (25+0, 25+5) feed only the leg-orientation term
  ``L_leg`` (1 − cos between target and predicted knee→ankle directions). No pose prior:
  the pretrained network is the prior.

Projection: EFT's code projects with a weak perspective ``s·X + t`` that differs from the
SPIN camera the network was trained with (``s·(X + t)``, eft#23). The default here,
``projection="spin"``, uses SPIN's crop camera (f = 5000), which is also what the Trace's
meshes and joints are drawn with; ``projection="eft"`` reproduces EFT's formula (the
Trace's 2D joints then follow it, its meshes still use the SPIN camera).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from core.models.shipped import weights_meta
from core.trace import Trace
from core.utils.fastpaths import fast_adam

from .losses import keypoint_loss_2d, leg_orientation_loss
from .tto import (ProgressFn, TTOResult, build_regressor, concat_rows, evaluate_regressor_state, prepare_tto_inputs,
                  regressor_forward, result_rows, run_on_method_inputs, set_exemplar_mode, tto_step, tto_trace,
                  tto_trace_meta, working_copy)

__all__ = ["EFTConfig", "EFTResult", "eft_targets", "eft_loss", "run_eft", "EFTMethod"]

# GT-joint indices in SPIN-49
_GT_HIPS_PELVIS = (25 + 2, 25 + 3, 25 + 14)
_GT_ANKLES = (25 + 0, 25 + 5)


@dataclass(frozen=True)
class EFTConfig:
    """EFT's settings (code defaults, fact sheet §2.2–2.3)."""

    lr: float = 5e-6
    max_iters: int = 20
    threshold: float = 1e-4
    with_hip: bool = False
    projection: str = "spin"
    keypoint_weight: float = 5.0
    beta_weight: float = 0.001
    cam_weight: float = 1.0
    leg_orientation_weight: float = 0.005
    loss_scale: float = 60.0
    openpose_weight: float = 0.0
    gt_weight: float = 1.0


def eft_targets(keypoints_norm: torch.Tensor, with_hip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(targets for L2D, targets for the leg-orientation term) from (B,49,3) normalised
    keypoints: the L2D copy has the ankles (and, unless ``with_hip``, GT hips and pelvis)
    switched off."""
    kp2d = keypoints_norm.clone()
    if not with_hip:
        kp2d[:, list(_GT_HIPS_PELVIS), 2] = 0.0
    kp2d[:, list(_GT_ANKLES), 2] = 0.0
    return kp2d, keypoints_norm


def eft_loss(state, joints2d_norm: torch.Tensor, target_2d: torch.Tensor, target_leg: torch.Tensor,
             cfg: EFTConfig) -> dict[str, torch.Tensor]:
    """EFT's loss terms per sample (B,): keypoints_2d (raw L2D), betas, cam,
    leg_orientation and the weighted ``total``."""
    l2d = keypoint_loss_2d(joints2d_norm, target_2d, cfg.openpose_weight, cfg.gt_weight)
    lbeta = (state.betas ** 2).mean(-1)
    lcam = torch.exp(-10.0 * state.cam[:, 0]) ** 2
    lleg = leg_orientation_loss(joints2d_norm, target_leg)
    total = cfg.loss_scale * (cfg.keypoint_weight * l2d + cfg.beta_weight * lbeta + cfg.cam_weight * lcam
                              + cfg.leg_orientation_weight * lleg)
    return {"keypoints_2d": l2d, "betas": lbeta, "cam": lcam, "leg_orientation": lleg, "total": total}


@dataclass
class EFTResult(TTOResult):
    """Per-sample EFT results (batch first): the :class:`~core.fitting.tto.TTOResult` fields
    (rotmats (B,24,3,3), betas (B,10), cam (B,3), transl (B,3), vertices (B,V,3) camera
    frame, joints2d (B,49,2); loss_2d_init/final (B,) raw 2D loss before fine-tuning and at
    the returned prediction), then iterations (B,) Adam steps taken; stop_reason per sample;
    warnings per sample; traces (one per sample when recorded); adapted_state_dicts (the
    fine-tuned weights per sample, when asked)."""

    iterations: torch.Tensor
    stop_reason: list
    warnings: list
    traces: list = field(default_factory=list)
    adapted_state_dicts: list = field(default_factory=list)


def _has_signal(t2d: torch.Tensor, tleg: torch.Tensor, cfg: EFTConfig) -> bool:
    """Whether any keypoint gets a non-zero weight in L2D or the leg term."""
    w = t2d[..., 2].clone()
    w[:, :25] *= cfg.openpose_weight
    w[:, 25:] *= cfg.gt_weight
    legs = tleg[:, [26, 25, 29, 30], 2] > 0
    return bool((w > 0).any()) or bool((legs[:, :2].all(1) | legs[:, 2:].all(1)).any())


def run_eft(model: nn.Module, crops, keypoints, config: EFTConfig = EFTConfig(), body=None,
            n_iter: Optional[int] = None, record: bool = True, return_adapted: bool = False,
            crops_uint8=None, progress: Optional[ProgressFn] = None, trace_meta: Optional[dict] = None) -> EFTResult:
    """Exemplar fine-tuning, one sample at a time.

    Args:
        model: HMR-like regressor (see :mod:`core.fitting.tto`); never modified.
        crops: (B, 224, 224, 3) uint8 RGB crops, or normalised (B, 3, 224, 224).
        keypoints: (B, 49, 3) SPIN-49 targets in crop pixels.
        config: :class:`EFTConfig`.
        body: body model (default ``model.body``).
        n_iter: IEF iterations (default: the model's).
        record: build one Trace per sample ("EFT 0" = the network's prediction, "EFT k" =
            after k Adam steps).
        return_adapted: keep each sample's fine-tuned state_dict (memory!).
        crops_uint8: crops to store in the Traces (default: ``crops`` when uint8).
    Returns:
        :class:`EFTResult`. Samples without enough keypoints are not fine-tuned (the
        network's prediction is returned, with a warning).
    """
    inp = prepare_tto_inputs(model, crops, keypoints, body, crops_uint8)
    body, images, prepared, B = inp.body, inp.images, inp.prepared, inp.batch_size
    t2d_all, tleg_all = eft_targets(inp.target_norm, config.with_hip)
    work, backup = working_copy(model)
    weights_trained = bool(getattr(model, "weights_trained", False))
    rows, l_init, l_final, iters, reasons, traces, adapted = [], [], [], [], [], [], []
    for b in range(B):
        work.load_state_dict(backup)                      # EFT's reloadModel(): weights ...
        set_exemplar_mode(work)
        params = [p for p in work.parameters() if p.requires_grad]
        opt = fast_adam(params, lr=config.lr, weight_decay=0.0)   # ... and a fresh Adam
        img = images[b:b + 1]
        t2d, tleg = t2d_all[b:b + 1], tleg_all[b:b + 1]
        kp_px = prepared.keypoints[b].detach().cpu().numpy()
        fittable = bool(prepared.fittable[b]) and _has_signal(t2d, tleg, config)
        steps = []
        reason = "max_iters"
        k = 0
        first = None
        while True:
            state = regressor_forward(work, img, n_iter)
            ev = evaluate_regressor_state(body, state, config.projection)
            terms = eft_loss(state, ev.joints2d_norm, t2d, tleg, config)
            l2d = float(terms["keypoints_2d"].detach())
            if first is None:
                first = l2d
            if record:
                label = "EFT 0 (network)" if k == 0 else f"EFT {k}/{config.max_iters}"
                steps.append(tto_step(label, body, state, 0, kp_px, {n: v[0] for n, v in terms.items()},
                                      {"iteration": k, "lr": config.lr}, config.projection))
            if not fittable:
                reason = "not_fitted"
                break
            if l2d < config.threshold:
                reason = "threshold"
                break
            if k == config.max_iters:
                break
            opt.zero_grad(set_to_none=True)
            terms["total"].sum().backward()
            opt.step()
            k += 1
            if progress is not None:
                progress((b + k / (config.max_iters + 1)) / B, f"EFT sample {b + 1}/{B}, step {k}")
        with torch.no_grad():
            st = state.detach()
            full = evaluate_regressor_state(body, st, config.projection, full_mesh=True)
        rows.append(result_rows(st, full, 0))
        l_init.append(first)
        l_final.append(l2d)
        iters.append(k)
        reasons.append(reason)
        if return_adapted:
            adapted.append({n: t.detach().clone() for n, t in work.state_dict().items()})
        if record:
            settings = {"lr": config.lr, "max_iters": config.max_iters, "threshold": config.threshold,
                        "projection": config.projection, "with_hip": config.with_hip, "iterations": k,
                        "stop_reason": reason, "per_sample_reset": True,
                        "frozen": "BatchNorm statistics and affine, Dropout off"}
            meta = tto_trace_meta(settings, weights_trained, prepared.warnings[b], trace_meta, "fine-tuning")
            traces.append(tto_trace("eft", body, inp.crop(b), kp_px, steps, meta))
    return EFTResult(**concat_rows(rows), loss_2d_init=torch.tensor(l_init), loss_2d_final=torch.tensor(l_final),
                     iterations=torch.tensor(iters), stop_reason=reasons, warnings=prepared.warnings,
                     traces=traces, adapted_state_dicts=adapted)


class EFTMethod:
    """``core.methods`` entry "eft": exemplar fine-tuning of an HMR regressor on the crop.

    Args:
        model: a ``core.models`` HMR-like model, or None to build ``create_model(arch,
            body)`` — with ``checkpoint`` loaded when given, else the shipped HMR weights
            on the open body (:mod:`core.models.shipped`), else untrained.
        checkpoint: SPIN-style official checkpoint (``.pt``) or project checkpoint
            (``.safetensors``) to load.
        body: "open" (default) / "smpl" (with ``smpl_dir``) / a BodyModel.
        arch: registry name for a new model ("hmr").
        config fields of :class:`EFTConfig` as keyword arguments (lr, max_iters, …).
    """

    def __init__(self, model=None, checkpoint=None, body="open", smpl_dir=None, arch: str = "hmr", **config):
        self.model = build_regressor(model, checkpoint, body, smpl_dir, arch, method="eft")
        self.config = EFTConfig(**config)

    def run(self, inputs, progress: Optional[ProgressFn] = None) -> Trace:
        return run_on_method_inputs("EFT", inputs, lambda crops, keypoints: run_eft(
            self.model, crops, keypoints, self.config, progress=progress, trace_meta=weights_meta(self.model)))


def _register() -> None:
    from core.methods import register_method

    register_method("eft", builder=EFTMethod, family="optimisation", needs=("keypoints",), overwrite=True,
                    description="EFT: exemplar fine-tuning of the HMR regressor on the crop's 2D keypoints "
                                "(Adam 5e-6, ≤20 steps, BN/Dropout frozen, per-sample reset)")


_register()

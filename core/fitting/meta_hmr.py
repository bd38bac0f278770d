"""Meta-HMR test-time optimisation (Nie et al., NeurIPS 2024), as its evaluation code does
it (fact sheet ``meta_eft_meshpose.md`` §1.6):

1. ``model_copy`` = a copy of the main network in **eval mode** (BatchNorm uses running
   statistics, Dropout off); an Adam optimiser (lr ``after_innerlr`` = 1e-5, β = (0.9, 0.999))
   over **all** its parameters. The auxiliary network is frozen (eval, no gradients).
2. **Step 0**: the full test-time loss ``L_test-u`` = 0.5·L1(V, V_aux) + 5·L2D +
   5·L3D(J[25:], J_aux[25:]) + 1·MSE(R, R_aux) + 0.001·MSE(β, β_aux) + exp(−10 s)² (not ×60;
   the pseudo-SMPL — vertices, 3D joints, rotations, betas — comes from the auxiliary
   network), then **one plain SGD step on the IEF head only** (lr ``inner_lr`` = 1e-5,
   first order).
3. **Steps 1 … 14**: the 2D keypoint loss only; Adam updates **all** parameters (backbone,
   head, BatchNorm affine weights — BN stays in eval mode).
4. Early stop (``adapt_val_step``): after an Adam step, stop if ``|L_prev − L_cur| < 2e-5``
   (both evaluated before their updates; at step 1, L_prev is the step-0 *full* loss).
5. A final forward pass gives the prediction.

Differences from the paper and the released code, kept or chosen here (§1.9):

* **per sample by default** (the code adapts and early-stops per *batch*, so its results
  depend on batch size and order); ``per_sample=False`` reproduces the per-batch behaviour.
* the code masks the pseudo terms with the test set's GT-availability flags
  (has_smpl / has_pose_3d); here there are no such flags: ``use_pseudo=True`` applies them.
* only the head is adapted at step 0 and everything afterwards (the paper speaks of
  adapting f_w); the auxiliary network is never trained at test time (nor, in the shipped
  recipe, against GT at training time).
* main and auxiliary networks may differ in IEF depth (Meta-HMR: 10 vs 3; build the main
  HMR with ``n_iter=10``). Without an auxiliary network a frozen copy of the main network
  is used, which makes the pseudo terms an anchor to the starting prediction (at step 0 the
  L1 vertex term then sits at its kink: its gradient is the sign of rounding noise).
* the 2D loss of steps ≥ 1 is ``keypoint_weight × L2D`` (5 × SPIN's keypoint loss); the
  sheet says "only the 2D keypoint loss" without the weight, which only changes what the
  2e-5 stop threshold means.
* crops are SPIN's 224×224 with its f = 5000 camera (Meta-HMR's HMR variant uses 256×192
  "rect" crops); CLIFF's full-frame variant is not implemented here.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from core.models.shipped import weights_meta
from core.trace import Trace
from core.utils.fastpaths import fast_adam

from .losses import keypoint_loss_2d
from .tto import (ProgressFn, TTOInputs, TTOResult, build_regressor, concat_rows, evaluate_regressor_state,
                  head_parameters, prepare_tto_inputs, regressor_forward, result_rows, run_on_method_inputs,
                  tto_step, tto_trace, tto_trace_meta, working_copy)

__all__ = ["MetaHMRConfig", "MetaHMRResult", "meta_test_loss", "run_meta_hmr", "MetaHMRMethod"]


@dataclass(frozen=True)
class MetaHMRConfig:
    """Meta-HMR's test-time settings (README evaluation flags, fact sheet §1.5–1.6)."""

    inner_lr: float = 1e-5
    after_innerlr: float = 1e-5
    test_val_step: int = 14
    adapt_val_step: bool = True
    stop_threshold: float = 2e-5
    per_sample: bool = True
    use_pseudo: bool = True
    vertex_weight: float = 0.5
    keypoint_weight: float = 5.0
    pose_weight: float = 1.0
    beta_weight: float = 0.001
    cam_weight: float = 1.0
    openpose_weight: float = 0.0
    gt_weight: float = 1.0


def _keypoint_3d_loss(joints: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SPIN's 3D keypoint loss on the 24 GT joints, both sets centred on the mid-hip
    (GT joints 2 and 3), MSE per sample. joints, target: (B, 24, 3) → (B,)."""
    pj = joints - 0.5 * (joints[:, 2:3] + joints[:, 3:4])
    tj = target - 0.5 * (target[:, 2:3] + target[:, 3:4])
    return ((pj - tj) ** 2).mean(dim=(1, 2))


def meta_test_loss(state, vertices: torch.Tensor, joints3d: torch.Tensor, joints2d_norm: torch.Tensor,
                   target_norm: torch.Tensor, aux_state, aux_vertices: torch.Tensor, aux_joints3d: torch.Tensor,
                   cfg: MetaHMRConfig) -> dict[str, torch.Tensor]:
    """``L_test-u`` terms per sample (B,) and the weighted ``total``.

    Args:
        state / aux_state: RegressorStates of the main and auxiliary networks.
        vertices, aux_vertices: (B, V, 3) body frame; joints3d, aux_joints3d: (B, 49, 3).
        joints2d_norm: (B, 49, 2) main projection; target_norm: (B, 49, 3).
    """
    l2d = keypoint_loss_2d(joints2d_norm, target_norm, cfg.openpose_weight, cfg.gt_weight)
    lcam = torch.exp(-10.0 * state.cam[:, 0]) ** 2
    terms = {"keypoints_2d": l2d, "cam": lcam}
    total = cfg.keypoint_weight * l2d + cfg.cam_weight * lcam
    if cfg.use_pseudo:
        terms["pseudo_vertices"] = (vertices - aux_vertices).abs().mean(dim=(1, 2))
        terms["pseudo_joints_3d"] = _keypoint_3d_loss(joints3d[:, 25:], aux_joints3d[:, 25:])
        terms["pseudo_pose"] = ((state.rotmat - aux_state.rotmat) ** 2).mean(dim=(1, 2, 3))
        terms["pseudo_betas"] = ((state.betas - aux_state.betas) ** 2).mean(-1)
        total = (total + cfg.vertex_weight * terms["pseudo_vertices"]
                 + cfg.keypoint_weight * terms["pseudo_joints_3d"] + cfg.pose_weight * terms["pseudo_pose"]
                 + cfg.beta_weight * terms["pseudo_betas"])
    terms["total"] = total
    return terms


@dataclass
class MetaHMRResult(TTOResult):
    """Per-sample results (batch first): the :class:`~core.fitting.tto.TTOResult` fields
    (rotmats (B,24,3,3), betas, cam, transl, vertices (B,V,3) camera frame, joints2d
    (B,49,2); loss_2d_init/final (B,) raw 2D loss of the network's prediction and of the
    result), then updates (B,) parameter updates applied (1 SGD + Adam steps); stop_reason,
    warnings per sample; traces; adapted_state_dicts."""

    updates: torch.Tensor
    stop_reason: list
    warnings: list
    traces: list = field(default_factory=list)
    adapted_state_dicts: list = field(default_factory=list)


def run_meta_hmr(model: nn.Module, crops, keypoints, aux_model: Optional[nn.Module] = None,
                 config: MetaHMRConfig = MetaHMRConfig(), body=None, main_n_iter: Optional[int] = None,
                 aux_n_iter: Optional[int] = None, record: bool = True, return_adapted: bool = False,
                 crops_uint8=None, progress: Optional[ProgressFn] = None,
                 trace_meta: Optional[dict] = None) -> MetaHMRResult:
    """Meta-HMR test-time optimisation (see module docstring).

    Args:
        model: main HMR-like regressor (never modified).
        crops: (B, 224, 224, 3) uint8 RGB or normalised (B, 3, 224, 224).
        keypoints: (B, 49, 3) SPIN-49 targets in crop pixels.
        aux_model: auxiliary regressor giving the pseudo-SMPL (default: a frozen copy of
            ``model``).
        config: :class:`MetaHMRConfig` (``per_sample`` chooses per-sample or per-batch).
        main_n_iter / aux_n_iter: IEF iterations (default: each model's own).
        record: one Trace per sample; step "TTO k" = the prediction after k updates
            (k = 0: the network; 1: after the head's SGD step; ≥ 2: after Adam steps). The
            first step carries the auxiliary network's pseudo-SMPL as maps
            (``aux_vertices`` (V,3) camera frame, ``aux_joints2d`` (49,2), ``aux_betas``,
            ``aux_global_orient``, ``aux_body_pose``).
        return_adapted: keep each group's adapted state_dict.
    """
    inp = prepare_tto_inputs(model, crops, keypoints, body, crops_uint8)
    body, images, prepared, target_norm, B = inp.body, inp.images, inp.prepared, inp.target_norm, inp.batch_size
    aux = copy.deepcopy(aux_model if aux_model is not None else model)
    aux.eval()
    for p in aux.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        aux_state = regressor_forward(aux, images, aux_n_iter).detach()
        aux_ev = evaluate_regressor_state(body, aux_state, "spin", full_mesh=True)
    work, backup = working_copy(model)
    head_names = set(head_parameters(work))
    weights_trained = bool(getattr(model, "weights_trained", False))
    groups = [[b] for b in range(B)] if config.per_sample else [list(range(B))]
    slots: dict[int, dict] = {}
    adapted = []
    for gi, group in enumerate(groups):
        idx = torch.tensor(group, device=images.device)
        img, tgt = images[idx], target_norm[idx]
        fittable = prepared.fittable[idx]
        a_state = type(aux_state)(*(t[idx] for t in (aux_state.pose6d, aux_state.betas, aux_state.cam,
                                                      aux_state.rotmat)))
        a_verts, a_joints = aux_ev.vertices[idx], aux_ev.joints3d[idx]
        work.load_state_dict(backup)
        work.eval()
        for p in work.parameters():
            p.requires_grad_(True)
        head = [p for n, p in work.named_parameters() if n in head_names]
        opt = fast_adam(work.parameters(), lr=config.after_innerlr, betas=(0.9, 0.999))
        records: list[tuple] = []     # (k, state, terms per sample)
        l_prev = None
        updates = 0
        reason = "max_steps"
        first_l2d = None
        active = bool(fittable.any())
        if not active:
            reason = "not_fitted"
        for in_step in range(config.test_val_step + 1):
            if not active:
                break
            state = regressor_forward(work, img, main_n_iter)
            if in_step == 0:
                ev = evaluate_regressor_state(body, state, "spin", full_mesh=True)
                terms = meta_test_loss(state, ev.vertices, ev.joints3d, ev.joints2d_norm, tgt, a_state,
                                       a_verts, a_joints, config)
                terms = {n: v * fittable.to(v.dtype) for n, v in terms.items()}
                loss = terms["total"].mean()
                first_l2d = terms["keypoints_2d"].detach()
                records.append((0, state.detach(), {n: v.detach() for n, v in terms.items()}))
                grads = torch.autograd.grad(loss, head, allow_unused=True)
                with torch.no_grad():
                    for p, g in zip(head, grads):
                        if g is not None:
                            p -= config.inner_lr * g
            else:
                ev = evaluate_regressor_state(body, state, "spin")
                l2d = keypoint_loss_2d(ev.joints2d_norm, tgt, config.openpose_weight, config.gt_weight)
                l2d = l2d * fittable.to(l2d.dtype)
                loss = config.keypoint_weight * l2d.mean()
                records.append((in_step, state.detach(), {"keypoints_2d": l2d.detach(),
                                                          "total": config.keypoint_weight * l2d.detach()}))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            updates += 1
            cur = float(loss.detach())
            if progress is not None:
                progress((gi + (in_step + 1) / (config.test_val_step + 2)) / len(groups),
                         f"Meta-HMR TTO step {in_step}")
            if (in_step > 0 and config.adapt_val_step and l_prev is not None
                    and abs(l_prev - cur) < config.stop_threshold):
                reason = "converged"
                break
            l_prev = cur
        with torch.no_grad():
            state = regressor_forward(work, img, main_n_iter).detach()
            ev = evaluate_regressor_state(body, state, "spin", full_mesh=True)
            l2d = keypoint_loss_2d(ev.joints2d_norm, tgt, config.openpose_weight, config.gt_weight)
        if first_l2d is None:
            first_l2d = l2d
        records.append((updates, state, {"keypoints_2d": l2d, "total": config.keypoint_weight * l2d}))
        if return_adapted:
            adapted.append({n: t.detach().clone() for n, t in work.state_dict().items()})
        for j, b in enumerate(group):
            slots[b] = {"state": state, "ev": ev, "j": j, "init": float(first_l2d[j]), "final": float(l2d[j]),
                        "updates": updates, "reason": reason if bool(fittable[j]) else "not_fitted",
                        "records": records}
    # assemble
    rows, traces = [], []
    for b in range(B):
        s = slots[b]
        j, st, ev = s["j"], s["state"], s["ev"]
        if s["reason"] == "not_fitted" and s["records"][0][0] == 0 and len(s["records"]) > 1:
            # per-batch mode: the others adapted the shared network; keep this one's start
            st = s["records"][0][1]
            with torch.no_grad():
                ev = evaluate_regressor_state(body, st, "spin", full_mesh=True)
            s["final"] = s["init"]
        rows.append(result_rows(st, ev, j))
        if record:
            traces.append(_trace(b, s, inp, aux_state, aux_ev, config, weights_trained, trace_meta))
    return MetaHMRResult(**concat_rows(rows), loss_2d_init=torch.tensor([slots[b]["init"] for b in range(B)]),
                         loss_2d_final=torch.tensor([slots[b]["final"] for b in range(B)]),
                         updates=torch.tensor([slots[b]["updates"] for b in range(B)]),
                         stop_reason=[slots[b]["reason"] for b in range(B)], warnings=prepared.warnings,
                         traces=traces, adapted_state_dicts=adapted)


def _trace(b, slot, inp: TTOInputs, aux_state, aux_ev, cfg, weights_trained, trace_meta) -> Trace:
    body = inp.body
    kp_px = inp.prepared.keypoints[b].detach().cpu().numpy()
    j = slot["j"]
    steps = []
    for k, state, terms in slot["records"]:
        label = "TTO 0 (network)" if k == 0 else f"TTO {k}"
        what = ("prediction of the network" if k == 0 else
                "after the inner SGD step on the head (full loss)" if k == 1 else
                f"after {k - 1} Adam step(s) on the 2D loss")
        maps = {}
        if k == 0:
            a_rot = aux_state.rotmat[b]
            maps = {"aux_vertices": (aux_ev.vertices[b] + aux_ev.transl[b]).cpu().numpy(),
                    "aux_joints2d": aux_ev.joints2d[b].cpu().numpy(), "aux_betas": aux_state.betas[b].cpu().numpy(),
                    "aux_global_orient": a_rot[:1].cpu().numpy(), "aux_body_pose": a_rot[1:].cpu().numpy()}
        steps.append(tto_step(label, body, state, j, kp_px, {n: v[j] for n, v in terms.items()},
                              {"updates": k, "what": what}, "spin", maps))
    settings = {"inner_lr": cfg.inner_lr, "after_innerlr": cfg.after_innerlr, "test_val_step": cfg.test_val_step,
                "stop_threshold": cfg.stop_threshold, "per_sample": cfg.per_sample, "use_pseudo": cfg.use_pseudo,
                "updates": slot["updates"], "stop_reason": slot["reason"],
                "aux_maps": "step 0 maps aux_* hold the auxiliary network's pseudo-SMPL"}
    meta = tto_trace_meta(settings, weights_trained, inp.prepared.warnings[b], trace_meta, "optimisation")
    return tto_trace("meta-hmr", body, inp.crop(b), kp_px, steps, meta)


class MetaHMRMethod:
    """``core.methods`` entry "meta-hmr".

    Args:
        model / aux_model: ``core.models`` HMR-like networks; None builds
            ``create_model(arch, body, n_iter=main_n_iter)`` (and the auxiliary with
            ``aux_n_iter``), loading ``checkpoint`` (a Meta-HMR checkpoint: ``model`` and
            ``model_aux`` entries) when given — untrained otherwise.
        body, smpl_dir, arch: as for EFT.
        config fields of :class:`MetaHMRConfig` as keyword arguments.
    """

    def __init__(self, model=None, aux_model=None, checkpoint=None, body="open", smpl_dir=None,
                 arch: str = "hmr", main_n_iter: int = 10, aux_n_iter: int = 3, **config):
        if model is None and checkpoint is not None:
            from core.models.checkpoints import extract_state_dict, meta_hmr_kind, read_checkpoint_file

            kind = meta_hmr_kind(extract_state_dict(read_checkpoint_file(checkpoint), "model", str(checkpoint))[0])
            if kind in ("cliff_resnet", "cliff_hrnet"):      # anything else: the strict load says what is wrong
                raise ValueError(
                    f"{checkpoint} holds Meta-HMR's {kind.replace('_', '-').upper()} network; the test-time "
                    f"optimisation here runs the HMR variants only (CLIFF's full-frame inputs are not wired into "
                    f"it). The CLIFF-ResNet networks load with core.models.load_meta_hmr_checkpoint into "
                    f"create_model('cliff_res50', n_iter=10 / 3).")
        if model is None:
            # without a Meta-HMR checkpoint, on the open body: the shipped HMR (plainly trained,
            # not meta-trained) is both the main network and the auxiliary one
            method = "meta-hmr" if checkpoint is None else None
            model = build_regressor(None, None, body, smpl_dir, arch, method=method, n_iter=main_n_iter)
            if aux_model is None:
                aux_model = build_regressor(None, None, model.body, None, arch, method=method, n_iter=aux_n_iter)
            if checkpoint is not None:
                from core.models import load_meta_hmr_checkpoint
                load_meta_hmr_checkpoint(model, checkpoint, "model")
                load_meta_hmr_checkpoint(aux_model, checkpoint, "model_aux")
        self.model, self.aux_model = model, aux_model
        self.config = MetaHMRConfig(**config)

    def run(self, inputs, progress: Optional[ProgressFn] = None) -> Trace:
        aux_meta = {"aux_weights_trained": bool(getattr(self.aux_model, "weights_trained", False)),
                    **weights_meta(self.model)}
        if "weights" in aux_meta:
            aux_meta["weights"] += " — a plainly trained HMR, not meta-trained; also the auxiliary network"
        return run_on_method_inputs("Meta-HMR", inputs, lambda crops, keypoints: run_meta_hmr(
            self.model, crops, keypoints, aux_model=self.aux_model, config=self.config, progress=progress,
            trace_meta=aux_meta))


def _register() -> None:
    from core.methods import register_method

    register_method("meta-hmr", builder=MetaHMRMethod, family="optimisation", needs=("keypoints",), overwrite=True,
                    description="Meta-HMR test-time optimisation: one SGD step on the head with the pseudo-SMPL "
                                "loss of the auxiliary network, then ≤14 Adam steps on the 2D keypoints")


_register()

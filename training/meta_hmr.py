"""Meta-HMR training (fact sheet ``meta_eft_meshpose.md`` §1.4–1.5): a main regressor f_w
learns to be a good start for test-time optimisation, with an auxiliary regressor f_u whose
"pseudo SMPL" supervises the inner (test-time) step.

One training step on a batch:

1. **Inner step** on the main network's IEF *head* (fc1, fc2, decpose, decshape, deccam;
   the backbone is not adapted): ``w' = w − α ∇_w L_inner`` with α = ``inner_lr`` (1e-5),
   ``L_inner = 0.5·L1(V_main, V_aux) + 5·L2D(main, GT 2D) + 5·L3D(J_main, J_aux)
   + 1·MSE(R_main, R_aux) + 0.001·MSE(β_main, β_aux) + exp(−10 s)²`` (not × 60). The
   pseudo terms are masked by the sample's GT flags (has_smpl / has_pose_3d), as the
   released code does (``pseudo_mask_by_gt_flags: false`` supervises every sample).
   - ``inner: per_sample`` (the paper): each sample j gets its own ``w'_j`` from its own
     loss. The head runs with per-sample weight copies ``(B, …)`` (batched matmuls), so one
     backward gives all per-sample gradients.
   - ``inner: per_batch`` (the released code, ``group_size = batch_size``): one ``w'`` from
     the batch-mean loss; the adapted head is run through
     ``torch.func.functional_call``.
   - ``first_order: true`` (README recipe): ∇L_inner is treated as a constant (FOMAML);
     ``false``: second order (``create_graph=True``) — the outer gradient flows through the
     inner gradient, into the backbone features and the auxiliary network.
2. **Outer step**: the main network with the adapted head against the ground truth,
   ``L_outer = 60·[0.5·L1(V, V_gt) + 5·L2D + 5·L3D + L_pose + 0.001·L_β + exp(−10 s)²]``;
   Adam with the main network at ``optim.lr`` (outer_lr 1e-4) and the auxiliary network at
   ``aux_lr`` (1e-6). As released, the auxiliary network gets gradients only through a
   second-order inner step; ``aux_supervised: true`` adds the paper's "L_train on the
   auxiliary network" (its own loss against the GT, × 60). The auxiliary network must be
   trained: either loaded (``aux_checkpoint``, e.g. the HMR recipe's result) or supervised
   alongside (``aux_supervised``, the default when no checkpoint is given; then at
   ``optim.lr``). An auxiliary network that gets no gradient (loaded, first order, not
   supervised) is frozen and left out of the optimiser, so DDP runs.

The head always runs in float32 (also under mixed precision) so the inner gradient does not
underflow. Main network: ``main_iters`` (10) IEF iterations; auxiliary: ``aux_iters`` (3),
initialised from ``aux_checkpoint`` (a project ``.safetensors`` or an official SPIN/HMR
checkpoint) when given.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from core.fitting.losses import keypoint_loss_2d
from core.fitting.tto import head_parameters
from core.models import HMR, RegressorState, evaluate_state

from .base import BaseModule
from .losses import Term, betas_loss, camera_loss, keypoint_3d_loss, reduce_terms, rotmat_loss, vertex_loss

__all__ = ["MetaHMRModule", "ief_functional", "HeadRunner", "inner_terms", "INNER_WEIGHTS"]

INNER_WEIGHTS = {"vertices": 0.5, "keypoint_2d": 5.0, "keypoint_3d": 5.0, "pose": 1.0, "betas": 0.001,
                 "camera": 1.0, "scale": 1.0}


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """x (B, I) with shared (O, I)/(O,) or per-sample (B, O, I)/(B, O) weights → (B, O)."""
    if weight.ndim == 3:
        return torch.einsum("bi,boi->bo", x, weight) + bias
    return F.linear(x, weight, bias)


def ief_functional(features: torch.Tensor, init: RegressorState, weights: dict, n_iter: int,
                   dropout: float = 0.5, training: bool = False) -> list[RegressorState]:
    """The IEF head of :class:`core.models.ief.IEFRegressor` with explicit weights.

    Args:
        features: (B, F). init: the starting state.
        weights: ``fc1.weight`` … ``deccam.bias``, each either the module's shape (shared
            by the batch) or with a leading batch dimension B (per-sample heads).
        n_iter: IEF iterations. dropout/training: as the module's Dropout layers.
    Returns:
        the state after every iteration.
    """
    state = init
    out = []
    for _ in range(n_iter):
        x = torch.cat([features, state.pose6d, state.betas, state.cam], dim=1)
        x = F.dropout(_linear(x, weights["fc1.weight"], weights["fc1.bias"]), dropout, training)
        x = F.dropout(_linear(x, weights["fc2.weight"], weights["fc2.bias"]), dropout, training)
        state = RegressorState.from_params(
            state.pose6d + _linear(x, weights["decpose.weight"], weights["decpose.bias"]),
            state.betas + _linear(x, weights["decshape.weight"], weights["decshape.bias"]),
            state.cam + _linear(x, weights["deccam.weight"], weights["deccam.bias"]))
        out.append(state)
    return out


class HeadRunner(nn.Module):
    """``forward(features, n_iter)`` = the regressor's own IEF head (``regressor.iterate``),
    so that ``torch.func.functional_call(runner, {"regressor.fc1.weight": w, …}, …)`` runs
    the head with substituted (e.g. adapted) parameters."""

    def __init__(self, regressor: nn.Module):
        super().__init__()
        self.regressor = regressor

    def forward(self, features: torch.Tensor, n_iter: int) -> list[RegressorState]:
        return self.regressor.iterate(features, n_iter)


def hmr_features(model: HMR, images: torch.Tensor) -> torch.Tensor:
    """(B, C) pooled backbone features of an HMR-family regressor."""
    from core.models.inputs import validate_images

    validate_images(images, model.input_size, "HMR")
    from core.models.backbones import pooled_features

    return pooled_features(model.backbone, images)


def inner_terms(main_state, main_mesh, aux_state, aux_mesh, keypoints: torch.Tensor, has_smpl: torch.Tensor,
                has_pose_3d: torch.Tensor, mask_by_flags: bool = True) -> dict[str, Term]:
    """Meta-HMR's test-time loss L_test-u as per-sample terms (main vs aux pseudo labels and
    the GT 2D keypoints)."""
    ones = torch.ones_like(has_smpl, dtype=torch.bool)
    m_smpl = has_smpl if mask_by_flags else ones
    m_3d = has_pose_3d if mask_by_flags else ones
    aux_j = torch.cat([aux_mesh.joints3d, torch.ones_like(aux_mesh.joints3d[..., :1])], -1)
    return {
        "vertices": Term(vertex_loss(main_mesh.vertices, aux_mesh.vertices), m_smpl),
        "keypoint_2d": Term(keypoint_loss_2d(main_mesh.joints2d_norm, keypoints)),
        "keypoint_3d": Term(keypoint_3d_loss(main_mesh.joints3d, aux_j), m_3d),
        "pose": Term(rotmat_loss(main_state.rotmat, aux_state.rotmat), m_smpl),
        "betas": Term(betas_loss(main_state.betas, aux_state.betas), m_smpl),
        "camera": Term(camera_loss(main_state.cam)),
    }


class MetaHMRModule(BaseModule):
    """``python -m training meta-hmr``."""

    OPTIONS = {
        "inner": "per_sample",          # per_sample (paper) | per_batch (released code)
        "first_order": True,            # README recipe (--first_order)
        "inner_lr": 1e-5,
        "aux_lr": 1e-6,
        "main_iters": 10,
        "aux_iters": 3,
        "aux_checkpoint": None,
        "aux_supervised": None,         # paper: L_train on the aux network too; None = only when
                                        # there is no aux_checkpoint (a random aux gives noise)
        "pseudo_mask_by_gt_flags": True,
    }

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        o = self.options
        if o["inner"] not in ("per_sample", "per_batch"):
            raise ValueError(f"method_options.inner must be 'per_sample' or 'per_batch', got {o['inner']!r}")
        self.model = self.build_regressor(n_iter=int(o["main_iters"]))
        self.aux = self.build_regressor(n_iter=int(o["aux_iters"]))
        if not isinstance(self.model, HMR):
            raise ValueError(f"Meta-HMR training supports the HMR family (hmr, hmr_resnet18, …), got "
                             f"{type(self.model).__name__}: CLIFF's full-frame camera is not wired into this trainer")
        if o["aux_checkpoint"]:
            self._load_aux(o["aux_checkpoint"])
        if o["aux_supervised"] is None:
            o["aux_supervised"] = not o["aux_checkpoint"]
        # the auxiliary network learns only from its own supervision or through a
        # second-order inner step; otherwise it is frozen and left out of the optimiser
        # (DDP refuses parameters that never get a gradient)
        self.aux_trainable = bool(o["aux_supervised"]) or not bool(o["first_order"])
        self.aux.requires_grad_(self.aux_trainable)
        if not o["aux_checkpoint"] and not o["aux_supervised"]:
            raise ValueError("Meta-HMR's auxiliary network gives the pseudo-SMPL targets of the inner step: load a "
                             "trained one (method_options.aux_checkpoint=FILE, e.g. the HMR recipe's "
                             "final.safetensors) or train it alongside (method_options.aux_supervised=true)")
        self.head_names = sorted(head_parameters(self.model))
        # not a registered submodule: its parameters are the main network's
        object.__setattr__(self, "runner", HeadRunner(self.model))

    def _load_aux(self, path) -> None:
        from core.models import load_official_checkpoint, load_project_checkpoint

        path = Path(path)
        if path.suffix == ".safetensors":
            loaded = load_project_checkpoint(path, body=self._body0)
            self.aux.load_state_dict(loaded.state_dict(), strict=True)
        else:
            load_official_checkpoint(self.aux, path)

    def configure_optimizers(self):
        o = self.cfg["optim"]
        groups = [{"params": list(self.model.parameters()), "lr": float(o["lr"])}]
        if self.aux_trainable:
            # a loaded aux network is fine-tuned at aux_lr; one trained from scratch at the main lr
            lr = float(self.options["aux_lr"]) if self.options["aux_checkpoint"] else float(o["lr"])
            groups.append({"params": list(self.aux.parameters()), "lr": lr})
        return torch.optim.Adam(groups, weight_decay=float(o["weight_decay"]))

    def exported_models(self):
        return {"final": self.model, "final_aux": self.aux}

    # ------------------------------------------------------------------ pieces
    def _mesh(self, state, body=None):
        return evaluate_state(body or self.body, state)       # full mesh: the vertex terms need it

    def run_head(self, features, weights: dict | None, per_sample: bool) -> RegressorState:
        """Final state of the main head with ``weights`` (None: the module's own)."""
        n_iter = int(self.options["main_iters"])
        init = self.model.initial_state(features.shape[0])
        if weights is None:
            return self.model.iterate(features, n_iter, init)[-1]
        if per_sample:
            return ief_functional(features, init, weights, n_iter, self.model.drop1.p, self.training)[-1]
        params = {f"regressor.{k}": v for k, v in weights.items()}
        return torch.func.functional_call(self.runner, params, (features, n_iter))[-1]

    def inner_adapt(self, features, batch, aux_state, aux_mesh):
        """The inner step: adapted head weights (per-sample (B, …) or shared) and the
        inner loss (batch mean, detached) for logging."""
        o = self.options
        per_sample = o["inner"] == "per_sample"
        second = not bool(o["first_order"])
        head = head_parameters(self.model)
        B = features.shape[0]
        base = {k: (v.unsqueeze(0).expand(B, *v.shape) if per_sample else v) for k, v in head.items()}
        state = self.run_head(features, base, per_sample)
        terms = inner_terms(state, self._mesh(state), aux_state, aux_mesh, batch["keypoints"],
                            batch["has_smpl"] > 0.5, batch["has_pose_3d"] > 0.5, bool(o["pseudo_mask_by_gt_flags"]))
        loss, _ = reduce_terms(terms, INNER_WEIGHTS, per_sample=per_sample)
        keys = self.head_names
        grads = torch.autograd.grad(loss.sum() if per_sample else loss, [base[k] for k in keys],
                                    create_graph=second, allow_unused=True)
        lr = float(o["inner_lr"])
        adapted = {}
        for k, g in zip(keys, grads):
            if g is None:
                g = torch.zeros_like(base[k])
            adapted[k] = base[k] - lr * (g if second else g.detach())
        return adapted, (loss.mean() if per_sample else loss).detach()

    def compute(self, batch):
        o = self.options
        per_sample = o["inner"] == "per_sample"
        second = not bool(o["first_order"])
        targets = self.targets(batch)
        features = hmr_features(self.model, batch["img"])
        aux_needs_grad = second or bool(o["aux_supervised"])
        with torch.set_grad_enabled(aux_needs_grad), self.fp32():
            aux_state = self.aux(batch["img"].float()).final
            aux_mesh = self._mesh(aux_state, self.aux.body)
        with self.fp32():
            features = features.float()
            adapted, inner = self.inner_adapt(features, batch, aux_state, aux_mesh)
            state = self.run_head(features, adapted, per_sample)
            mesh = self._mesh(state)
            loss, logs = self.supervise(state, mesh, targets)
            logs["inner_loss"] = inner
            if o["aux_supervised"]:
                aux_loss, aux_logs = self.supervise(aux_state, aux_mesh, targets, prefix="aux/")
                loss = loss + aux_loss
                logs.update(aux_logs)
        panel = None
        if self.panel_due():
            with torch.no_grad():
                panel = self.panel_rows(batch, state.detach(), self.mesh_of(state.detach(), full=True))
        return loss, logs, panel

    def need_vertices(self) -> bool:
        return True

    def predict_final(self, images):
        state = self.model(images).final
        return state, self.mesh_of(state, full=True)

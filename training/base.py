"""What every method's LightningModule shares: building the regressor on the configured body,
Adam, SPIN-style supervision of a regressor state, logging, image panels, validation and the
export of the trained network to the project's checkpoint format.
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytorch_lightning as pl
import torch

from core.body import load_body
from core.geometry import denormalize_image
from core.models import create_model, evaluate_state, save_checkpoint

from .losses import reduce_terms, regression_terms
from .targets import Targets, build_targets, keypoints_to_pixels
from .visualize import draw_keypoints, iuv_to_rgb, mesh_overlay

__all__ = ["BaseModule", "set_input_size", "EMPTY_IDS"]

EMPTY_IDS = torch.zeros(0, dtype=torch.long)
PANEL_TILE = 224


def set_input_size(model: torch.nn.Module, img_res: int) -> None:
    """Let a regressor take ``img_res``² crops (its backbone ends in a global pool; PyMAF's
    maps and IUV head scale with the input). The crop camera stays SPIN's 224 one: only the
    pixel grid changes, keypoints are normalised."""
    if hasattr(model, "input_size"):
        model.input_size = (int(img_res), int(img_res))


class BaseModule(pl.LightningModule):
    """Base of the method modules (see module docstring).

    Subclasses set ``OPTIONS`` (method options and defaults, overridable through the
    config's ``method_options``) and implement :meth:`compute` returning
    ``(loss, logs, panel_data)``.
    """

    OPTIONS: dict = {}

    def __init__(self, cfg: dict):
        super().__init__()
        self.save_hyperparameters({"cfg": cfg})
        self.cfg = cfg
        unknown = set(cfg.get("method_options", {})) - set(self.OPTIONS)
        if unknown:
            raise KeyError(f"unknown method_options {sorted(unknown)} for '{cfg['method']}'; "
                           f"valid: {sorted(self.OPTIONS)}")
        self.options = {**self.OPTIONS, **cfg.get("method_options", {})}
        self.loss_weights = dict(cfg["loss"])
        self._body0 = load_body(cfg["body"])

    # ------------------------------------------------------------------ helpers
    def build_regressor(self, name: str | None = None, **overrides) -> torch.nn.Module:
        spec = dict(self.cfg["model"])
        spec.update(overrides)
        model_name = name or spec.pop("name")
        spec.pop("name", None)
        model = create_model(model_name, body=self._body0, **spec)
        set_input_size(model, self.cfg["img_res"])
        if self.cfg.get("init_from") and name is None:
            from core.models import load_project_checkpoint

            start = load_project_checkpoint(self.cfg["init_from"], body=self._body0)
            if start.model_config.get("name") != model_name:
                raise ValueError(f"init_from {self.cfg['init_from']} holds a '{start.model_config.get('name')}' "
                                 f"model, this run trains '{model_name}'")
            model.load_state_dict(start.state_dict(), strict=True)
        return model

    @property
    def body(self):
        """The body on the module's device (the regressor keeps a converted copy)."""
        return self.model.body

    def need_vertices(self) -> bool:
        return float(self.loss_weights.get("vertices", 0.0)) > 0

    def fp32(self):
        """Context: autocast off (body model, losses and Meta-HMR's head run in float32
        under mixed precision)."""
        return torch.autocast(self.device.type, enabled=False)

    def mesh_of(self, state, full: bool | None = None):
        """MeshPrediction of a regressor state (joints only unless vertices are needed),
        computed in float32."""
        full = self.need_vertices() if full is None else full
        ids = None if full else EMPTY_IDS.to(state.cam.device)
        with self.fp32():
            st = type(state)(state.pose6d.float(), state.betas.float(), state.cam.float(), state.rotmat.float())
            return evaluate_state(self.body, st, vertex_ids=ids)

    def state_terms(self, state, mesh, targets: Targets) -> dict:
        with self.fp32():
            return regression_terms(mesh.joints2d_norm, mesh.joints3d, state.rotmat.float(), state.betas.float(),
                                    state.cam.float(), targets, self.loss_weights,
                                    mesh.vertices if self.need_vertices() else None)

    def supervise(self, state, mesh, targets: Targets, prefix: str = ""):
        """SPIN's weighted, ×scale loss of one state; returns (loss, logs)."""
        loss, parts = reduce_terms(self.state_terms(state, mesh, targets), self.loss_weights)
        return loss, {f"{prefix}{k}": v for k, v in parts.items()}

    def targets(self, batch, **kw) -> Targets:
        with self.fp32():
            return build_targets(self.body, batch, full_mesh=self.need_vertices(), **kw)

    # ------------------------------------------------------------------ Lightning
    def trunk(self) -> torch.nn.Module | None:
        """The model's pretrained image trunk: ``model.backbone`` (HMR, PyMAF, CLIFF), or its
        ``.trunk`` where the backbone wraps one with new layers (MeshPose's fused pyramids)."""
        backbone = getattr(self.model, "backbone", None)
        return getattr(backbone, "trunk", backbone)

    def backbone_frozen(self) -> bool:
        """``optim.backbone_lr: 0``: the pretrained trunk is not trained (eval mode, no
        gradients, not in the optimiser) — only the heads learn."""
        lr = self.cfg["optim"].get("backbone_lr")
        return lr is not None and float(lr) == 0.0 and self.trunk() is not None

    def trainable_trunk_parameters(self) -> list:
        """The trunk parameters trained at ``optim.backbone_lr``: all of them, or with
        ``optim.backbone_trainable: pooled_branch`` only those its pooled feature uses and its
        pyramid does not (BlazePose's regression branch: cheap to back-propagate through)."""
        which = self.cfg["optim"].get("backbone_trainable") or "all"
        trunk = self.trunk()
        if which == "all":
            return list(trunk.parameters())
        if which == "pooled_branch":
            if not hasattr(trunk, "pooled_branch_parameters"):
                raise ValueError(f"optim.backbone_trainable=pooled_branch needs a backbone with a separate pooled "
                                 f"branch (BlazePose), not {type(trunk).__name__}")
            return trunk.pooled_branch_parameters()
        raise ValueError(f"optim.backbone_trainable must be 'all' or 'pooled_branch', got {which!r}")

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and getattr(self, "model", None) is not None and self.backbone_frozen():
            self.trunk().eval()       # frozen batch-norm statistics too
        return self

    def configure_optimizers(self):
        optimizer = self._optimizer()
        o = self.cfg["optim"]
        schedule = o.get("schedule", "constant")
        if schedule == "constant":
            return optimizer
        if schedule != "cosine":
            raise ValueError(f"optim.schedule must be 'constant' or 'cosine', got {schedule!r}")
        total, floor = max(1, int(self.cfg["max_steps"])), float(o.get("final_lr_ratio", 0.1))

        def factor(step: int) -> float:
            t = min(step, total) / total
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _optimizer(self):
        o = self.cfg["optim"]
        lr, backbone_lr = float(o["lr"]), o.get("backbone_lr")
        trunk_module = self.trunk()
        if backbone_lr is None or trunk_module is None:
            return torch.optim.Adam(self.parameters(), lr=lr, weight_decay=float(o["weight_decay"]))
        trunk = {id(p) for p in trunk_module.parameters()}
        if self.backbone_frozen():
            trunk_module.requires_grad_(False)
            trunk_module.eval()
        rest = [p for p in self.parameters() if id(p) not in trunk and p.requires_grad]
        groups = [{"params": rest, "lr": lr}]
        if not self.backbone_frozen():
            tuned = self.trainable_trunk_parameters()
            keep = {id(p) for p in tuned}
            for p in trunk_module.parameters():     # the rest of the trunk is frozen
                p.requires_grad_(id(p) in keep)
            groups.append({"params": tuned, "lr": float(backbone_lr)})
        return torch.optim.Adam(groups, weight_decay=float(o["weight_decay"]))

    # ------------------------------------------------------------------ exact resume
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Store the global RNG states, so a resumed run draws the same dropout masks."""
        import random

        checkpoint["rng_states"] = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                                    "python": random.getstate(),
                                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._pending_rng = checkpoint.get("rng_states")

    def on_train_batch_start(self, batch, batch_idx):
        """Apply RNG states restored from a checkpoint right before the first step (loader
        start-up draws in between are thereby excluded)."""
        import random

        state = getattr(self, "_pending_rng", None)
        if state:
            torch.set_rng_state(state["torch"])
            np.random.set_state(state["numpy"])
            random.setstate(state["python"])
            if state.get("cuda") and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda"])
            self._pending_rng = None

    def panel_due(self) -> bool:
        every = int(self.cfg["logging"]["image_every"])
        return every > 0 and self.global_step % every == 0

    def training_step(self, batch, batch_idx):
        loss, logs, panel = self.compute(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite training loss at step {self.global_step}: "
                                     f"{ {k: float(v) for k, v in logs.items()} }")
        bs = batch["img"].shape[0]
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=bs)
        self.log_dict({f"train/{k}": float(v) for k, v in logs.items()}, batch_size=bs)
        return {"loss": loss, "panel": panel if self.panel_due() else None, "panel_step": int(self.global_step)}

    def compute(self, batch):  # pragma: no cover - abstract
        raise NotImplementedError

    def predict_final(self, images: torch.Tensor):
        """(state, MeshPrediction with the full mesh) of the final prediction, for
        validation, panels and evaluation."""
        raise NotImplementedError

    def validation_step(self, batch, batch_idx):
        from core.eval.metrics import mpjpe, pa_mpjpe

        state, mesh = self.predict_final(batch["img"])
        gt = batch["pose_3d"]
        pred = mesh.joints3d[:, 25:]
        pred = pred - pred[:, [2, 3]].mean(1, keepdim=True)
        gtc = gt[..., :3] - gt[:, [2, 3], :3].mean(1, keepdim=True)
        vis = gt[..., 3] > 0
        bs = gt.shape[0]
        self.log("val/mpjpe_j24_mm", 1000 * mpjpe(pred, gtc, vis).mean(), batch_size=bs, sync_dist=True)
        self.log("val/pa_mpjpe_j24_mm", 1000 * pa_mpjpe(pred, gtc, vis).mean(), batch_size=bs, sync_dist=True)

    # ------------------------------------------------------------------ panels
    def panel_rows(self, batch, state, mesh_full, iuv_pred=None, iuv_target=None, n: int | None = None) -> list:
        """Rows of images for the panel callback (detached, NumPy)."""
        n = min(int(self.cfg["logging"]["panel_samples"]) if n is None else n, batch["img"].shape[0])
        faces = np.asarray(self.body.faces)
        size = PANEL_TILE
        imgs = denormalize_image(batch["img"][:n].float().cpu())
        kp_gt = keypoints_to_pixels(batch["keypoints"][:n].float().cpu(), size).numpy()
        kp_pred = (mesh_full.joints2d_norm[:n].detach().float().cpu().numpy() + 1.0) * size / 2.0
        verts = (mesh_full.vertices[:n] + mesh_full.transl[:n, None]).detach().float().cpu().numpy()
        rows = []
        for i in range(n):
            big = np.ascontiguousarray(cv2.resize(imgs[i], (size, size), interpolation=cv2.INTER_LINEAR))
            row = [big, mesh_overlay(big, verts[i], faces)]
            k = draw_keypoints(big, kp_gt[i, 25:, :2], (0, 220, 0), conf=kp_gt[i, 25:, 2])
            row.append(draw_keypoints(k, kp_pred[i, 25:], (230, 30, 30)))
            if iuv_pred is not None:
                row.append(iuv_to_rgb(iuv_pred[0][i], iuv_pred[1][i]))
            if iuv_target is not None:
                row.append(iuv_to_rgb(iuv_target[0][i], iuv_target[1][i]))
            rows.append(row)
        return rows

    # ------------------------------------------------------------------ export
    def exported_models(self) -> dict[str, torch.nn.Module]:
        """file stem → network to export (``final`` is the method's model)."""
        return {"final": self.model}

    def export(self, out_dir, global_step: int | None = None) -> list[Path]:
        """Save the trained network(s) as ``<out_dir>/<stem>.safetensors`` (+ JSON)."""
        out = []
        step = int(self.global_step if global_step is None else global_step)
        info = {"method": self.cfg["method"], "global_step": step, "img_res": self.cfg["img_res"],
                "data": self.cfg["data"]["train"], "loss": self.cfg["loss"], "method_options": self.options}
        for stem, model in self.exported_models().items():
            model.weights_trained = True
            out.append(save_checkpoint(model, Path(out_dir) / f"{stem}.safetensors", config=info, trained=True))
        return out

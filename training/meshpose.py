"""MeshPose training (fact sheet ``meta_eft_meshpose.md`` §3.2–3.4; losses from
``core.models.meshpose.losses``, supplementary eq. 11):

``L = L_BL + L_consistency + 10·L_W + 0.1·L_V + L_E + 0.1·L_N + L_J + L_Is``

MeshPose works in pixel space (x, y crop pixels of the network input, z relative depth in
pixels), so each batch's ground truth is moved there: the GT (or pseudo-GT fit) mesh placed
with its crop camera (synthetic sets carry the exact camera; ``.npz`` sets use SPIN's
camera estimate), SPIN's f = 5000 for the 224 crop rescaled to the input size, root = the
pelvis (``core.models.meshpose.camera_to_pixel_space``). Then:

* VertexPose targets (``L_BL``, ``L_consistency``): dense per-pixel barycentric targets from
  ray casting the GT mesh at the score-map resolution (``target_from_body_hits``: each hit
  moved to the closest point of the same part's low-poly surface) — the synthetic data's
  stand-in for DensePose annotations;
* visibility target (``L_W``): the rendered per-vertex visibility of the low-poly vertices
  (visible and inside the crop; ``vertex_weight`` of synthetic samples, else
  ``core.render.vertex_visibility``);
* ``L_V``, ``L_E``, ``L_N``: fused low-poly vertices against the GT low-poly vertices;
* ``L_J``: the 24 GT keypoints (2D, confidence-weighted) against the joints of the upsampled
  mesh (``spin49_from_vertices``);
* ``L_Is``: the visibility-weighted soft silhouette of the fused low-poly mesh against the
  GT mask at the score-map resolution.

The upsampler (trained separately, ``training/meshpose_upsampler.py``) is frozen.
"""
from __future__ import annotations

import numpy as np
import torch

from core.geometry import FOCAL_LENGTH, IMG_RES
from core.models.meshpose import (MESHPOSE_LOSS_WEIGHTS, barycentric_cross_entropy, camera_to_pixel_space, decode_iuv,
                                  edge_loss, joint_loss, normal_loss, silhouette_loss, spin49_from_vertices,
                                  target_from_body_hits, uv_consistency_loss, vertex_loss, visibility_bce,
                                  visibility_colors, weighted_total)
from core.render.camera import spin_intrinsics
from core.render.raycast import raycast
from core.render.visibility import vertex_visibility

from .base import PANEL_TILE, BaseModule
from .targets import keypoints_to_pixels
from .visualize import draw_keypoints, iuv_to_rgb

__all__ = ["MeshPoseModule", "MeshPoseTargets"]


class MeshPoseTargets:
    """GT of a batch in MeshPose's pixel space (see module docstring)."""

    def __init__(self, low, full_px, vertex_target, visibility, mask, keypoints_px):
        self.low = low                      # (B, V, 3) GT low-poly vertices, pixel space
        self.full_px = full_px              # (B, N, 3) GT full mesh, pixel space
        self.vertex_target = vertex_target  # VertexTarget at the score-map resolution
        self.visibility = visibility        # (B, V) float in {0, 1}
        self.mask = mask                    # (B, h, w) float GT silhouette
        self.keypoints_px = keypoints_px    # (B, 49, 3) input pixels + conf


class MeshPoseModule(BaseModule):
    """``python -m training meshpose``."""

    OPTIONS = {
        "loss_weights": dict(MESHPOSE_LOSS_WEIGHTS),
        "silhouette_pad": 4,
        "use_gt_smpl": True,
    }

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        res = int(cfg["img_res"])
        if res % 4:
            raise ValueError(f"MeshPose needs img_res divisible by 4 (stride-4 maps), got {res}")
        self.model = self.build_regressor(input_size=(res, res))
        for p in self.model.upsampler.parameters():
            p.requires_grad_(False)
        self.res = res
        self.focal = FOCAL_LENGTH * res / IMG_RES
        weights = {**MESHPOSE_LOSS_WEIGHTS, **dict(self.options["loss_weights"])}
        unknown = set(weights) - set(MESHPOSE_LOSS_WEIGHTS)
        if unknown:
            raise KeyError(f"method_options.loss_weights: unknown terms {sorted(unknown)}; "
                           f"valid: {sorted(MESHPOSE_LOSS_WEIGHTS)}")
        self.mp_weights = weights

    def configure_optimizers(self):
        o = self.cfg["optim"]
        params = [p for p in self.model.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=float(o["lr"]), weight_decay=float(o["weight_decay"]))

    # ------------------------------------------------------------------ targets
    @torch.no_grad()
    def make_targets(self, batch, map_size) -> MeshPoseTargets:
        body, lp = self.body, self.model.lowpoly
        with self.fp32():
            t = self.targets(batch)          # GT (has_smpl) parameters and their camera
            out = body(betas=t.betas, body_pose=t.pose[:, 3:], global_orient=t.pose[:, :3])
            cam_verts = out.vertices + t.transl[:, None]
            root = out.smpl_joints[:, 0, 2] + t.transl[:, 2]
            c = (self.res / 2.0, self.res / 2.0)
            full_px = camera_to_pixel_space(cam_verts, self.focal, c, root)
        K224 = spin_intrinsics(FOCAL_LENGTH, IMG_RES)
        verts_np = cam_verts.float().cpu().numpy()
        hits = raycast(verts_np, body.faces, K224, IMG_RES, out_size=map_size, cull_back_faces=True)
        target = target_from_body_hits(lp, body, hits)
        ids = torch.as_tensor(lp.vertex_ids, device=cam_verts.device)
        if "vertex_weight" in batch and bool(self.options["use_gt_smpl"]):
            vis = batch["vertex_weight"][:, ids]
        else:
            vis = torch.as_tensor(vertex_visibility(verts_np, body.faces, K224, IMG_RES).weight,
                                  device=cam_verts.device)[:, ids]
        mask = torch.as_tensor(hits.mask.astype(np.float32), device=cam_verts.device)
        kp = keypoints_to_pixels(batch["keypoints"], self.res)
        dev = cam_verts.device
        target = type(target)(*(x.to(dev) for x in (target.pixels, target.vertex_ids, target.weights, target.part,
                                                     target.uv, target.valid)))
        return MeshPoseTargets(full_px[:, ids], full_px, target, vis.float(), mask, kp)

    # ------------------------------------------------------------------ step
    def loss_terms(self, out, tg: MeshPoseTargets, map_size) -> dict:
        lp = self.model.lowpoly
        stride = self.res / map_size[1]
        with self.fp32():
            scores = out.scores.float()
            fused = out.vertices.float()
            joints = spin49_from_vertices(self.body, out.full_vertices.float())[:, 25:, :2]
            terms = {
                "barycentric": barycentric_cross_entropy(scores, tg.vertex_target),
                "uv_consistency": uv_consistency_loss(scores, tg.vertex_target, lp),
                "visibility": visibility_bce(out.visibility_logits.float(), tg.visibility),
                "vertex": vertex_loss(fused, tg.low),
                "edge": edge_loss(fused, tg.low, lp.edges),
                "normal": normal_loss(fused, tg.low, lp.faces),
                "joint": joint_loss(joints, tg.keypoints_px[:, 25:, :2], tg.keypoints_px[:, 25:, 2]),
                "silhouette": silhouette_loss(fused[..., :2] / stride, lp.faces, out.visibility.float(), tg.mask,
                                              tuple(map_size), pad=int(self.options["silhouette_pad"])),
            }
        return terms

    def compute(self, batch):
        out = self.model(batch["img"])
        map_size = tuple(out.scores.shape[-2:])
        tg = self.make_targets(batch, map_size)
        terms = self.loss_terms(out, tg, map_size)
        loss = weighted_total({k: v for k, v in terms.items() if self.mp_weights[k] != 0}, self.mp_weights)
        logs = {k: v.detach() for k, v in terms.items()}
        logs["visibility_mean"] = out.visibility.detach().mean()
        panel = self.meshpose_panel(batch, out, tg) if self.panel_due() else None
        return loss, logs, panel

    @torch.no_grad()
    def meshpose_panel(self, batch, out, tg) -> list:
        import cv2

        from core.geometry import denormalize_image

        n = min(int(self.cfg["logging"]["panel_samples"]), batch["img"].shape[0])
        imgs = denormalize_image(batch["img"][:n].float().cpu())
        scale = PANEL_TILE / self.res
        low = out.vertices[:n].float().cpu().numpy() * scale
        vis = out.visibility[:n].float().cpu().numpy()
        dec = decode_iuv(out.scores[:n].float(), self.model.lowpoly)
        gt_part = tg.vertex_target.part[:n].reshape(n, *out.scores.shape[-2:]).cpu().numpy()
        joints = spin49_from_vertices(self.body, out.full_vertices[:n].float())[:, 25:, :2].cpu().numpy() * scale
        rows = []
        for i in range(n):
            big = np.ascontiguousarray(cv2.resize(imgs[i], (PANEL_TILE, PANEL_TILE), interpolation=cv2.INTER_LINEAR))
            colours = visibility_colors(vis[i])
            dots = big.copy()
            for (x, y), col in zip(low[i, :, :2], colours):
                if np.isfinite(x) and np.isfinite(y):
                    cv2.circle(dots, (int(round(x)), int(round(y))), 1, tuple(int(c) for c in col[:3]), -1)
            kp = draw_keypoints(big, tg.keypoints_px[i, 25:, :2].cpu().numpy() * scale, (0, 220, 0),
                                conf=tg.keypoints_px[i, 25:, 2].cpu().numpy())
            kp = draw_keypoints(kp, joints[i], (230, 30, 30))
            rows.append([big, dots, kp, iuv_to_rgb(dec.part[i].cpu().numpy(), dec.uv[i].permute(2, 0, 1).cpu().numpy()),
                         iuv_to_rgb(gt_part[i])])
        return rows

    def predict_final(self, images):
        raise NotImplementedError("MeshPose predicts pixel-space meshes (no body parameters); evaluate it with "
                                  "core.models.meshpose tools (IUV/2D metrics), not the 3D validation loop")

    def validation_step(self, batch, batch_idx):
        out = self.model(batch["img"])
        map_size = tuple(out.scores.shape[-2:])
        tg = self.make_targets(batch, map_size)
        terms = self.loss_terms(out, tg, map_size)
        bs = batch["img"].shape[0]
        self.log("val/vertex_px", terms["vertex"], batch_size=bs, sync_dist=True)
        self.log("val/joint_px", terms["joint"], batch_size=bs, sync_dist=True)

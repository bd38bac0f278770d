"""Evaluate a trained regressor on a SPIN ``.npz`` set or a held-out synthetic set.

    python -m training.eval --checkpoint runs/hmr/final.safetensors --data synthetic:data/synth_val --out results/hmr
    python -m training.eval --checkpoint ... --data npz:h36m_valid_protocol2.npz=datasets/h36m --protocol h36m
    python -m training.eval --checkpoint runs/meta_hmr/final.safetensors --aux-checkpoint runs/meta_hmr/final_aux.safetensors \
        --data synthetic:data/synth_val --tto meta-hmr --tto-steps 14          # error-vs-step curves
    python -m training.eval --checkpoint ... --data npz:lsp_dataset_test.npz=datasets/lsp \
        --annot-root datasets/upi-s1h --lsp-part-order 0,1,2,3,4,5,6           # LSP FG/BG + parts

Writes ``metrics.json`` and ``metrics.md`` (and with ``--tto``: ``curves.json``,
``curves.md``, ``curves.png``).

Metrics (``core.eval.metrics``; SPIN/PyMAF protocol, fact sheet ``spin_pymaf.md`` §4.3):

* 3D — predicted joints = ``J_regressor_h36m`` × predicted vertices, centred on its joint 0
  (pelvis), 14 joints (``H36M_TO_J14``; 17 with ``--protocol mpi-inf``). GT joints: the same
  regressor on the GT mesh where the sample has GT parameters (3DPW-style, synthetic data),
  else the annotated ``S`` (``J24_TO_J14``/``J24_TO_J17``). MPJPE and PA-MPJPE (mm); PVE
  (mm, no alignment) where a GT mesh exists; with ``mpi-inf`` PCK@150 mm and AUC.
* 2D — projected joints in the 224 crop: PCK@0.05 (of the crop side) on the 24 GT joints;
  COCO keypoint AP (OKS, COCO sigmas) on COCO-17 taken from the J24 joints; the object
  area is the GT mask area when the set has masks, else the area of the visible GT
  keypoints' bounding box.
* Segmentation and IUV (sets with rendered labels, i.e. synthetic) — the predicted mesh ray
  cast with the crop camera: FG/BG and LSP 6-part accuracy and mean F1 (224²), DensePose-
  style part accuracy, UV error and point similarity (56²); for PyMAF also its own IUV head.
* LSP segmentation (``.npz`` sets with ``maskname``/``partname``, SPIN's LSP protocol,
  :mod:`core.eval.lsp`) — the predicted mesh rendered at the 224 crop with SPIN's camera
  (f = 5000), un-cropped to the original image (nearest neighbour), scored against the
  annotation PNGs (``--annot-root``, default the image root; mask > 0 = foreground, parts
  0..6 with 255 ignored): FG/BG and 7-class accuracy and mean F1 over the whole set. Our
  6-part numbering is the project's own (``core/render/parts.py``); UP-S1h's may differ —
  ``--lsp-part-order`` maps ours to theirs (``order[our label]``, default identity).
* CLIFF — bbox info from the sample's box (center, scale) and the image size (read from the
  image header; the crop itself for synthetic sets), full-image focal = image diagonal
  (CLIFF's estimate), full-frame camera (``core.models.cliff.evaluate_state_full_frame``).
  The 3D metrics are camera-free; 2D keypoints are the full-frame projections mapped into
  the 224 crop; masks/parts are rendered with the full-image camera directly at the image
  size (no un-crop needed). Crops are square (``img_res``², the box side = 200·scale), not
  CLIFF's 256×192 "rect" crops: released CLIFF weights may score slightly differently.
* MeshPose — it predicts pixel-space vertices (crop pixels, depth in pixels) and no metric
  camera, so only Procrustes-aligned 3D metrics are reported: PA-MPJPE (H36M regressor on
  the upsampled full mesh, similarity-aligned to the GT joints) and PA-PVE (full mesh
  similarity-aligned to the GT mesh); un-aligned MPJPE/PVE would mix pixels and metres.
  2D: PCK/AP of the 49 joints regressed from the full mesh (``spin49_from_vertices``) in
  pixel space, rescaled to the 224 frame. Not yet: masks/IUV for MeshPose (its decoded IUV).
* TTO curves (``--tto eft|meta-hmr``): the same 3D metrics after every test-time step of
  ``core.fitting.eft.run_eft`` / ``core.fitting.meta_hmr.run_meta_hmr`` (early stopping off,
  so every sample runs all steps), averaged over the set — Meta-HMR's Fig. 3.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from core.body.joint_names import H36M_TO_J14, H36M_TO_J17, J24_TO_J14, J24_TO_J17, J24_TO_JCOCO
from core.eval.lsp import lsp_confusions, parse_part_order, read_label_image, render_label_maps, uncrop_labels
from core.eval.metrics import (SurfaceLookup, auc, confusion_matrix, iuv_scores, keypoint_ap, mpjpe, oks, pa_mpjpe,
                               pck, pve, segmentation_scores)
from core.geometry import FOCAL_LENGTH, IMG_RES
from core.models import evaluate_state
from core.models.body_ref import BodyHolder
from core.models.ief import IEFOutput, IEFRegressor
from core.render.camera import spin_intrinsics
from core.render.iuv import iuv_from_raycast
from core.render.parts import densepose_to_lsp6
from training.targets import keypoints_to_pixels

__all__ = ["load_regressor", "predict", "Evaluator", "tto_curves", "write_report", "main"]


class MeanPoseBaseline(BodyHolder, IEFRegressor):
    """The reference every learned model must beat: the body's mean pose and shape with its
    mean camera, whatever the image (``--checkpoint mean``)."""

    input_size = (IMG_RES, IMG_RES)

    def __init__(self, body):
        super().__init__(1, mean_params=body)
        self._set_body(body)
        self.weights_trained = False

    def forward(self, images: torch.Tensor) -> IEFOutput:
        B = images.shape[0]
        return IEFOutput([self.initial_state(B)], images.new_zeros(B, 1))


def load_regressor(path, body=None, img_res: int | None = None):
    """A project checkpoint → model in eval mode, taking ``img_res``² crops (default: the
    resolution it was trained at, from its description). ``path == "mean"``: the
    :class:`MeanPoseBaseline` of `body` (default the open body)."""
    from core.models import load_project_checkpoint

    if str(path) == "mean":
        from core.body import load_body

        return MeanPoseBaseline(body if body is not None else load_body("open")).eval()

    model = load_project_checkpoint(path, body=body)
    res = img_res or model.checkpoint_config.get("config", {}).get("img_res")
    if res and hasattr(model, "input_size"):
        model.input_size = (int(res), int(res))
    return model.eval()


def is_cliff(model) -> bool:
    from core.models.cliff import CLIFF

    return isinstance(model, CLIFF)


def cliff_inputs(batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(center (B, 2), scale (B,), img_size (B, 2) = (H, W), focal (B,) = image diagonal)
    of a batch (needs ``img_size``, added by the evaluation loader)."""
    if "img_size" not in batch:
        raise KeyError("CLIFF evaluation needs each sample's full image size ('img_size'); load the data through "
                       "training.eval's loader (python -m training.eval) which reads it from the image header")
    size = batch["img_size"].float()
    return batch["center"].float(), batch["scale"].float(), size, size.norm(dim=-1)


def full_frame_intrinsics(img_size: torch.Tensor, focal: torch.Tensor) -> np.ndarray:
    """(B, 3, 3) CLIFF's full-image camera: focal ``f``, principal point (W/2, H/2)."""
    B = img_size.shape[0]
    K = np.zeros((B, 3, 3))
    K[:, 0, 0] = K[:, 1, 1] = focal.double().numpy()
    K[:, 0, 2] = img_size[:, 1].double().numpy() / 2.0
    K[:, 1, 2] = img_size[:, 0].double().numpy() / 2.0
    K[:, 2, 2] = 1.0
    return K


def is_meshpose(model) -> bool:
    from core.models.meshpose import MeshPose

    return isinstance(model, MeshPose)


def predict(model, images: torch.Tensor, batch=None):
    """(final RegressorState, IUV prediction or None) of an HMR-family model, PyMAF or CLIFF
    (CLIFF needs ``batch`` for its bbox info, see :func:`cliff_inputs`)."""
    if is_cliff(model):
        from core.geometry import cliff_bbox_info

        if batch is None:
            raise ValueError("predict: CLIFF needs the batch (center, scale, img_size) for its bbox info")
        info = cliff_bbox_info(*cliff_inputs(batch)).to(images)
        return model(images, info).final, None
    out = model(images)
    if hasattr(out, "levels"):
        return out.final.state, out.iuv
    if hasattr(out, "final"):
        return out.final, None
    raise TypeError(f"evaluation supports HMR-family models, PyMAF, CLIFF and MeshPose, got {type(model).__name__}")


def _regress(reg: torch.Tensor, vertices: torch.Tensor, sel) -> torch.Tensor:
    j = torch.einsum("jv,bvc->bjc", reg, vertices)
    return (j - j[:, :1])[:, list(sel)]


class Evaluator:
    """Accumulates per-sample metrics over batches (see module docstring)."""

    def __init__(self, body, protocol: str = "h36m", surface: SurfaceLookup | None = None, render: bool = True,
                 lsp_part_order=None):
        if protocol not in ("h36m", "mpi-inf"):
            raise ValueError(f"protocol must be 'h36m' or 'mpi-inf', got {protocol!r}")
        self.body = body
        self.protocol = protocol
        self.reg = torch.as_tensor(np.asarray(body.regressor("h36m")), dtype=torch.float32)
        self.sel_pred = H36M_TO_J17 if protocol == "mpi-inf" else H36M_TO_J14
        self.sel_gt = J24_TO_J17 if protocol == "mpi-inf" else J24_TO_J14
        self.surface = surface
        self.render = render
        self.values: dict[str, list] = {}
        self.conf2 = np.zeros((2, 2), np.int64)
        self.conf7 = np.zeros((7, 7), np.int64)
        self.oks: list = []
        self.part_order = parse_part_order(lsp_part_order)

    def _add(self, name, values):
        v = values.detach().cpu().numpy() if torch.is_tensor(values) else np.asarray(values)
        self.values.setdefault(name, []).extend(np.asarray(v, np.float64).reshape(-1).tolist())

    # ------------------------------------------------------------------ 3D
    def gt_joints(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(GT joints (B, J, 3), mask (B, J), GT vertices (B, V, 3) or None)."""
        has_smpl = batch["has_smpl"] > 0.5
        B = has_smpl.shape[0]
        S = batch["pose_3d"][:, list(self.sel_gt)]
        joints = S[..., :3].clone()
        mask = (S[..., 3] > 0) & (batch["has_pose_3d"] > 0.5)[:, None]
        verts = None
        if bool(has_smpl.any()):
            with torch.no_grad():
                out = self.body(betas=batch["betas"], body_pose=batch["pose"][:, 3:], global_orient=batch["pose"][:, :3])
            verts = out.vertices
            jm = _regress(self.reg.to(verts), verts, self.sel_pred)
            joints = torch.where(has_smpl[:, None, None], jm, joints)
            mask = torch.where(has_smpl[:, None], torch.ones_like(mask), mask)
        return joints, mask.reshape(B, -1), verts

    def add_3d(self, prefix: str, pred_vertices: torch.Tensor, batch) -> None:
        gt, mask, gt_verts = self.gt_joints(batch)
        pred = _regress(self.reg.to(pred_vertices), pred_vertices, self.sel_pred)
        ok = mask.any(1)
        if ok.any():
            self._add(f"{prefix}mpjpe_mm", 1000 * mpjpe(pred[ok], gt[ok], mask[ok]))
            self._add(f"{prefix}pa_mpjpe_mm", 1000 * pa_mpjpe(pred[ok], gt[ok], mask[ok]))
            if self.protocol == "mpi-inf":
                self._add(f"{prefix}pck150", pck(pred[ok], gt[ok], 0.15, mask[ok]))
                self._add(f"{prefix}auc", auc(pred[ok], gt[ok], mask=mask[ok]))
        has = batch["has_smpl"] > 0.5
        if gt_verts is not None and bool(has.any()):
            self._add(f"{prefix}pve_mm", 1000 * pve(pred_vertices[has], gt_verts[has]))

    def add_3d_aligned(self, prefix: str, pred_vertices: torch.Tensor, batch) -> None:
        """Procrustes-aligned metrics only (for predictions without a metric camera, e.g.
        MeshPose's pixel-space mesh): PA-MPJPE (mm) and, with a GT mesh, PA-PVE (mm)."""
        from core.geometry import procrustes_align

        gt, mask, gt_verts = self.gt_joints(batch)
        pred = _regress(self.reg.to(pred_vertices), pred_vertices, self.sel_pred)
        ok = mask.any(1)
        if ok.any():
            self._add(f"{prefix}pa_mpjpe_mm", 1000 * pa_mpjpe(pred[ok], gt[ok], mask[ok]))
        has = batch["has_smpl"] > 0.5
        if gt_verts is not None and bool(has.any()):
            p, g = pred_vertices[has].double(), gt_verts[has].double()
            self._add(f"{prefix}pa_pve_mm", 1000 * pve(procrustes_align(p, g), g))

    # ------------------------------------------------------------------ 2D, masks, IUV
    def add_2d(self, joints2d_px: torch.Tensor, batch) -> None:
        gt = keypoints_to_pixels(batch["keypoints"])
        j24_pred, j24_gt = joints2d_px[:, 25:].double(), gt[:, 25:].double()
        vis = j24_gt[..., 2] > 0
        err = (j24_pred - j24_gt[..., :2]).norm(dim=-1)
        frac = ((err < 0.05 * IMG_RES) & vis).sum(1) / vis.sum(1).clamp(min=1)
        self._add("pck2d@0.05", frac[vis.any(1)])
        coco_gt = j24_gt[:, list(J24_TO_JCOCO)].numpy()
        coco_pred = j24_pred[:, list(J24_TO_JCOCO)].numpy()
        if "mask" in batch:
            area = batch["mask"].flatten(1).sum(1).double().numpy() * (IMG_RES / batch["mask"].shape[-1]) ** 2
        else:
            area = np.zeros(len(coco_gt))
            for i, g in enumerate(coco_gt):
                v = g[g[:, 2] > 0, :2]
                area[i] = np.prod(v.max(0) - v.min(0)) if len(v) > 1 else 0.0
        self.oks.extend(oks(coco_pred, coco_gt, area).tolist())

    def add_maps(self, prefix: str, vertices_cam: np.ndarray, batch, K: np.ndarray | None = None) -> None:
        """Synthetic sets: masks/parts (``part_full`` size) and IUV (``iuv_part`` size).
        ``K``: (B, 3, 3) cameras for the stored crop (default SPIN's crop camera)."""
        from core.data.render_labels import raycast_rasters

        full_gt = batch["part_full"].numpy()
        small_gt = batch["iuv_part"].numpy()
        sizes = [tuple(full_gt.shape[1:]), tuple(small_gt.shape[1:])]
        if K is None:
            K = np.broadcast_to(spin_intrinsics(FOCAL_LENGTH, IMG_RES), (len(vertices_cam), 3, 3))
            image_size = IMG_RES
        else:
            image_size = sizes[0]
        parts_full, parts_small, uv_small = [], [], []
        for v, k in zip(vertices_cam, K):
            hits = raycast_rasters(v, self.body.faces, np.ascontiguousarray(k), image_size, sizes,
                                   vertex_occlusion=False)
            full = iuv_from_raycast(hits[0], self.body.face_part, self.body.face_uv)
            small = iuv_from_raycast(hits[1], self.body.face_part, self.body.face_uv)
            parts_full.append(full.part[0])
            parts_small.append(small.part[0])
            uv_small.append(np.stack([small.u[0], small.v[0]]))
        pf = np.stack(parts_full)
        self.conf2 += confusion_matrix((pf > 0).astype(np.int64), (full_gt > 0).astype(np.int64), 2)
        self.conf7 += confusion_matrix(densepose_to_lsp6(pf), densepose_to_lsp6(full_gt), 7)
        self.add_iuv(prefix, np.stack(parts_small), np.stack(uv_small), small_gt, batch["iuv_uv"].numpy())

    def add_lsp(self, vertices_cam: np.ndarray, batch, K: np.ndarray | None = None) -> None:
        """LSP protocol (module docstring): (B, V, 3) camera-frame vertices; ``K`` None =
        SPIN's crop camera (render at 224, un-crop), else (B, 3, 3) full-image cameras
        (render at the image size). ``batch`` needs ``img_size`` and ``maskname`` and/or
        ``partname`` (full paths, added by the evaluation loader)."""
        masks, parts = batch.get("maskname"), batch.get("partname")
        for i, v in enumerate(vertices_cam):
            H, W = (int(x) for x in batch["img_size"][i])
            if K is None:
                fg, lsp = render_label_maps(v[None], self.body.faces, self.body.face_part, self.body.face_uv,
                                            spin_intrinsics(FOCAL_LENGTH, IMG_RES), (IMG_RES, IMG_RES))
                center, scale = batch["center"][i].double().numpy(), float(batch["scale"][i])
                rot = float(batch["rot"][i]) if "rot" in batch else 0.0
                lsp = uncrop_labels(lsp[0], center, scale, (H, W), rot)
                fg = lsp > 0
            else:
                fg, lsp = render_label_maps(v[None], self.body.faces, self.body.face_part, self.body.face_uv,
                                            K[i], (H, W))
                fg, lsp = fg[0], lsp[0]
            mask_gt = read_label_image(masks[i], (H, W)) if masks is not None else None
            part_gt = read_label_image(parts[i], (H, W)) if parts is not None else None
            c2, c7 = lsp_confusions(fg, lsp, mask_gt, part_gt, self.part_order)
            if c2 is not None:
                self.conf2 += c2
            if c7 is not None:
                self.conf7 += c7

    def add_iuv(self, prefix, part, uv, gt_part, gt_uv) -> None:
        s = iuv_scores(part, uv, gt_part, gt_uv, self.surface)
        for k, v in s.items():
            self._add(f"{prefix}{k}", v)

    # ------------------------------------------------------------------ batches
    @torch.no_grad()
    def add_batch(self, model, batch) -> None:
        """Predict on the model's device; score on the CPU (``batch`` stays on the CPU)."""
        device = next(model.parameters()).device
        if is_meshpose(model):
            from core.models.meshpose import spin49_from_vertices

            full = model(batch["img"].to(device), upsample=True).full_vertices.detach().float().cpu()
            full = full * (IMG_RES / model.input_size[1])         # crop pixels → the 224 frame
            self.add_3d_aligned("", full, batch)
            self.add_2d(spin49_from_vertices(self.body, full)[..., :2], batch)
            return
        state, iuv = predict(model, batch["img"].to(device), batch)
        state = type(state)(*(t.detach().float().cpu() for t in (state.pose6d, state.betas, state.cam, state.rotmat)))
        K = None
        if is_cliff(model):
            from core.models.cliff import evaluate_state_full_frame

            center, scale, size, focal = cliff_inputs(batch)
            mesh = evaluate_state_full_frame(self.body, state, center, scale, size, focal, (IMG_RES, IMG_RES))
            K = full_frame_intrinsics(size, focal)
        else:
            mesh = evaluate_state(self.body, state)
        self.add_3d("", mesh.vertices, batch)
        self.add_2d(mesh.joints2d, batch)
        verts_cam = (mesh.vertices + mesh.transl[:, None]).cpu().numpy()
        if self.render and ("maskname" in batch or "partname" in batch):
            self.add_lsp(verts_cam, batch, K)
        if self.render and "part_full" in batch:
            self.add_maps("iuv/", verts_cam, batch, K)
            if iuv is not None:
                size = tuple(iuv.part.shape[-2:])
                from training.pymaf import _resize_nearest

                gp = _resize_nearest(batch["iuv_part"], size).numpy()
                guv = _resize_nearest(batch["iuv_uv"], size).numpy()
                self.add_iuv("iuv_head/", iuv.part.cpu().numpy(), iuv.uv.float().cpu().numpy(), gp, guv)

    def summary(self) -> dict:
        out = {k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
               for k, v in sorted(self.values.items())}
        if self.oks:
            ap = keypoint_ap(self.oks)
            out.update({"keypoint_AP": ap["AP"], "keypoint_AP50": ap["AP50"], "keypoint_AP75": ap["AP75"]})
        if self.conf2.sum():
            s2 = segmentation_scores(self.conf2)
            out.update({"fgbg_accuracy": s2["accuracy"], "fgbg_f1": s2["mean_f1"]})
        if self.conf7.sum():
            s7 = segmentation_scores(self.conf7)
            out.update({"parts_accuracy": s7["accuracy"], "parts_f1": s7["mean_f1"]})
        out["num_samples"] = max((len(v) for v in self.values.values()), default=0)
        return out


# ----------------------------------------------------------------------------- TTO curves
def _trace_vertices(step) -> np.ndarray:
    return np.asarray(step.vertices) - np.asarray(step.params["transl"])[None]


def tto_curves(model, loader, evaluator_factory, method: str = "eft", steps: int = 14, aux=None,
               max_batches: int | None = None) -> dict:
    """Mean 3D metrics after each test-time step k = 0 … ``steps`` (see module docstring)."""
    per_step: list = [evaluator_factory() for _ in range(steps + 1)]
    for bi, batch in enumerate(loader):
        if max_batches is not None and bi >= max_batches:
            break
        kp = keypoints_to_pixels(batch["keypoints"])
        images = batch["img"].to(next(model.parameters()).device)
        if method == "eft":
            from core.fitting.eft import EFTConfig, run_eft

            res = run_eft(model, images, kp, EFTConfig(max_iters=steps, threshold=0.0), record=True)
        elif method == "meta-hmr":
            from core.fitting.meta_hmr import MetaHMRConfig, run_meta_hmr

            res = run_meta_hmr(model, images, kp, aux_model=aux,
                               config=MetaHMRConfig(test_val_step=max(steps - 1, 0), adapt_val_step=False),
                               record=True)
        else:
            raise ValueError(f"--tto must be 'eft' or 'meta-hmr', got {method!r}")
        for k in range(steps + 1):
            verts = np.stack([_trace_vertices(t.steps[min(k, len(t.steps) - 1)]) for t in res.traces])
            per_step[k].add_3d("", torch.as_tensor(verts, dtype=torch.float32), batch)
    curves: dict = {}
    for k, ev in enumerate(per_step):
        for name, value in ev.summary().items():
            if name != "num_samples":
                curves.setdefault(name, []).append(value)
    return {"method": method, "steps": list(range(steps + 1)), "curves": curves}


# ----------------------------------------------------------------------------- reports
def _markdown_table(rows: dict, title: str) -> str:
    lines = [f"## {title}", "", "| metric | value |", "|---|---|"]
    for k, v in rows.items():
        lines.append(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |")
    return "\n".join(lines) + "\n"


def write_report(out_dir, results: dict, curves: dict | None = None) -> list[Path]:
    """metrics.json + metrics.md (and curves.json/.md/.png) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "metrics.json", out / "metrics.md"]
    paths[0].write_text(json.dumps(results, indent=1) + "\n")
    head = {k: v for k, v in results.items() if k != "metrics"}
    md = f"# Evaluation\n\n```\n{json.dumps(head, indent=1)}\n```\n\n" + _markdown_table(results["metrics"], "Metrics")
    paths[1].write_text(md)
    if curves:
        (out / "curves.json").write_text(json.dumps(curves, indent=1) + "\n")
        names = [n for n in curves["curves"] if n.endswith("_mm")]
        lines = [f"# Error vs test-time step ({curves['method']})", "", "| step | " + " | ".join(names) + " |",
                 "|---|" + "---|" * len(names)]
        for i, k in enumerate(curves["steps"]):
            lines.append(f"| {k} | " + " | ".join(f"{curves['curves'][n][i]:.2f}" for n in names) + " |")
        (out / "curves.md").write_text("\n".join(lines) + "\n")
        paths += [out / "curves.json", out / "curves.md"]
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(5, 3.5))
            for n in names:
                ax.plot(curves["steps"], curves["curves"][n], marker="o", label=n)
            ax.set_xlabel("test-time step")
            ax.set_ylabel("mm")
            ax.set_title(f"{curves['method']}: error vs step")
            ax.legend()
            fig.tight_layout()
            fig.savefig(out / "curves.png", dpi=100)
            plt.close(fig)
            paths.append(out / "curves.png")
        except ImportError:
            pass
    return paths


def main(argv=None) -> int:
    from training.config import parse_data_spec
    from training.data import build_source

    ap = argparse.ArgumentParser(prog="python -m training.eval", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="project checkpoint (.safetensors) of a trained regressor, "
                    "or 'mean' for the mean-pose baseline")
    ap.add_argument("--data", required=True, help="synthetic:DIR or npz:FILE=IMG_ROOT")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--protocol", default="h36m", choices=["h36m", "mpi-inf"])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--img-res", type=int, help="crop size (default: the checkpoint's training resolution)")
    ap.add_argument("--max-samples", type=int, help="evaluate only the first N samples")
    ap.add_argument("--no-render", action="store_true", help="skip segmentation/IUV metrics")
    ap.add_argument("--annot-root", help="folder the npz's maskname/partname entries are relative to "
                                         "(LSP: the UP-S1h folder; default: the image root)")
    ap.add_argument("--lsp-part-order", help="our LSP labels 0..6 → the annotation's, comma-separated "
                                             "(order[our label]; 6 ids = parts 1..6); default identity")
    ap.add_argument("--tto", choices=["eft", "meta-hmr"], help="also compute error-vs-step curves")
    ap.add_argument("--tto-steps", type=int, default=14)
    ap.add_argument("--aux-checkpoint", help="Meta-HMR auxiliary network (default: a frozen copy of the main one)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)

    import copy

    model = load_regressor(args.checkpoint, img_res=args.img_res)
    body = copy.deepcopy(model.body)           # CPU copy for scoring
    model = model.to(args.device)
    res = model.input_size[0] if hasattr(model, "input_size") else IMG_RES
    if is_cliff(model):
        model.input_size = (res, res)         # square crops of the npz/synthetic box (module docstring)
    if args.tto and (is_cliff(model) or is_meshpose(model)):
        raise ValueError(f"--tto supports HMR-family models (EFT / Meta-HMR on crop cameras), not "
                         f"{type(model).__name__}")
    part_order = parse_part_order(args.lsp_part_order)
    sources = parse_data_spec(args.data)
    if len(sources) != 1:
        raise ValueError("--data: evaluate one source at a time")
    cfg = {"img_res": res, "augment": {"enabled": False, "synthetic_pixel_noise": 0.0}}
    dataset = build_source(sources[0], cfg, train=False)
    n = len(dataset) if args.max_samples is None else min(args.max_samples, len(dataset))
    annot_root = args.annot_root or sources[0].get("img_root")
    subset = torch.utils.data.Subset(_Indexed(dataset, annot_root), range(n))
    loader = DataLoader(subset, batch_size=args.batch_size, shuffle=False)
    surface = SurfaceLookup.from_body(body) if not args.no_render else None
    ev = Evaluator(body, args.protocol, surface, render=not args.no_render, lsp_part_order=part_order)
    for batch in loader:
        ev.add_batch(model, batch)
    results = {"checkpoint": str(args.checkpoint), "data": args.data, "protocol": args.protocol, "img_res": res,
               "model": type(model).__name__, "metrics": ev.summary()}
    if ev.conf7.sum():
        results["lsp_part_order"] = part_order.tolist()
    curves = None
    if args.tto:
        aux = load_regressor(args.aux_checkpoint, body=body, img_res=res).to(args.device) if args.aux_checkpoint else None
        curves = tto_curves(model, loader, lambda: Evaluator(body, args.protocol, render=False), args.tto,
                            args.tto_steps, aux)
    for p in write_report(args.out, results, curves):
        print(p)
    print(json.dumps(results["metrics"], indent=1))
    return 0


def image_size(path) -> tuple[int, int]:
    """(H, W) of an image file from its header (PIL reads only the header)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
    except (FileNotFoundError, OSError) as e:
        raise FileNotFoundError(f"cannot read the size of image {path}: {e}") from None
    return int(h), int(w)


class _Indexed(torch.utils.data.Dataset):
    """Deterministic, un-augmented view of a dataset with ``get(index, rng)``, adding what
    evaluation needs: ``img_size`` (H, W) of the full image, and for ``.npz`` sets with LSP
    annotations ``maskname``/``partname`` as paths under ``annot_root``."""

    def __init__(self, dataset, annot_root=None):
        self.dataset = dataset
        self.annot_root = Path(annot_root) if annot_root is not None else Path(".")

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        item = self.dataset.get(i, np.random.default_rng(i))
        ds = self.dataset
        if hasattr(ds, "stored_res"):                       # synthetic: the "full image" is the crop
            item["img_size"] = torch.tensor([ds.stored_res, ds.stored_res], dtype=torch.float32)
        elif hasattr(ds, "img_root"):                       # SPIN .npz
            item["img_size"] = torch.tensor(image_size(item["imgname"]), dtype=torch.float32)
            for key in ("maskname", "partname"):
                names = getattr(ds, key, None)
                if names is not None:
                    item[key] = str(self.annot_root / names[i])
        return item


if __name__ == "__main__":
    sys.exit(main())

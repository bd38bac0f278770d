"""Run a regressor on one crop and record what it did as a ``core.trace.Trace``.

One step per regression state, camera-frame vertices (body vertices + camera translation),
49 projected joints in crop pixels, and the method's own maps:

* HMR/SPIN: "mean", "IEF 1" … "IEF 3".
* PyMAF: "mean", "PyMAF level 0" … "PyMAF level 2"; maps per level: `sampling_points`
  (N, 2) crop px (21×21 grid at level 0, projected mesh-aligned vertices at levels 1–2),
  `sampled_vertex_ids` (N,), `feature_sum` (H, W) channel sum and `feature_pca` (H, W, 3)
  of the 256-channel map the level sampled; the last step adds `iuv` (56, 56, 3) =
  (part index 0–24, U, V) from the auxiliary head. Meshes are evaluated in full at every
  level here (the studio draws them); the model itself evaluates intermediate levels on the
  sampling vertices only.
* CLIFF: "mean", "IEF 1" … "IEF 3", placed with the full-image camera; the trace camera is
  that camera expressed in crop pixels (so a crop renderer needs nothing else).

Target keypoints (J, 3) in crop pixels (J = 49 SPIN order, or 24 "GT" joints) add a
`keypoints_2d_px` loss (mean pixel distance over confident joints) to every step.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from core.geometry import FOCAL_LENGTH, IMG_RES, cliff_bbox_info, normalize_image
from core.trace import Step, Trace

from .cliff import CLIFF, evaluate_state_full_frame
from .hmr import HMR
from .ief import RegressorState
from .prediction import MeshPrediction, evaluate_state
from .pymaf import PyMAF

__all__ = ["hmr_trace", "pymaf_trace", "cliff_trace", "keypoint_error_px", "crop_input", "trace_camera",
           "eval_mode"]


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module):
    """Run the ``with`` block with ``model`` in eval mode, then put back its train/eval mode
    (also when the block raises)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def keypoint_error_px(joints2d: np.ndarray, target: np.ndarray, min_conf: float = 0.0) -> float:
    """Mean distance (px) between predicted (49, 2) joints and target (J, 3) keypoints whose
    confidence > `min_conf`; J = 49 (SPIN order) or 24 (the GT joints 25–48). NaN if none."""
    target = np.asarray(target, dtype=np.float64)
    pred = np.asarray(joints2d, dtype=np.float64)
    if target.shape[0] == 24:
        pred = pred[25:]
    elif target.shape[0] != pred.shape[0]:
        raise ValueError(f"target keypoints: expected 49 (SPIN order) or 24 rows, got {target.shape[0]}")
    ok = target[:, 2] > min_conf
    if not ok.any():
        return float("nan")
    return float(np.linalg.norm(pred[ok] - target[ok, :2], axis=1).mean())


def crop_input(model, crop: np.ndarray) -> torch.Tensor:
    """One (H, W, 3) uint8 RGB crop of ``model.input_size`` → the (1, 3, H, W) normalised
    network input on the model's device and dtype (ValueError naming the fix otherwise)."""
    crop = np.asarray(crop)
    h, w = model.input_size
    if crop.dtype != np.uint8 or crop.shape != (h, w, 3):
        raise ValueError(f"{type(model).__name__} trace: expected an ({h}, {w}, 3) uint8 RGB crop, "
                         f"got {crop.shape} {crop.dtype} (crop with core.geometry.crop_image)")
    ref = next(model.parameters())
    return normalize_image(crop)[None].to(device=ref.device, dtype=ref.dtype)


def _step(label: str, state: RegressorState, mesh: MeshPrediction, target, maps=None, meta=None) -> Step:
    rot = state.rotmat[0]
    vertices = (mesh.vertices[0] + mesh.transl[0]).detach()
    j2d = mesh.joints2d[0].detach().cpu().numpy()
    losses = {}
    if target is not None:
        losses["keypoints_2d_px"] = keypoint_error_px(j2d, target)
    return Step(label,
                params={"global_orient": rot[:1], "body_pose": rot[1:], "betas": state.betas[0],
                        "cam": state.cam[0], "transl": mesh.transl[0], "pose6d": state.pose6d[0]},
                vertices=vertices, joints2d=j2d, losses=losses, maps=maps or {}, meta=meta or {})


def _trace_meta(model, extra: dict | None) -> dict:
    meta = {"model": getattr(model, "model_config", {}).get("name", type(model).__name__),
            "weights_trained": bool(getattr(model, "weights_trained", False))}
    if not meta["weights_trained"]:
        meta["warning"] = "untrained weights: the meshes show the architecture, not a result"
    if getattr(model, "backbone_pretrained", None):
        meta["backbone_pretrained"] = str(model.backbone_pretrained)
    meta.update(extra or {})
    return meta


def trace_camera(focal, center, img_res, bbox_center, bbox_scale, img_size) -> dict:
    """A Trace camera: crop ``focal`` (px), principal point ``center`` (2,) and ``img_res``,
    plus the box (``bbox_center`` (2,), ``bbox_scale``) and full ``img_size`` (H, W) when
    given."""
    cam = {"focal": np.float32(focal), "center": np.asarray(center, np.float32), "img_res": np.asarray(img_res)}
    if bbox_center is not None:
        cam["bbox_center"] = np.asarray(bbox_center, np.float32)
    if bbox_scale is not None:
        cam["bbox_scale"] = np.float32(bbox_scale)
    if img_size is not None:
        cam["img_size"] = np.asarray(img_size, np.float32)
    return cam


def _ief_steps(model, iterations: list, evaluate, target) -> list[Step]:
    """Steps "mean", "IEF 1" … "IEF n" of an IEF regressor: the mean state, then each of
    ``iterations``, placed by ``evaluate(state) -> MeshPrediction``."""
    states = [model.initial_state(1)] + list(iterations)
    labels = ["mean"] + [f"IEF {i + 1}" for i in range(len(iterations))]
    return [_step(lab, s, evaluate(s), target) for lab, s in zip(labels, states)]


def _require_body(model, name):
    if model.body is None:
        raise ValueError(f"{name} trace needs a body: create_model(..., body=load_body(...))")


@torch.no_grad()
def hmr_trace(model: HMR, crop: np.ndarray, target_keypoints=None, bbox_center=None, bbox_scale=None,
              img_size=None, meta: dict | None = None) -> Trace:
    """HMR/SPIN on one (224, 224, 3) uint8 crop → Trace ("mean", "IEF 1" … "IEF n")."""
    _require_body(model, "HMR")
    with eval_mode(model):
        out = model(crop_input(model, crop))
        steps = _ief_steps(model, out.iterations, lambda s: evaluate_state(model.body, s), target_keypoints)
    return Trace("hmr", crop=np.asarray(crop),
                 camera=trace_camera(FOCAL_LENGTH, (IMG_RES / 2, IMG_RES / 2), IMG_RES, bbox_center, bbox_scale,
                                     img_size),
                 steps=steps, body=model.body.name, target_keypoints=target_keypoints,
                 faces=model.body.faces, meta=_trace_meta(model, meta))


@torch.no_grad()
def pymaf_trace(model: PyMAF, crop: np.ndarray, target_keypoints=None, bbox_center=None, bbox_scale=None,
                img_size=None, meta: dict | None = None, with_maps: bool = True) -> Trace:
    """PyMAF on one (224, 224, 3) uint8 crop → Trace ("mean", "PyMAF level 0" … "level 2").

    with_maps: False skips what only makes maps — the IUV head and the feature-map summaries
    (the meshes are the same); the Trace says so in ``meta["skipped_outputs"]``."""
    _require_body(model, "PyMAF")
    with eval_mode(model):
        out = model(crop_input(model, crop), intermediate="full", with_summaries=with_maps, with_iuv=with_maps)
    if not with_maps:
        meta = {**(meta or {}), "skipped_outputs": "IUV head and feature-map summaries (no maps requested)"}
    steps = []
    for level in out.levels:
        maps = {}
        if level.sampling_points is not None:
            maps["sampling_points"] = level.sampling_points[0]
            if level.feature_summary is not None:
                maps["feature_sum"] = level.feature_summary.channel_sum[0]
                maps["feature_pca"] = level.feature_summary.pca[0]
        if level.sampled_vertex_ids is not None:
            maps["sampled_vertex_ids"] = level.sampled_vertex_ids.cpu().numpy().astype(np.int64)
        label = "mean" if level.label == "mean" else f"PyMAF {level.label}"
        step_meta = {}
        if level.feature_map is not None:
            step_meta["feature_map_size"] = int(level.feature_map.shape[-1])
        steps.append(_step(label, level.state, level.mesh, target_keypoints, maps, step_meta))
    if out.iuv is not None:
        uv = out.iuv.uv[0].clamp(0.0, 1.0)
        iuv = torch.cat([out.iuv.part[0, None].to(uv.dtype), uv], dim=0).permute(1, 2, 0)
        steps[-1].maps["iuv"] = iuv.cpu().numpy().astype(np.float32)
        steps[-1].meta["iuv_channels"] = "part index 0-24 (0 = background), U, V"
    return Trace("pymaf", crop=np.asarray(crop),
                 camera=trace_camera(FOCAL_LENGTH, (IMG_RES / 2, IMG_RES / 2), IMG_RES, bbox_center, bbox_scale,
                                     img_size),
                 steps=steps, body=model.body.name, target_keypoints=target_keypoints,
                 faces=model.body.faces, meta=_trace_meta(model, {"layout": model.layout, **(meta or {})}))


@torch.no_grad()
def cliff_trace(model: CLIFF, crop: np.ndarray, bbox_center, bbox_scale: float, img_size, focal: float | None = None,
                target_keypoints=None, meta: dict | None = None) -> Trace:
    """CLIFF on one uint8 crop of `model.input_size` (256×192 by default) → Trace.

    Args:
        bbox_center: (2,) box centre in the full image (px); bbox_scale: box height / 200.
        img_size: (H, W) of the full image; focal: full-image focal length (px), default
            the image diagonal (CLIFF's estimate).
    """
    _require_body(model, "CLIFF")
    H, W = float(img_size[0]), float(img_size[1])
    f = float(np.hypot(H, W)) if focal is None else float(focal)
    ref = next(model.parameters())
    as_t = lambda x: torch.as_tensor(np.asarray(x, np.float32), device=ref.device, dtype=ref.dtype)  # noqa: E731
    center, scale = as_t(bbox_center).reshape(1, 2), as_t(bbox_scale).reshape(1)
    size, focal_t = as_t([H, W]).reshape(1, 2), as_t(f).reshape(1)
    with eval_mode(model):
        out = model(crop_input(model, crop), cliff_bbox_info(center, scale, size, focal_t))
        steps = _ief_steps(model, out.iterations,
                           lambda s: evaluate_state_full_frame(model.body, s, center, scale, size, focal_t,
                                                               model.input_size), target_keypoints)
    crop_h, crop_w = model.input_size
    k = crop_h / (200.0 * float(bbox_scale))
    cx, cy = float(bbox_center[0]), float(bbox_center[1])
    center_crop = ((W / 2 - cx) * k + crop_w / 2, (H / 2 - cy) * k + crop_h / 2)
    camera = trace_camera(f * k, center_crop, np.array([crop_h, crop_w]), bbox_center, bbox_scale, img_size)
    camera["full_focal"] = np.float32(f)
    return Trace("cliff", crop=np.asarray(crop), camera=camera, steps=steps, body=model.body.name,
                 target_keypoints=target_keypoints, faces=model.body.faces,
                 meta=_trace_meta(model, {"camera": "full-image camera expressed in crop pixels",
                                          **(meta or {})}))

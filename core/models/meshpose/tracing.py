"""MeshPose on one crop → a ``core.trace.Trace``, and the ``meshpose`` method of ``core.methods``.

Steps (each with the upsampled full mesh in the camera frame and its 49 projected joints):

1. ``"Regression branch"`` — the regressed low-poly mesh (x, y, z);
2. ``"VertexPose"`` — VertexPose's (x, y) with the regressed depth; maps ``iuv`` (h, w, 3)
   decoded with barycentric UV aggregation, ``iuv_nearest`` and ``iuv_global_average`` (the
   paper's two baselines), ``foreground`` (h, w) vertex mass per pixel;
3. ``"MeshPose (fused)"`` — the visibility-weighted fusion; maps ``visibility`` (V,),
   ``visibility_colors`` (V, 3) uint8 green (w = 1, trust VertexPose) → red (w = 0, trust
   the regression), ``visibility_full`` (N,) and ``visibility_render`` (H, W, 3) uint8 (the
   full mesh rendered in the crop, coloured by visibility), ``vertexpose_xy``,
   ``regression_xy``, ``fused_xy`` (V, 2) crop pixels, ``lowpoly_faces`` (F, 3).

Every step also has ``lowpoly_vertices`` (V, 3, camera frame) and ``lowpoly_xy`` (V, 2).

Camera: MeshPose predicts pixel-space vertices (crop pixels, relative depth in pixels), no
camera. They are placed in SPIN's crop camera (f = 5000, centre of the crop) on their own
pixel rays (so they reproject exactly), at the root depth that gives the mesh the body
template's size (:func:`~.targets.estimate_root_depth`; an average-sized person is assumed).
The same depth is used for all three steps.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from core.geometry import FOCAL_LENGTH
from core.models.trace_adapters import crop_input, eval_mode, keypoint_error_px, trace_camera
from core.trace import Step, Trace

from .decoding import decode_iuv
from .model import MeshPose, spin49_from_vertices
from .targets import estimate_root_depth, pixel_space_to_camera

__all__ = ["meshpose_trace", "visibility_colors", "MeshPoseMethod", "build_meshpose_method"]


def visibility_colors(w: np.ndarray) -> np.ndarray:
    """(…,) visibility in [0, 1] → (…, 3) uint8 RGB: red (0) → green (1)
    (``core.render.colorize.visibility_colors``, imported on first use: ``core.render`` is
    not needed to import this package)."""
    from core.render.colorize import visibility_colors as colors

    return colors(w)


def _render_visibility(vertices_cam: np.ndarray, faces: np.ndarray, w: np.ndarray, K: np.ndarray,
                       size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8: the mesh coloured by per-vertex visibility (background black)."""
    from core.render.raycast import raycast

    hits = raycast(vertices_cam[None], faces, K, size)
    fid = hits.face_id[0]
    fg = fid >= 0
    img = np.zeros(size + (3,), np.uint8)
    if fg.any():
        wv = np.einsum("nk,nk->n", hits.bary[0][fg], w[faces[fid[fg]]])
        img[fg] = visibility_colors(wv)
    return img


def _keypoint_error(j2d: np.ndarray, target) -> dict:
    return {} if target is None else {"keypoints_2d_px": keypoint_error_px(j2d, target)}


@torch.no_grad()
def meshpose_trace(model: MeshPose, crop: np.ndarray, target_keypoints=None, bbox_center=None,
                   bbox_scale=None, img_size=None, meta: dict | None = None) -> Trace:
    """Run ``model`` on one (H, W, 3) uint8 RGB crop of ``model.input_size`` → Trace."""
    images = crop_input(model, crop)
    crop = np.asarray(crop)
    H, W = model.input_size
    with eval_mode(model):
        out = model(images, upsample=False)
    body, lp = model.body, model.lowpoly
    focal, center = float(FOCAL_LENGTH), (W / 2.0, H / 2.0)
    K = np.array([[focal, 0, center[0]], [0, focal, center[1]], [0, 0, 1.0]])
    root = estimate_root_depth(out.vertices, lp, body.v_template, focal)
    vis = out.visibility[0].cpu().numpy()
    iuv = {s: decode_iuv(out.scores, lp, s).stacked()[0].cpu().numpy()
           for s in ("barycentric", "nearest", "global_average")}
    fg = 1.0 - torch.softmax(out.scores, dim=1)[0, -1].cpu().numpy()

    def make_step(label, low_px, maps, step_meta):
        full_px = model.upsample(low_px)
        full_cam = pixel_space_to_camera(full_px, focal, center, root)
        low_cam = pixel_space_to_camera(low_px, focal, center, root)
        j_cam = spin49_from_vertices(body, full_cam)[0]
        j2d = (focal * j_cam[:, :2] / j_cam[:, 2:] + j_cam.new_tensor(center)).cpu().numpy()
        maps = {"lowpoly_vertices": low_cam[0], "lowpoly_xy": low_px[0, :, :2], **maps}
        return Step(label, vertices=full_cam[0], joints2d=j2d, losses=_keypoint_error(j2d, target_keypoints),
                    maps=maps, meta=step_meta), full_cam[0].cpu().numpy()

    reg = out.regression
    vp_low = torch.cat([out.vertexpose_xy, reg[..., 2:]], dim=-1)
    s1, _ = make_step("Regression branch", reg, {}, {"branch": "regression (x, y, z)"})
    s2, _ = make_step("VertexPose", vp_low, {
        "iuv": iuv["barycentric"], "iuv_nearest": iuv["nearest"], "iuv_global_average": iuv["global_average"],
        "foreground": fg.astype(np.float32)},
        {"branch": "VertexPose (x, y) + regressed z", "iuv_channels": "part index 0-24 (0 = background), U, V",
         "iuv_stride": float(W / out.scores.shape[-1])})
    vis_full = model.upsampler.layer2(model.upsampler.layer1(out.visibility[..., None]))[0, :, 0].clamp(0, 1)
    vis_full = vis_full.cpu().numpy()
    s3, full_cam = make_step("MeshPose (fused)", out.vertices, {}, {})
    s3.maps.update({
        "visibility": vis.astype(np.float32), "visibility_colors": visibility_colors(vis),
        "visibility_full": vis_full.astype(np.float32),
        "visibility_render": _render_visibility(full_cam, body.faces, vis_full, K, (H, W)),
        "vertexpose_xy": out.vertexpose_xy[0].cpu().numpy(), "regression_xy": reg[0, :, :2].cpu().numpy(),
        "fused_xy": out.vertices[0, :, :2].cpu().numpy(), "lowpoly_faces": lp.faces.astype(np.int64)})
    disagreement = (out.vertexpose_xy - reg[..., :2]).norm(dim=-1)[0]
    s3.meta.update({"mean_visibility": float(vis.mean()), "branch_disagreement_px": float(disagreement.mean()),
                    "colors": "green = visible (VertexPose), red = not visible (regression)"})
    steps = [s1, s2, s3]

    camera = trace_camera(focal, center, [H, W] if H != W else H, bbox_center, bbox_scale, img_size)
    trained = bool(getattr(model, "weights_trained", False))
    tmeta = {"model": getattr(model, "model_config", {}).get("name", "meshpose"), "backbone": model.backbone_name,
             "weights_trained": trained, "upsampler": model.upsampler_source,
             "lowpoly_vertices": lp.num_vertices, "root_depth_m": float(root[0]),
             "metres_per_pixel": float(root[0]) / focal,
             "camera": "pixel-space prediction placed on SPIN's crop camera at the root depth that gives "
                       "the template's size (average-sized person assumed)"}
    if not trained:
        tmeta["warning"] = "untrained weights: the meshes show the architecture, not a result"
    if getattr(model, "checkpoint_path", None):
        tmeta["checkpoint"] = str(model.checkpoint_path)
    tmeta.update(meta or {})
    return Trace("meshpose", crop=crop, camera=camera, steps=steps, body=body.name,
                 target_keypoints=target_keypoints, faces=body.faces, meta=tmeta)


class MeshPoseMethod:
    """The ``meshpose`` method: ``run(inputs, progress) → Trace`` (see :func:`meshpose_trace`).

    Args:
        backbone: "hrnet_w32" | "resnet50" | "mobilenet_v2" | "hrnet_w48" (ignored with a checkpoint).
        checkpoint: a project checkpoint (``core.models.save_checkpoint``) of a MeshPose model,
            or None (untrained weights; recorded in the Trace meta).
        device: torch device.
    """

    def __init__(self, backbone: str = "hrnet_w32", checkpoint: Optional[str] = None, device: str = "cpu",
                 body=None):
        from core.models.registry import create_model

        if checkpoint is not None:
            from core.models.checkpoints import load_project_checkpoint, read_project_config

            arch = read_project_config(checkpoint).get("architecture", "")
            if not arch.startswith("meshpose"):
                raise ValueError(f"{checkpoint} holds a {arch!r} model, not MeshPose")
            self.model = load_project_checkpoint(checkpoint, body=body)
            self.model.checkpoint_path = str(checkpoint)
        else:
            self.model = create_model("meshpose", body=body, backbone=backbone)
        self.model.to(device).eval()
        from core.models.inference import prepare_for_inference

        self.inference_prep = prepare_for_inference(self.model)

    def run(self, inputs, progress=None) -> Trace:
        from core.geometry import crop_image

        if progress:
            progress(0.0, "MeshPose: running the network")
        H, W = self.model.input_size
        crop = inputs.crop
        if crop.shape[:2] != (H, W):
            crop = crop_image(inputs.image, inputs.center, inputs.scale, (H, W))
        with torch.inference_mode():
            trace = meshpose_trace(self.model, crop, target_keypoints=inputs.keypoints if crop is inputs.crop else None,
                                   bbox_center=inputs.center, bbox_scale=inputs.scale,
                                   img_size=inputs.image.shape[:2])
        trace.meta["inference"] = self.inference_prep.describe()
        if progress:
            progress(1.0, "MeshPose: done")
        return trace


def build_meshpose_method(backbone: str = "hrnet_w32", checkpoint: Optional[str] = None, device: str = "cpu",
                          body=None) -> MeshPoseMethod:
    return MeshPoseMethod(backbone=backbone, checkpoint=checkpoint, device=device, body=body)

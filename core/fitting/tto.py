"""Shared pieces of test-time optimisation of a regressor (EFT, Meta-HMR).

A regressor here is a ``core.models`` HMR-like network: ``model(images)`` on (B, 3, 224, 224)
ImageNet-normalised crops returns an output with ``.final`` (a
:class:`~core.models.ief.RegressorState`: 6D pose, rotmats (B,24,3,3), betas (B,10),
weak-perspective cam (B,3)), and ``model.body`` is its ``core.body`` BodyModel. Its IEF head
is the modules ``fc1, fc2, decpose, decshape, deccam``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from core.geometry import FOCAL_LENGTH, IMG_RES, normalize_image, weak_perspective_to_translation
from core.methods import ProgressFn
from core.models.prediction import project_to_crop
from core.trace import Step, Trace
from core.utils.fastpaths import reference_active

from .keypoints import PreparedKeypoints, prepare_keypoints
from .losses import keypoint_pixel_error, normalize_keypoints

__all__ = ["HEAD_PREFIXES", "head_parameters", "set_exemplar_mode", "norm_and_dropout_modules",
           "as_network_input", "regressor_body", "StateEval", "evaluate_regressor_state",
           "weak_projection_norm", "tto_step", "bn_running_stats", "ProgressFn", "TTOInputs",
           "prepare_tto_inputs", "regressor_forward", "working_copy", "TTOResult", "result_rows",
           "concat_rows", "tto_trace_meta", "tto_trace", "run_on_method_inputs", "build_regressor"]

HEAD_PREFIXES = ("fc1.", "fc2.", "decpose.", "decshape.", "deccam.")


def head_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """name → parameter of the IEF regressor head (fc1, fc2, decpose, decshape, deccam)."""
    head = {n: p for n, p in model.named_parameters() if n.startswith(HEAD_PREFIXES)}
    if not head:
        raise ValueError(f"{type(model).__name__} has no IEF head parameters (names starting with "
                         f"{', '.join(HEAD_PREFIXES)}); Meta-HMR's inner step adapts that head")
    return head


def norm_and_dropout_modules(model: nn.Module) -> tuple[list[nn.Module], list[nn.Module]]:
    """(batch-norm modules, dropout modules) of a network."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    drops = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    return bns, drops


def set_exemplar_mode(model: nn.Module, freeze_bn_affine: bool = True) -> None:
    """EFT's ``exemplerTrainingMode``: train mode, but every BatchNorm in eval mode (running
    statistics used, never updated) with its affine weights frozen, and every Dropout in
    eval mode (off)."""
    model.train()
    bns, drops = norm_and_dropout_modules(model)
    for m in bns:
        m.eval()
        if freeze_bn_affine:
            for p in m.parameters(recurse=False):
                p.requires_grad_(False)
    for m in drops:
        m.eval()


def bn_running_stats(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every BatchNorm buffer (running_mean, running_var, num_batches_tracked)."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            for bname, buf in m.named_buffers(recurse=False):
                if buf is not None:
                    out[f"{name}.{bname}"] = buf.detach().clone()
    return out


def as_network_input(crops, model: nn.Module) -> torch.Tensor:
    """Crops → (B, 3, H, W) float on the model's device: uint8 (H, W, 3)/(B, H, W, 3) RGB
    (normalised here) or an already-normalised (B, 3, H, W) tensor."""
    ref = next(model.parameters())
    if torch.is_tensor(crops) and crops.ndim == 4 and crops.shape[1] == 3 and crops.is_floating_point():
        return crops.to(ref.device, ref.dtype)
    arr = np.asarray(crops.detach().cpu() if torch.is_tensor(crops) else crops)
    if arr.dtype != np.uint8 or arr.ndim not in (3, 4) or arr.shape[-1] != 3:
        raise ValueError(f"crops: expected uint8 RGB (H, W, 3) or (B, H, W, 3), or a normalised (B, 3, H, W) "
                         f"float tensor; got {arr.shape} {arr.dtype}")
    t = normalize_image(arr)
    if t.ndim == 3:
        t = t[None]
    return t.to(ref.device, ref.dtype)


def regressor_body(model: nn.Module, body=None):
    """The body to evaluate a regressor's parameters with (``body`` or ``model.body``)."""
    body = body if body is not None else model.__dict__.get("body", getattr(model, "body", None))
    if body is None:
        raise ValueError("test-time optimisation needs a body: build the regressor with "
                         "core.models.create_model(..., body=load_body('open')) or pass body=")
    return body


@dataclass
class StateEval:
    """A regressor state evaluated on the crop: joints3d (B,49,3) body frame, joints2d
    (B,49,2) crop pixels, joints2d_norm (B,49,2), transl (B,3), vertices (B,V,3) body frame
    or None."""

    joints3d: torch.Tensor
    joints2d: torch.Tensor
    joints2d_norm: torch.Tensor
    transl: torch.Tensor
    vertices: Optional[torch.Tensor]


def weak_projection_norm(points: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """EFT's weak perspective in normalised crop coordinates: ``s · X_xy + (tx, ty)``
    (issue facebookresearch/eft#23: not SPIN's ``s · (X_xy + t)``). (B,N,3), (B,3) → (B,N,2)."""
    return cam[:, None, :1] * points[..., :2] + cam[:, None, 1:]


def evaluate_regressor_state(body, state, projection: str = "spin", full_mesh: bool = False,
                             focal: float = FOCAL_LENGTH, img_res: int = IMG_RES) -> StateEval:
    """Evaluate a RegressorState: joints (always), vertices (``full_mesh``), 2D joints with
    SPIN's perspective crop camera (``projection="spin"``) or EFT's weak perspective
    (``"eft"``)."""
    rot = state.rotmat
    if full_mesh:
        out = body(betas=state.betas, body_pose=rot[:, 1:], global_orient=rot[:, :1])
    elif reference_active():          # the path before the joints-only evaluator (benchmarks)
        out = body(betas=state.betas, body_pose=rot[:, 1:], global_orient=rot[:, :1],
                   vertex_ids=torch.zeros(0, dtype=torch.long, device=rot.device), return_vertices=False)
    else:
        out = body.joints_only().from_rotmats(state.betas, rot)
    if projection == "spin":
        px, norm, transl = project_to_crop(out.joints, state.cam, focal, img_res)
    elif projection == "eft":
        transl = weak_perspective_to_translation(state.cam, focal, img_res)
        half = img_res / 2.0
        norm = weak_projection_norm(out.joints, state.cam)
        px = norm * half + half
    else:
        raise ValueError(f"projection must be 'spin' or 'eft', got {projection!r}")
    return StateEval(out.joints, px, norm, transl, out.vertices if full_mesh else None)


def tto_step(label: str, body, state, index: int, target_px: np.ndarray, losses: dict, meta: dict,
             projection: str = "spin", maps: Optional[dict] = None) -> Step:
    """A Trace step for sample ``index`` of a regressor state: full mesh in the camera frame
    (SPIN's crop camera), projected joints, losses + ``keypoints_2d_px``."""
    with torch.no_grad():
        st = type(state)(state.pose6d[index:index + 1].detach(), state.betas[index:index + 1].detach(),
                         state.cam[index:index + 1].detach(), state.rotmat[index:index + 1].detach())
        ev = evaluate_regressor_state(body, st, projection=projection, full_mesh=True)
    j2d = ev.joints2d[0].cpu().numpy()
    losses = {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in losses.items()}
    losses["keypoints_2d_px"] = keypoint_pixel_error(j2d, target_px)
    rot = st.rotmat[0].cpu().numpy()
    return Step(label, params={"global_orient": rot[:1], "body_pose": rot[1:], "betas": st.betas[0],
                               "cam": st.cam[0], "transl": ev.transl[0], "pose6d": st.pose6d[0]},
                vertices=(ev.vertices[0] + ev.transl[0]).cpu().numpy(), joints2d=j2d, losses=losses,
                maps=maps or {}, meta=meta)


@dataclass
class TTOInputs:
    """A batch checked and prepared for test-time optimisation.

    body: the BodyModel to evaluate with; images: (B, 3, 224, 224) network input;
    prepared: the cleaned keypoints ((B, 49, 3) crop pixels, fittable (B,), warnings);
    target_norm: (B, 49, 3) normalised targets; crops_uint8: (B, 224, 224, 3) uint8 crops to
    store in the Traces, or None.
    """

    body: object
    images: torch.Tensor
    prepared: PreparedKeypoints
    target_norm: torch.Tensor
    crops_uint8: Optional[np.ndarray]

    @property
    def batch_size(self) -> int:
        return self.images.shape[0]

    def crop(self, index: int) -> Optional[np.ndarray]:
        """Sample ``index``'s (224, 224, 3) uint8 crop for its Trace, or None."""
        return None if self.crops_uint8 is None else np.asarray(self.crops_uint8[index])


def prepare_tto_inputs(model: nn.Module, crops, keypoints, body=None, crops_uint8=None) -> TTOInputs:
    """Check and prepare a TTO run's inputs: the body (``body`` or ``model.body``), the
    network input (see :func:`as_network_input`), the keypoints (see
    :func:`core.fitting.keypoints.prepare_keypoints`; one (49, 3) set per crop), their
    normalised targets, and the uint8 crops for the Traces (``crops_uint8``, else ``crops``
    when they are not a tensor)."""
    body = regressor_body(model, body)
    images = as_network_input(crops, model)
    B = images.shape[0]
    prepared = prepare_keypoints(keypoints, img_res=IMG_RES, dtype=images.dtype, device=images.device)
    if prepared.keypoints.shape[0] != B:
        raise ValueError(f"{B} crops but {prepared.keypoints.shape[0]} keypoint sets")
    if crops_uint8 is None and not torch.is_tensor(crops):
        arr = np.asarray(crops)
        crops_uint8 = arr[None] if arr.ndim == 3 else arr
    return TTOInputs(body, images, prepared, normalize_keypoints(prepared.keypoints, IMG_RES), crops_uint8)


def regressor_forward(model: nn.Module, images: torch.Tensor, n_iter: Optional[int] = None):
    """The regressor's final RegressorState on (B, 3, H, W) images (``n_iter`` IEF
    iterations, default the model's own)."""
    return (model(images) if n_iter is None else model(images, n_iter=n_iter)).final


def working_copy(model: nn.Module) -> tuple[nn.Module, dict]:
    """(a deep copy of ``model`` to optimise, a backup of its state_dict to restore it from);
    the caller's model is never modified."""
    work = copy.deepcopy(model)
    return work, copy.deepcopy(work.state_dict())


@dataclass
class TTOResult:
    """Per-sample results of a test-time optimisation (batch first): rotmats (B,24,3,3),
    betas (B,10), cam (B,3), transl (B,3), vertices (B,V,3) camera frame, joints2d (B,49,2)
    crop pixels; loss_2d_init / loss_2d_final (B,) raw 2D keypoint loss of the network's
    prediction and of the returned one. Subclasses add their own fields."""

    rotmats: torch.Tensor
    betas: torch.Tensor
    cam: torch.Tensor
    transl: torch.Tensor
    vertices: torch.Tensor
    joints2d: torch.Tensor
    loss_2d_init: torch.Tensor
    loss_2d_final: torch.Tensor


def result_rows(state, ev: StateEval, index: int) -> dict[str, torch.Tensor]:
    """Sample ``index`` of an evaluated state as (1, …) rows of :class:`TTOResult`'s tensor
    fields (``ev`` evaluated with ``full_mesh=True``; vertices moved to the camera frame)."""
    rows = slice(index, index + 1)
    return {"rotmats": state.rotmat[rows], "betas": state.betas[rows], "cam": state.cam[rows],
            "transl": ev.transl[rows], "vertices": (ev.vertices + ev.transl[:, None])[rows],
            "joints2d": ev.joints2d[rows]}


def concat_rows(rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Per-sample :func:`result_rows` → batched tensors (B, …), in order."""
    return {k: torch.cat([r[k] for r in rows]) for k in rows[0]}


def tto_trace_meta(settings: dict, weights_trained: bool, input_warnings: list, trace_meta: Optional[dict],
                   what: str) -> dict:
    """A TTO Trace's meta: ``weights_trained``, the method's ``settings``, a warning when the
    weights are untrained (``what`` starts from noise), the sample's input warnings, then
    the caller's ``trace_meta``."""
    meta = {"weights_trained": weights_trained, **settings}
    if not weights_trained:
        meta["warning"] = f"untrained regressor weights: the {what} starts from noise"
    if input_warnings:
        meta["input_warning"] = "; ".join(input_warnings)
    meta.update(trace_meta or {})
    return meta


def tto_trace(method: str, body, crop: Optional[np.ndarray], target_px: np.ndarray, steps: list,
              meta: dict) -> Trace:
    """A TTO Trace on SPIN's crop camera (f = 5000, 224 px): ``target_px`` (49, 3) crop-pixel
    target keypoints, ``crop`` (224, 224, 3) uint8 or None."""
    return Trace(method, crop=crop, camera={"focal": np.float32(FOCAL_LENGTH),
                                            "center": np.full(2, IMG_RES / 2, np.float32),
                                            "img_res": np.asarray(IMG_RES)},
                 steps=steps, body=body.name, target_keypoints=target_px.astype(np.float32), faces=body.faces,
                 meta=meta)


def run_on_method_inputs(name: str, inputs, fit: Callable) -> Trace:
    """A TTO method's ``run``: ``fit(crops (1, 224, 224, 3), keypoints (1, 49, 3))`` on a
    ``core.methods.MethodInputs`` → its first Trace, with the box and image size added to
    the Trace camera."""
    if inputs.keypoints is None:
        raise ValueError(f"{name} needs 2D keypoints (MethodInputs.keypoints, SPIN-49 in crop pixels)")
    trace = fit(inputs.crop[None], inputs.keypoints[None]).traces[0]
    trace.camera.update({"bbox_center": np.asarray(inputs.center, np.float32),
                         "bbox_scale": np.float32(inputs.scale),
                         "img_size": np.asarray(inputs.image.shape[:2], np.float32)})
    return trace


def build_regressor(model, checkpoint, body, smpl_dir, arch, method: str | None = None, **model_cfg):
    """A regressor for the TTO methods: ``model`` when given, else ``create_model(arch,
    body, **model_cfg)`` with ``checkpoint`` loaded (SPIN-style ``.pt`` or project
    ``.safetensors``) when given. Without either, for the default ``arch="hmr"`` on the open
    body, the weights shipped for `method` (:mod:`core.models.shipped`) when present (their
    own IEF iteration count is kept; `model_cfg` is then ignored)."""
    if model is not None:
        return model
    from core.body import resolve_body
    from core.models import create_model, load_official_checkpoint, load_project_checkpoint
    from core.models.shipped import load_method_weights

    body = resolve_body(body, smpl_dir)
    if checkpoint is None and arch == "hmr" and method is not None:
        shipped = load_method_weights(method, body)
        if shipped is not None:
            return shipped
    if checkpoint is not None and str(checkpoint).endswith(".safetensors"):
        return load_project_checkpoint(checkpoint, body=body)
    model = create_model(arch, body=body, **model_cfg)
    if checkpoint is not None:
        load_official_checkpoint(model, checkpoint)
    return model

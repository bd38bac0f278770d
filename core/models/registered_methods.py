"""The regressors as ``core.methods`` methods: "hmr", "pymaf", "cliff".

Each builder makes the model on a body (the embedded open body by default, or the user's
SMPL folder), optionally loads weights — an official checkpoint (`.pt`/`.pth`) or a project
checkpoint (`.safetensors`) — and returns a method whose ``run(inputs)`` gives a Trace.
Without weights the Trace says so (`meta["weights_trained"] = False`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from core.methods import MethodInputs, ProgressFn, register_method
from core.trace import Trace

from .checkpoints import CheckpointError, load_official_checkpoint, load_project_checkpoint
from .inference import prepare_for_inference
from .registry import create_model
from .shipped import load_method_weights, weights_meta
from .trace_adapters import cliff_trace, hmr_trace, pymaf_trace

__all__ = ["RegressorMethod", "build_hmr", "build_pymaf", "build_cliff"]


class RegressorMethod:
    """A regressor wrapped as a method: ``run(inputs, progress=None) -> Trace``.

    The method owns its model and prepares it for inference (:mod:`core.models.inference`:
    BatchNorm folded, channels-last, no gradients); its Traces say so in
    ``meta["inference"]``. To train or fine-tune, build a model with ``create_model``."""

    def __init__(self, model: torch.nn.Module, run_fn: Callable[[torch.nn.Module, MethodInputs], Trace]):
        self.model = model
        self.inference_prep = prepare_for_inference(model)
        self._run_fn = run_fn

    def run(self, inputs: MethodInputs, progress: Optional[ProgressFn] = None) -> Trace:
        if progress is not None:
            progress(0.0, "regressing")
        with torch.inference_mode():
            trace = self._run_fn(self.model, inputs)
        trace.meta["inference"] = self.inference_prep.describe()
        if progress is not None:
            progress(1.0, "done")
        return trace


def _body(body, smpl_dir):
    from core.body import load_body

    if smpl_dir is not None:
        return load_body("smpl", data_dir=smpl_dir)
    return load_body(body) if isinstance(body, str) else body


def _model(name: str, body, checkpoint, device, family: tuple = (), **cfg) -> torch.nn.Module:
    """`name` built on `body`, or a project checkpoint of `name` or of any architecture in
    `family` (an HMR checkpoint with another backbone is still an HMR)."""
    if checkpoint is not None and Path(checkpoint).suffix == ".safetensors":
        model = load_project_checkpoint(checkpoint, body=body)
        if model.model_config["name"] not in (name, *family):
            raise CheckpointError(f"{checkpoint} holds a '{model.model_config['name']}' model, "
                                  f"this method needs one of {sorted({name, *family})}")
    else:
        model = create_model(name, body=body, **cfg)
        if checkpoint is not None:
            load_official_checkpoint(model, checkpoint)
    model.eval()
    return model.to(device) if device is not None else model


def _shipped_model(method: str, body, device):
    """The method's shipped model on `body` in eval mode on `device`, or None."""
    model = load_method_weights(method, body)
    if model is None:
        return None
    model.eval()
    return model.to(device) if device is not None else model


def _meta(checkpoint, model=None) -> dict:
    return {"checkpoint": str(checkpoint)} if checkpoint is not None else weights_meta(model)


HMR_BACKBONES = {"resnet50": "hmr", "resnet18": "hmr_resnet18", "mobilenet_v2": "hmr_mobilenet_v2",
                 "blazepose": "hmr_blazepose"}
PYMAF_BACKBONES = {"resnet50": "pymaf", "blazepose": "pymaf_blazepose"}
CLIFF_BACKBONES = {"hrnet_w48": "cliff_hrnet48", "resnet50": "cliff_res50", "blazepose": "cliff_blazepose"}


def _model_name(family: str, table: dict, backbone: str) -> str:
    try:
        return table[backbone]
    except KeyError:
        raise ValueError(f"{family} backbone must be one of {sorted(table)}, got {backbone!r}") from None


def build_hmr(body="open", smpl_dir=None, checkpoint=None, device=None, backbone: str | None = None) -> RegressorMethod:
    """HMR/SPIN regressor. `checkpoint`: SPIN's `model_checkpoint.pt` (needs the SMPL body:
    `smpl_dir=`) or a project `.safetensors`. `backbone`: "resnet50" (SPIN), "blazepose"
    (pretrained on real photos, from the mediapipe wheel), "resnet18", "mobilenet_v2".

    Without a checkpoint, on the open body, the shipped `hmr_blazepose` weights are used
    (:mod:`core.models.shipped`; backbone None or "blazepose") when present; otherwise the
    network is untrained ("resnet50" by default) and its Traces say so."""
    b = _body(body, smpl_dir)
    use_shipped = checkpoint is None and backbone in (None, "blazepose")
    model = _shipped_model("hmr", b, device) if use_shipped else None
    if model is None:
        model = _model(_model_name("HMR", HMR_BACKBONES, backbone or "resnet50"), b, checkpoint, device,
                       family=tuple(HMR_BACKBONES.values()))
    meta = _meta(checkpoint, model)

    def run(m, inputs: MethodInputs) -> Trace:
        return hmr_trace(m, inputs.crop, target_keypoints=inputs.keypoints, bbox_center=inputs.center,
                         bbox_scale=inputs.scale, img_size=inputs.image.shape[:2], meta=meta)
    return RegressorMethod(model, run)


def build_pymaf(body="open", smpl_dir=None, checkpoint=None, layout=None, device=None,
                backbone: str | None = None, with_maps: bool = True) -> RegressorMethod:
    """PyMAF. `layout` defaults to "official" on SMPL (so `PyMAF_model_checkpoint.pt` loads)
    and "project" on the open body. `backbone` "blazepose": levels on BlazePose's 16/32/64
    maps (project layout only); "resnet50" as released (the default when nothing is shipped).
    Without a checkpoint, on the open body, the shipped `pymaf_blazepose` weights are used
    when present (:mod:`core.models.shipped`). `with_maps=False`: no IUV head, no
    feature-map summaries (same meshes, faster; the Trace says what was skipped)."""
    b = _body(body, smpl_dir)
    use_shipped = checkpoint is None and backbone in (None, "blazepose") and layout in (None, "project")
    model = _shipped_model("pymaf", b, device) if use_shipped else None
    if model is None:
        backbone = backbone or "resnet50"
        name = _model_name("PyMAF", PYMAF_BACKBONES, backbone)
        if backbone == "blazepose":
            layout = layout or "project"
        layout = layout or ("official" if getattr(b, "name", None) == "smpl" else "project")
        model = _model(name, b, checkpoint, device, family=tuple(PYMAF_BACKBONES.values()), layout=layout)
    meta = _meta(checkpoint, model)

    def run(m, inputs: MethodInputs) -> Trace:
        return pymaf_trace(m, inputs.crop, target_keypoints=inputs.keypoints, bbox_center=inputs.center,
                           bbox_scale=inputs.scale, img_size=inputs.image.shape[:2], meta=meta,
                           with_maps=with_maps)
    return RegressorMethod(model, run)


def cliff_box(inputs: MethodInputs, aspect_ratio: float = 192 / 256) -> tuple[np.ndarray, float]:
    """CLIFF's box (width/height = `aspect_ratio`: 256×192 as released, 1 for square crops): around the 24 GT keypoints (conf > 0) as Meta-HMR does
    (side = max(w/aspect, h) × 1.2), else the input box's centre and scale (its side
    becomes the crop height)."""
    from core.geometry import bbox_from_keypoints

    kp = inputs.keypoints_full
    if kp is not None and (kp[25:, 2] > 0).sum() >= 2:
        try:
            return bbox_from_keypoints(kp[25:], conf_thresh=0.0, rescale=1.2, aspect_ratio=aspect_ratio)
        except ValueError:
            pass
    return np.asarray(inputs.center, np.float64), float(inputs.scale)


def build_cliff(body="open", smpl_dir=None, checkpoint=None, backbone: str = "hrnet_w48",
                device=None) -> RegressorMethod:
    """CLIFF (`backbone` "hrnet_w48", "resnet50" or "blazepose" — square 256 crops).
    `checkpoint`: CLIFF's `hr48-*.pt` / `res50-*.pt` (SMPL body) or a project `.safetensors`."""
    model = _model(_model_name("CLIFF", CLIFF_BACKBONES, backbone), _body(body, smpl_dir), checkpoint, device,
                   family=tuple(CLIFF_BACKBONES.values()))

    def run(m, inputs: MethodInputs) -> Trace:
        from core.geometry import crop_image, points_to_crop

        center, scale = cliff_box(inputs, aspect_ratio=m.input_size[1] / m.input_size[0])
        crop = crop_image(inputs.image, center, scale, m.input_size)
        target = None
        if inputs.keypoints_full is not None:
            xy = points_to_crop(inputs.keypoints_full[:, :2], center, scale, m.input_size)
            target = np.concatenate([xy, inputs.keypoints_full[:, 2:]], axis=1)
        return cliff_trace(m, crop, center, scale, inputs.image.shape[:2], target_keypoints=target,
                           meta=_meta(checkpoint))
    return RegressorMethod(model, run)


def _register(name, builder, description, family) -> None:
    try:
        register_method(name, builder=builder, description=description, family=family)
    except ValueError:  # already registered (module reloaded, or another provider)
        pass


_register("hmr", build_hmr, "HMR/SPIN regressor, 3 IEF iterations: BlazePose backbone with the shipped weights on "
                          "the open body, ResNet-50 for SPIN's checkpoint", "spin")
_register("pymaf", build_pymaf, "PyMAF: mesh-aligned feedback over a feature pyramid (BlazePose's 16/32/64 maps "
                              "with the shipped weights; ResNet-50's 14/28/56 for PyMAF's checkpoint)", "pymaf")
_register("cliff", build_cliff, "CLIFF: HMR with bounding-box information and a full-frame camera", "cliff")

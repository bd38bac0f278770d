"""CLIFF: an HMR regressor that also sees where the crop sits in the full image.

fc1 input = ``cat[image feature, bbox_info (3), pose6d (144), betas (10), cam (3)]``
(2048 + 3 + 157 = 2208 for ResNet-50 and for CLIFF's classification-HRNet-W48 encoder),
3 IEF iterations, bbox_info = ``core.geometry.cliff_bbox_info`` (normalised box centre
offset and size w.r.t. the full image and its focal length). The crop camera (s, tx, ty)
becomes a full-image translation with ``core.geometry.cliff_cam_to_full``.

State-dict layout = the official CLIFF checkpoints (huawei-noah/noah-research, CLIFF/models/
cliff_{res50,hr48}/cliff.py, MIT; `ckpt['model']`, possibly with a `module.` prefix):
`encoder.*` (ResNet-50 trunk names, or the classification HRNet-W48 with `incre_modules`,
`downsamp_modules`, `final_layer`), `fc1, fc2, decpose, decshape, deccam`, buffers
`init_pose, init_shape, init_cam`. Input crops are 256×192 (H×W, CLIFF's "rect" crop; the box
height is 200·scale); the encoder ends in a global average pool, so (224, 224) square crops
work too (`input_size=(224, 224)`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from core.geometry import cliff_cam_to_full, perspective_projection

from .backbones import create_backbone, pooled_channels, pooled_features
from .body_ref import BodyHolder
from .ief import IEFOutput, IEFRegressor, RegressorState
from .inputs import validate_images
from .prediction import MeshPrediction, run_body

__all__ = ["CLIFF", "CLIFFOutput", "evaluate_state_full_frame"]

_ENCODERS = {
    "resnet50": dict(name="resnet50"),
    "hrnet_w48": dict(name="hrnet_w48", head="cls"),
    "hrnet_w32": dict(name="hrnet_w32", head="cls"),
    "blazepose": dict(name="blazepose"),
}


@dataclass
class CLIFFOutput(IEFOutput):
    """iterations: state after each IEF iteration (cam = crop camera (s, tx, ty));
    features: (B, C) pooled encoder feature; meshes: per iteration when asked."""


class CLIFF(BodyHolder, IEFRegressor):
    """CLIFF regressor (see module docstring).

    Args:
        body: a ``core.body`` BodyModel (mean parameters, meshes) or None.
        backbone: "resnet50" or "hrnet_w48" (CLIFF's classification HRNet, 2048-d), or
            "blazepose" (project models; square crops, e.g. ``input_size=(256, 256)``).
        n_iter: IEF iterations (3; Meta-HMR's main network uses 10).
        input_size: (H, W) of the crops, (256, 192) as released.
    """


    def __init__(self, body=None, backbone: str = "resnet50", n_iter: int = 3,
                 input_size: tuple[int, int] = (256, 192)):
        if backbone not in _ENCODERS:
            raise ValueError(f"CLIFF backbone must be one of {sorted(_ENCODERS)}, got {backbone!r}")
        spec = dict(_ENCODERS[backbone])
        encoder = create_backbone(spec.pop("name"), **spec)
        super().__init__(pooled_channels(encoder) + 3, mean_params=body)
        self.encoder = encoder
        self.backbone_name = backbone
        self.n_iter = n_iter
        self.input_size = tuple(input_size)
        self._set_body(body)
        self.weights_trained = False

    @property
    def backbone(self):
        return self.encoder

    def forward(self, images: torch.Tensor, bbox_info: torch.Tensor, n_iter: int | None = None,
                init: RegressorState | None = None) -> CLIFFOutput:
        """Args:
            images: (B, 3, H, W) ImageNet-normalised RGB crops, (H, W) = `input_size`.
            bbox_info: (B, 3) from ``core.geometry.cliff_bbox_info``.
            n_iter: IEF iterations (default `self.n_iter`); init: start (default mean).
        """
        validate_images(images, self.input_size, "CLIFF")
        B = images.shape[0]
        if not torch.is_tensor(bbox_info) or tuple(bbox_info.shape) != (B, 3):
            got = tuple(bbox_info.shape) if torch.is_tensor(bbox_info) else type(bbox_info).__name__
            raise ValueError(f"CLIFF expects bbox_info of shape (B, 3) = ({B}, 3) from "
                             f"core.geometry.cliff_bbox_info; got {got}")
        features = pooled_features(self.encoder, images)
        x = torch.cat([features, bbox_info.to(features.dtype)], dim=1)
        states = self.iterate(x, self.n_iter if n_iter is None else n_iter, init)
        return CLIFFOutput(states, features)


def evaluate_state_full_frame(body, state: RegressorState, center: torch.Tensor, scale: torch.Tensor,
                              img_size: torch.Tensor, focal: torch.Tensor,
                              crop_size: tuple[int, int] = (256, 192),
                              vertex_ids: torch.Tensor | None = None) -> MeshPrediction:
    """Body at a CLIFF state, placed with the full-image camera.

    Args:
        state: regressed parameters (cam = crop camera).
        center: (B, 2) box centre in image pixels; scale: (B,) box height / 200.
        img_size: (B, 2) full image (height, width); focal: (B,) full-image focal (px).
        crop_size: (H, W) of the network crop.
    Returns:
        MeshPrediction with `transl` = full-image camera translation
        (``cliff_cam_to_full``), `joints2d` = projections with K = [[f,0,W/2],[0,f,H/2]]
        mapped into crop pixels (the crop affine of ``core.geometry.get_crop_transform``
        without rotation: ``(p − center)·H_crop/(200·scale) + (W_crop/2, H_crop/2)``), and
        `joints2d_norm` = crop pixels normalised by (W_crop/2, H_crop/2) around the centre.
    """
    out = run_body(body, state, vertex_ids)
    transl = cliff_cam_to_full(state.cam, center, scale, img_size, focal)
    principal = torch.stack([img_size[:, 1], img_size[:, 0]], dim=-1) / 2.0
    full_px = perspective_projection(out.joints, None, transl, focal, principal)
    h, w = crop_size
    half = torch.tensor([w / 2.0, h / 2.0], dtype=full_px.dtype, device=full_px.device)
    pix_scale = (h / (200.0 * scale))[:, None, None]
    crop_px = (full_px - center[:, None, :]) * pix_scale + half
    return MeshPrediction(vertices=out.vertices, vertex_ids=vertex_ids, joints3d=out.joints,
                          smpl_joints=out.smpl_joints, transl=transl, joints2d=crop_px,
                          joints2d_norm=(crop_px - half) / half)

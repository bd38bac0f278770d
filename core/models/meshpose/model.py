"""MeshPose (Lê et al., CVPR 2024): VertexPose + regression branch, fused by visibility,
upsampled to the full body mesh.

Flow for a batch of crops (B, 3, H, W), ImageNet-normalised (project convention):

1. backbone → F (B, 256, H/4, W/4);
2. VertexPose: scores (B, V + 1, H/4, W/4) → per-vertex (x, y) by spatial soft-argmax;
3. regression: (x, y, z) per vertex from 64-bin soft-argmaxes, visibility w;
4. fusion: ``xy = w·xy_VertexPose + (1 − w)·xy_regression``, z from the regression;
5. the low-poly mesh (crop pixels; z relative depth in pixels) → upsampler → full mesh.

Everything is in MeshPose's pixel space: no camera, no body parameters. See
:mod:`.targets` for the conversion to a camera frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from core.models.body_ref import BodyHolder
from core.models.inputs import validate_images

from .backbones import create_meshpose_backbone
from .heads import RegressionHead, VertexPoseHead, spatial_soft_argmax
from .lowpoly import LowPolyTemplate, load_lowpoly
from .upsampler import MeshUpsampler, build_upsampler, load_upsampler, upsampler_path

__all__ = ["MeshPose", "MeshPoseOutput", "fuse_vertices", "default_upsampler", "spin49_from_vertices"]


@dataclass
class MeshPoseOutput:
    """One forward pass (batch first; positions in crop pixels, z relative depth in pixels).

    scores: (B, V + 1, h, w) VertexPose scores (background last).
    vertexpose_xy: (B, V, 2) VertexPose vertex positions (spatial soft-argmax).
    regression: (B, V, 3) regressed (x, y, z).
    visibility_logits: (B, V); ``visibility`` = sigmoid.
    bin_logits: (B, 3, V, 64) the regression's per-axis bin logits.
    vertices: (B, V, 3) fused low-poly mesh.
    full_vertices: (B, N, 3) upsampled mesh, or None when not asked for.
    """

    scores: torch.Tensor
    vertexpose_xy: torch.Tensor
    regression: torch.Tensor
    visibility_logits: torch.Tensor
    bin_logits: torch.Tensor
    vertices: torch.Tensor
    full_vertices: torch.Tensor | None = None

    @property
    def visibility(self) -> torch.Tensor:
        return torch.sigmoid(self.visibility_logits)


def fuse_vertices(vertexpose_xy: torch.Tensor, regression: torch.Tensor, visibility: torch.Tensor) -> torch.Tensor:
    """``V_xy = w·V_VertexPose + (1 − w)·V_reg``, z from the regression.

    Args:
        vertexpose_xy: (B, V, 2); regression: (B, V, 3); visibility: (B, V) in [0, 1].
    Returns:
        (B, V, 3).
    """
    w = visibility[..., None]
    xy = w * vertexpose_xy + (1.0 - w) * regression[..., :2]
    return torch.cat([xy, regression[..., 2:]], dim=-1)


def default_upsampler(body, lowpoly: LowPolyTemplate) -> tuple[MeshUpsampler, str]:
    """The committed trained upsampler of the body if there is one, else the barycentric one.

    Returns (upsampler, description of its source)."""
    path = upsampler_path(body.name)
    if path.is_file():
        return load_upsampler(path, body, lowpoly), f"trained ({path.name})"
    return build_upsampler(body, lowpoly), "barycentric (untrained)"


class MeshPose(BodyHolder):
    """MeshPose network.

    Args:
        body: a ``core.body`` BodyModel with DensePose labels (None → the open body).
        backbone: "hrnet_w32" (MeshPose), "resnet50" (MeshPose-S), "mobilenet_v2"
            (MeshPose-XS) or "hrnet_w48" (see :mod:`.backbones`).
        input_size: (H, W) of the crops (multiples of 4); 224×224 SPIN crops by default.
        spatial_gain: multiplier of the scores in VertexPose's spatial softmax.
        upsampler: "default" (:func:`default_upsampler`), "barycentric", or a path to an
            upsampler file.
    """

    def __init__(self, body=None, backbone: str = "hrnet_w32", input_size=(224, 224),
                 spatial_gain: float = 10.0, upsampler: str = "default"):
        super().__init__()
        if body is None:
            from core.body import load_body

            body = load_body("open")
        self._set_body(body)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        if self.input_size[0] % 4 or self.input_size[1] % 4:
            raise ValueError(f"input_size must be multiples of 4 (stride-4 maps), got {input_size}")
        self.lowpoly = load_lowpoly(body)
        V = self.lowpoly.num_vertices
        self.backbone_name = backbone
        self.backbone = create_meshpose_backbone(backbone)
        self.vertexpose = VertexPoseHead(self.backbone.out_channels, V)
        self.regression = RegressionHead(self.backbone.out_channels, V)
        self.spatial_gain = float(spatial_gain)
        if upsampler == "default":
            self.upsampler, self.upsampler_source = default_upsampler(body, self.lowpoly)
        elif upsampler == "barycentric":
            self.upsampler, self.upsampler_source = build_upsampler(body, self.lowpoly), "barycentric (untrained)"
        else:
            self.upsampler = load_upsampler(upsampler, body, self.lowpoly)
            self.upsampler_source = f"trained ({upsampler})"
        self.register_buffer("lowpoly_vertex_ids", torch.as_tensor(self.lowpoly.vertex_ids), persistent=False)
        self.weights_trained = False

    @property
    def num_lowpoly_vertices(self) -> int:
        return self.lowpoly.num_vertices

    def forward(self, images: torch.Tensor, upsample: bool = True) -> MeshPoseOutput:
        """Args:
            images: (B, 3, H, W) ImageNet-normalised RGB crops, (H, W) = ``input_size``.
            upsample: also compute the full mesh.
        """
        validate_images(images, self.input_size, "MeshPose")
        feats = self.backbone(images)
        scores = self.vertexpose(feats)
        stride = self.input_size[1] / feats.shape[-1]
        vp_xy = spatial_soft_argmax(scores[:, :-1], stride=stride, gain=self.spatial_gain)
        reg, vis_logits, bin_logits = self.regression(feats, self.input_size)
        fused = fuse_vertices(vp_xy, reg, torch.sigmoid(vis_logits))
        full = self.upsampler(fused) if upsample else None
        return MeshPoseOutput(scores, vp_xy, reg, vis_logits, bin_logits, fused, full)

    def upsample(self, low: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) low-poly → (B, N, 3) full mesh (any frame; the upsampler is equivariant)."""
        return self.upsampler(low)

    def lowpoly_of(self, full_vertices: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) body vertices → (B, V, 3) low-poly vertices (their selection)."""
        return full_vertices[:, self.lowpoly_vertex_ids]

    def joints_from_vertices(self, full_vertices: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) full mesh → (B, 24, 3) SMPL joints by the body's joint regressor."""
        return torch.einsum("jv,bvc->bjc", self.body.J_regressor.to(full_vertices), full_vertices)


def spin49_from_vertices(body, full_vertices: torch.Tensor) -> torch.Tensor:
    """SPIN's 49 keypoints from a (B, N, 3) mesh, as ``core.body`` assembles them from a
    posed body (24 regressed joints, 11 vertex keypoints, 9 extra regressed joints), with
    the 24 joints regressed from the mesh instead of forward kinematics."""
    v = full_vertices
    joints24 = torch.einsum("jv,bvc->bjc", body.J_regressor.to(v), v)
    kp = v[:, body.kp_vertex_ids]
    extra = torch.einsum("jv,bvc->bjc", body.extra_regressor.to(v), v[:, body.extra_support])
    return torch.cat([joints24, kp, extra], dim=1)[:, body.spin49_index]


"""MeshPose (Lê et al., CVPR 2024): DensePose-supervised vertex localisation (VertexPose),
a regression branch and per-vertex visibility, fused into a low-poly mesh that a trained
linear upsampler turns into the full body mesh.

>>> from core.models.meshpose import MeshPose, decode_iuv
>>> model = MeshPose(backbone="mobilenet_v2")          # the open body, untrained weights
>>> out = model(images)                                 # (B, 3, 224, 224) normalised crops
>>> out.vertices, out.visibility, out.full_vertices     # (B, 518, 3), (B, 518), (B, 6902, 3)
>>> iuv = decode_iuv(out.scores, model.lowpoly)         # barycentric UV aggregation

Registered as models "meshpose" (HRNet-W32), "meshpose_s" (ResNet-50), "meshpose_xs"
(MobileNetV2) in ``core.models.create_model`` and as the method "meshpose" in
``core.methods``. Paper-vs-implementation notes are in each module's docstring.
"""
from .backbones import MESHPOSE_BACKBONES, create_meshpose_backbone
from .decoding import UV_STRATEGIES, DecodedIUV, decode_iuv, vertex_posterior
from .heads import bin_soft_argmax, bins_to_pixels, spatial_soft_argmax
from .losses import (MESHPOSE_LOSS_WEIGHTS, barycentric_cross_entropy, edge_loss, joint_loss, normal_loss,
                     silhouette_loss, uv_consistency_loss, vertex_loss, visibility_bce, weighted_total)
from .lowpoly import LowPolyTemplate, build_lowpoly, load_lowpoly
from .model import MeshPose, MeshPoseOutput, default_upsampler, fuse_vertices, spin49_from_vertices
from .targets import (VertexTarget, camera_to_pixel_space, estimate_root_depth, pixel_space_to_camera,
                      target_from_body_hits, target_from_lowpoly_hits, target_from_uv)
from .tracing import MeshPoseMethod, build_meshpose_method, meshpose_trace, visibility_colors
from .upsampler import MeshUpsampler, build_upsampler, evaluate_upsampler, load_upsampler, save_upsampler


def _register() -> None:
    from core.methods import register_method
    from core.models.registry import MODEL_REGISTRY, register_model

    for name, backbone, what in (("meshpose", "hrnet_w32", "HRNet-W32"), ("meshpose_s", "resnet50", "ResNet-50"),
                                 ("meshpose_xs", "mobilenet_v2", "MobileNetV2"),
                                 ("meshpose_blazepose", "blazepose", "BlazePose GHUM, pretrained on real photos")):
        if name not in MODEL_REGISTRY:
            register_model(name, MeshPose, f"MeshPose ({what}): VertexPose + regression + visibility "
                           "fusion on a 518-vertex low-poly mesh, upsampled to the body", backbone=backbone)
    register_method("meshpose", builder=build_meshpose_method, family="meshpose", overwrite=True,
                    description="MeshPose: per-pixel vertex classification (IUV), regression branch, "
                                "per-vertex visibility fusion, upsampled mesh")


_register()

__all__ = [
    "MeshPose", "MeshPoseOutput", "fuse_vertices", "default_upsampler", "spin49_from_vertices",
    "MESHPOSE_BACKBONES", "create_meshpose_backbone",
    "spatial_soft_argmax", "bin_soft_argmax", "bins_to_pixels",
    "decode_iuv", "DecodedIUV", "UV_STRATEGIES", "vertex_posterior",
    "LowPolyTemplate", "build_lowpoly", "load_lowpoly",
    "MeshUpsampler", "build_upsampler", "load_upsampler", "save_upsampler", "evaluate_upsampler",
    "VertexTarget", "target_from_uv", "target_from_lowpoly_hits", "target_from_body_hits",
    "camera_to_pixel_space", "pixel_space_to_camera", "estimate_root_depth",
    "MESHPOSE_LOSS_WEIGHTS", "barycentric_cross_entropy", "uv_consistency_loss", "visibility_bce",
    "vertex_loss", "edge_loss", "normal_loss", "joint_loss", "silhouette_loss", "weighted_total",
    "meshpose_trace", "MeshPoseMethod", "build_meshpose_method", "visibility_colors",
]

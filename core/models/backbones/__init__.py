"""Image backbones with the parameter names of their reference implementations, and the
BlazePose GHUM backbone built from the pose model inside the mediapipe wheel (pretrained
on real photos of people; see ``blazepose.py``)."""
import torch

from .blazepose import BlazePoseGHUM, BlazePoseOutput, BlazePoseUnavailable, blazepose_ghum
from .hrnet import HRNet, hrnet_w32, hrnet_w48
from .mobilenet import MobileNetV2, mobilenet_v2
from .resnet import ResNet, resnet18, resnet34, resnet50

BACKBONES = {
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "mobilenet_v2": mobilenet_v2,
    "hrnet_w32": hrnet_w32,
    "hrnet_w48": hrnet_w48,
    "blazepose": blazepose_ghum,
}

# backbones whose weights come with the architecture (no separate pretrained file)
PRETRAINED_BY_CONSTRUCTION = frozenset({"blazepose"})


def create_backbone(name: str, **kwargs):
    """Build a backbone by name (see `BACKBONES`); kwargs go to its constructor."""
    try:
        factory = BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}") from None
    return factory(**kwargs)


def pooled_features(backbone, images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) → (B, `pooled_channels(backbone)`): the backbone's own global feature
    (``forward_pooled``, e.g. BlazePose's flattened 2×2 regression map) or the global
    average of its last map."""
    pooled = getattr(backbone, "forward_pooled", None)
    if pooled is not None:
        return pooled(images)
    return backbone.forward_features(images).mean(dim=(2, 3))


def pooled_channels(backbone) -> int:
    """Width of :func:`pooled_features`."""
    return int(getattr(backbone, "pooled_channels", backbone.out_channels))


__all__ = ["BACKBONES", "PRETRAINED_BY_CONSTRUCTION", "create_backbone", "pooled_features", "pooled_channels",
           "BlazePoseGHUM", "BlazePoseOutput", "BlazePoseUnavailable", "HRNet", "MobileNetV2", "ResNet",
           "blazepose_ghum", "hrnet_w32", "hrnet_w48", "mobilenet_v2", "resnet18", "resnet34", "resnet50"]

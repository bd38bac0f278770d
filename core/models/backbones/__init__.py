"""Image backbones with the parameter names of their reference implementations."""
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
}


def create_backbone(name: str, **kwargs):
    """Build a backbone by name (see `BACKBONES`); kwargs go to its constructor."""
    try:
        factory = BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}") from None
    return factory(**kwargs)


__all__ = ["BACKBONES", "create_backbone", "HRNet", "MobileNetV2", "ResNet",
           "hrnet_w32", "hrnet_w48", "mobilenet_v2", "resnet18", "resnet34", "resnet50"]

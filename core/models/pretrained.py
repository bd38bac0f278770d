"""ImageNet weights for the backbones from a user's torchvision file (no download here)."""
from __future__ import annotations

from torch import nn

from .checkpoints import LoadReport, extract_state_dict, load_state_dict_strict, read_checkpoint_file

__all__ = ["load_torchvision_weights"]

# torchvision classifier heads: absent from our trunks, or 1000-class heads we may not want
_CLASSIFIER_KEYS = (r"fc\..*", r"classifier\..*")


def load_torchvision_weights(model: nn.Module, path) -> LoadReport:
    """Load a torchvision ImageNet state dict (e.g. `resnet50-19c8e357.pth`,
    `resnet50-0676ba61.pth`, `mobilenet_v2-b0353104.pth`) into a backbone, or into the
    backbone of a regressor (`model.backbone`: HMR's root trunk, PyMAF's
    `feature_extractor`, CLIFF's `encoder`).

    The file is read with ``torch.load(weights_only=True, map_location="cpu")``. The
    classifier keys (`fc.*`, `classifier.*`) may be present or absent on either side; any
    other missing/unexpected key or shape difference raises `CheckpointMismatch`.
    `weights_trained` is left unchanged (ImageNet features are not a trained regressor);
    `model.backbone_pretrained` records the file.
    """
    target = getattr(model, "backbone", None)
    target = target if isinstance(target, nn.Module) else model
    obj = read_checkpoint_file(path)
    sd, entry = extract_state_dict(obj, None, str(path))
    report = load_state_dict_strict(target, sd, source=str(path), optional=_CLASSIFIER_KEYS)
    report.entry = entry
    model.backbone_pretrained = str(path)
    return report

"""HMR / SPIN regressor: ResNet-50 → global average pool → 3 IEF iterations.

State-dict layout = SPIN's `model_checkpoint.pt['model']` (331 entries): the ResNet trunk
at the root (`conv1.weight`, `bn1.*`, `layer1…layer4`), the IEF head at the root
(`fc1` 2205→1024, `fc2`, `decpose` 144, `decshape` 10, `deccam` 3) and the mean buffers
`init_pose` (1,144), `init_shape` (1,10), `init_cam` (1,3).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .backbones import create_backbone, pooled_channels, pooled_features
from .body_ref import BodyHolder
from .ief import IEFOutput, IEFRegressor, RegressorState
from .inputs import validate_images
from .prediction import evaluate_state

__all__ = ["HMR", "HMROutput"]


@dataclass
class HMROutput(IEFOutput):
    """iterations: the state after each IEF iteration (final = iterations[-1]);
    features: (B, C) pooled backbone feature; meshes: per iteration, filled when the model
    has a body and `with_mesh=True` (else empty)."""


class HMR(BodyHolder, IEFRegressor):
    """SPIN's HMR regressor (an IEF head whose features come from its own backbone).

    Args:
        body: a ``core.body`` BodyModel (mean parameters, and meshes when asked) or None
            (neutral mean; parameters only).
        backbone: "resnet50" (SPIN) or any name in ``core.models.backbones.BACKBONES``
            ("blazepose": the real-image-pretrained BlazePose GHUM; its 224 crops are resized
            to 256 inside the backbone; its feature is the 2×2×288 map plus the network's
            own 2D and 3D landmarks, 1464 values).
        n_iter: IEF iterations (3).

    The backbone's modules are registered directly on this module, as in SPIN's checkpoint.
    The body is *not* a submodule (its buffers stay out of the state dict) but moves with
    the model (`.to()`).
    """

    input_size = (224, 224)

    def __init__(self, body=None, backbone: str = "resnet50", n_iter: int = 3):
        trunk = create_backbone(backbone)
        super().__init__(pooled_channels(trunk), mean_params=body)
        for name, child in trunk.named_children():
            self.add_module(name, child)
        self._trunk = [trunk]  # a list keeps it out of the module tree (no key prefix)
        self.backbone_name = backbone
        self.n_iter = n_iter
        self._set_body(body)
        self.weights_trained = False

    @property
    def backbone(self):
        """The backbone module (its parameters are this model's root parameters)."""
        return self._trunk[0]

    def forward(self, images: torch.Tensor, n_iter: int | None = None,
                init: RegressorState | None = None, with_mesh: bool = False) -> HMROutput:
        """Args:
            images: (B, 3, 224, 224) ImageNet-normalised RGB crops.
            n_iter: IEF iterations (default `self.n_iter`).
            init: starting state (default: the mean).
            with_mesh: also evaluate the body (full mesh) after every iteration.
        """
        validate_images(images, self.input_size, "HMR")
        features = pooled_features(self.backbone, images)
        states = self.iterate(features, self.n_iter if n_iter is None else n_iter, init)
        out = HMROutput(states, features)
        if with_mesh:
            if self.body is None:
                raise ValueError("HMR(with_mesh=True) needs a body: create_model('hmr', body=load_body(...))")
            out.meshes = [evaluate_state(self.body, s) for s in states]
        return out

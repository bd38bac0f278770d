"""One entry point for every regressor: ``create_model(name, body, **cfg)`` (timm-style).

>>> from core.body import load_body
>>> model = create_model("pymaf", body=load_body("open"), layout="project")
>>> model.weights_trained      # False until weights are loaded
False
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from .cliff import CLIFF
from .hmr import HMR
from .pymaf import PyMAF

__all__ = ["ModelSpec", "create_model", "list_models", "register_model", "MODEL_REGISTRY"]


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its builder, fixed arguments and a one-line description."""

    builder: Callable[..., nn.Module]
    defaults: dict
    description: str


MODEL_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, builder: Callable[..., nn.Module], description: str, **defaults) -> None:
    """Register `builder(body=..., **defaults, **cfg)` under `name`."""
    if name in MODEL_REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    MODEL_REGISTRY[name] = ModelSpec(builder, defaults, description)


# model families registered by importing their package (kept lazy: heavy and optional)
_LAZY_MODEL_MODULES = ("core.models.meshpose",)


def _load_lazy_models() -> None:
    import importlib

    for mod in _LAZY_MODEL_MODULES:
        importlib.import_module(mod)


def list_models() -> dict[str, str]:
    """name → description of every registered model."""
    _load_lazy_models()
    return {name: spec.description for name, spec in sorted(MODEL_REGISTRY.items())}


def _resolve_body(body):
    if isinstance(body, str):
        from core.body import load_body

        return load_body(body)
    return body


def create_model(name: str, body=None, **cfg) -> nn.Module:
    """Build a registered model.

    Args:
        name: see :func:`list_models` ("hmr", "pymaf", "cliff_res50", "cliff_hrnet48", …).
        body: a ``core.body`` BodyModel, a body name ("open"), or None (no meshes; the
            mean starts neutral — fine for loading official weights' keys).
        cfg: the model's own options (e.g. n_iter, layout, backbone).
    Returns:
        the model, untrained (`weights_trained=False`), with `model_config` =
        {"name": name, **cfg} so a checkpoint can rebuild it.
    """
    if name not in MODEL_REGISTRY:
        _load_lazy_models()
    try:
        spec = MODEL_REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODEL_REGISTRY))}") from None
    kwargs = {**spec.defaults, **cfg}
    try:
        model = spec.builder(body=_resolve_body(body), **kwargs)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        raise TypeError(f"create_model({name!r}): bad option ({exc}); options are those of "
                        f"{spec.builder.__name__}") from exc
    model.weights_trained = False
    model.model_config = {"name": name, **kwargs}
    return model


register_model("hmr", HMR, "SPIN/HMR regressor: ResNet-50, 3 IEF iterations (SPIN checkpoint layout)",
               backbone="resnet50")
register_model("hmr_resnet18", HMR, "HMR regressor on ResNet-18 (light, project-trained only)",
               backbone="resnet18")
register_model("hmr_mobilenet_v2", HMR, "HMR regressor on MobileNetV2 (light, project-trained only)",
               backbone="mobilenet_v2")
register_model("pymaf", PyMAF, "PyMAF (ResNet-50, global mode): mean → 3 mesh-aligned feedback levels "
               "+ IUV head; layout 'official' (SMPL checkpoint keys) or 'project'")
register_model("hmr_blazepose", HMR, "HMR regressor on BlazePose GHUM (pretrained on real photos, from the "
               "mediapipe wheel; 224 crops resized to 256; project-trained heads)", backbone="blazepose")
register_model("pymaf_blazepose", PyMAF, "PyMAF on BlazePose GHUM: mean → 3 feedback levels on its 16/32/64 "
               "decoder maps + IUV head on the 64² map (project layout)", backbone="blazepose", layout="project")
register_model("cliff_blazepose", CLIFF, "CLIFF on BlazePose GHUM (bbox info, full-frame camera), square 256 crops",
               backbone="blazepose", input_size=(256, 256))
register_model("cliff_res50", CLIFF, "CLIFF with ResNet-50 (bbox info, full-frame camera), 256×192 crops",
               backbone="resnet50")
register_model("cliff_hrnet48", CLIFF, "CLIFF with the classification HRNet-W48 encoder, 256×192 crops",
               backbone="hrnet_w48")

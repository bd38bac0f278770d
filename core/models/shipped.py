"""Open weights shipped with the project (``assets/weights/``), trained by its own trainers on
synthetic open-body data, and the methods that use them when the user gives no checkpoint.

Each file is a project checkpoint (:func:`core.models.save_checkpoint`: safetensors with
its description in the metadata) beside a JSON model card (the sidecar: data, steps,
command, commit, metrics against the mean pose, licence). They are for the open body only:
a SMPL folder or an official checkpoint given by the user always wins.

>>> from core.models.shipped import shipped_weights, load_shipped
>>> w = shipped_weights("hmr_blazepose")          # None when the file or its deps are missing
>>> model = load_shipped("hmr_blazepose")         # the trained model (weights_trained=True)
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from core import ASSETS_DIR

__all__ = ["WEIGHTS_DIR", "ShippedWeights", "shipped_weights", "load_shipped", "METHOD_WEIGHTS",
           "method_weights", "load_method_weights", "weights_meta", "TRAINED_ON"]

WEIGHTS_DIR = ASSETS_DIR / "weights"
TRAINED_ON = "trained on synthetic open-body data"

# method name → the shipped model it starts from when no checkpoint is given
METHOD_WEIGHTS = {"hmr": "hmr_blazepose", "eft": "hmr_blazepose", "meta-hmr": "hmr_blazepose",
                  "spin": "hmr_blazepose", "pymaf": "pymaf_blazepose"}

# extra packages a shipped architecture needs (its backbone is built from their files)
_NEEDS = {"blazepose": ("mediapipe", "tflite")}


@dataclass(frozen=True)
class ShippedWeights:
    """A shipped weight file: registry `name`, `path`, and its model `card` (dict)."""

    name: str
    path: Path
    card: dict

    @property
    def summary(self) -> str:
        """One line for a UI or a Trace: where the weights come from and what they reach."""
        metrics = self.card.get("metrics", {})
        pa, base = metrics.get("pa_mpjpe_mm"), metrics.get("mean_pose_pa_mpjpe_mm")
        score = f"; PA-MPJPE {pa:.0f} mm vs {base:.0f} mm for the mean pose" if pa and base else ""
        return f"{TRAINED_ON} ({self.path.name}{score})"


def _description(path: Path) -> dict | None:
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return None
    try:
        return json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return None


def _deps_missing(description: dict) -> list[str]:
    backbone = str(description.get("model_config", {}).get("backbone", ""))
    return [m for m in _NEEDS.get(backbone, ()) if importlib.util.find_spec(m) is None]


def shipped_weights(name: str, body_name: str = "open") -> ShippedWeights | None:
    """The shipped weights of registry model `name` for `body_name`, or None when there is
    no such file, it was trained on another body, or the packages its backbone is built
    from are not installed."""
    path = WEIGHTS_DIR / f"{name}.safetensors"
    if not path.is_file():
        return None
    description = _description(path)
    if description is None or description.get("architecture") != name or description.get("body") != body_name:
        return None
    if _deps_missing(description):
        return None
    return ShippedWeights(name, path, dict(description.get("config", {})))


def method_weights(method: str, body_name: str = "open") -> ShippedWeights | None:
    """The shipped weights a method uses by default (see :data:`METHOD_WEIGHTS`), or None."""
    name = METHOD_WEIGHTS.get(method)
    return shipped_weights(name, body_name) if name else None


def load_method_weights(method: str, body):
    """The model `method` runs on by default on `body` (its shipped weights, loaded), or
    None when nothing is shipped for it on this body or the backbone's packages are missing."""
    found = method_weights(method, getattr(body, "name", "open"))
    return load_shipped(found.name, body=body) if found is not None else None


def load_shipped(name: str, body=None, **overrides):
    """Build registry model `name` with its shipped weights (see :func:`shipped_weights`).

    Raises:
        FileNotFoundError: nothing shipped for `name` on this body / with these packages.
    """
    body_name = getattr(body, "name", "open") if body is not None else "open"
    found = shipped_weights(name, body_name)
    if found is None:
        raise FileNotFoundError(f"no shipped weights for '{name}' on the {body_name} body in {WEIGHTS_DIR} "
                                f"(or the packages its backbone needs are missing: pip install 'hmr-studio[detect]')")
    from .checkpoints import load_project_checkpoint

    model = load_project_checkpoint(found.path, body=body, **overrides)
    model.shipped = found
    return model


def weights_meta(model) -> dict:
    """Trace meta naming where a model's weights come from when they are shipped ones:
    {"weights": one line, "weights_file": name}; {} otherwise."""
    shipped = getattr(model, "shipped", None)
    return {"weights": shipped.summary, "weights_file": shipped.path.name} if shipped is not None else {}

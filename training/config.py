"""Training configuration: defaults per method, YAML/JSON files, command-line overrides.

A config is a nested dict; :func:`load_config` merges, in order, the built-in
:data:`DEFAULTS`, the method's file ``training/configs/<method>.yaml``, the user's file and
``--set key.path=value`` overrides, and rejects keys that exist in none of them (with the
list of valid keys), so a typo fails at start-up rather than silently doing nothing.

Top-level keys:

==================  ==========================================================================
``method``          hmr | spin | pymaf | meta-hmr | meshpose
``body``            body name for ``core.body.load_body`` ("open")
``model``           ``name`` (``core.models`` registry) + that model's options
``img_res``         network input side (224; e.g. 64 with ``hmr_resnet18`` for quick tests)
``batch_size``      per process
``num_workers``     data-loader workers per process
``max_steps``       optimisation steps
``seed``            model init and data stream seed
``optim``           ``lr``, ``weight_decay`` (Adam); ``backbone_lr`` (null = ``lr``; 0 = the
                    pretrained backbone is frozen and only the heads learn);
                    ``backbone_trainable`` ("all", or "pooled_branch": only the part of
                    the trunk its pooled feature alone uses — BlazePose's regression
                    branch — the rest frozen); ``schedule``
                    ("constant" or "cosine": from ``lr`` down to ``final_lr_ratio``·lr at
                    ``max_steps``)
``init_from``       project weights (``.safetensors``) to start the network from (a second
                    stage of training), or null
``loss``            SPIN-style weights: ``keypoint_2d``, ``keypoint_3d``, ``pose``, ``betas``,
                    ``vertices``, ``camera``, ``openpose_weight``, ``gt_weight``, ``scale`` (×60)
``augment``         ``core.data.AugmentConfig`` fields (npz data) and ``synthetic_pixel_noise``
``data``            ``train`` / ``val``: lists of sources {kind: synthetic|npz, path, img_root,
                    ratio, name, fits}
``logging``         ``log_every``, ``image_every``, ``checkpoint_every``, ``val_every``,
                    ``panel_samples``
``method_options``  method-specific (see each module's ``OPTIONS``)
``out_dir``         run folder (checkpoints/, logs/, panels/, final.safetensors)
==================  ==========================================================================
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Mapping

__all__ = ["DEFAULTS", "METHODS", "load_config", "parse_data_spec", "apply_override", "deep_merge",
           "CONFIG_DIR"]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
METHODS = ("hmr", "spin", "pymaf", "meta-hmr", "meshpose")

DEFAULTS: dict = {
    "method": None,
    "body": "open",
    "model": {"name": "hmr"},
    "img_res": 224,
    "batch_size": 64,
    "num_workers": 4,
    "max_steps": 10000,
    "seed": 0,
    "optim": {"lr": 5e-5, "weight_decay": 0.0, "backbone_lr": None, "backbone_trainable": "all", "schedule": "constant", "final_lr_ratio": 0.1},
    "init_from": None,
    "loss": {"keypoint_2d": 5.0, "keypoint_3d": 5.0, "pose": 1.0, "betas": 0.001, "vertices": 0.0,
             "camera": 1.0, "openpose_weight": 0.0, "gt_weight": 1.0, "scale": 60.0},
    "augment": {"enabled": True, "flip_prob": 0.5, "rot_factor": 30.0, "rot_zero_prob": 0.6,
                "scale_factor": 0.25, "noise_factor": 0.4, "synthetic_pixel_noise": 0.4},
    "data": {"train": [], "val": []},
    "logging": {"log_every": 50, "image_every": 500, "checkpoint_every": 1000, "val_every": 1000,
                "panel_samples": 4},
    "method_options": {},
    "out_dir": "runs/default",
}

_SOURCE_KEYS = {"kind", "path", "img_root", "ratio", "name", "fits"}


def deep_merge(base: Mapping, update: Mapping, path: str = "", strict: bool = True) -> dict:
    """``base`` updated by ``update`` recursively. With ``strict``, keys of ``update`` that
    ``base`` lacks raise KeyError (except under free-form dicts: ``model``,
    ``method_options``)."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        where = f"{path}.{key}" if path else key
        if key not in out:
            free = path.split(".")[0] in ("model", "method_options")     # free-form sections
            if strict and not free:
                raise KeyError(f"unknown config key '{where}'; valid keys here: {sorted(out)}")
            out[key] = copy.deepcopy(value)
        elif isinstance(out[key], Mapping) and isinstance(value, Mapping):
            out[key] = deep_merge(out[key], value, where, strict)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text) or {}
    elif path.suffix == ".json":
        data = json.loads(text)
    else:
        raise ValueError(f"{path}: config files are .yaml/.yml or .json")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the config must be a mapping at the top level")
    return data


def _parse_value(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def apply_override(cfg: dict, assignment: str) -> dict:
    """``"a.b.c=value"`` (value parsed as YAML) → new config (unknown keys rejected, except
    under ``model`` and ``method_options``)."""
    if "=" not in assignment:
        raise ValueError(f"override {assignment!r} must look like key.path=value")
    key, value = assignment.split("=", 1)
    nested: dict = {}
    cur = nested
    parts = key.strip().split(".")
    for p in parts[:-1]:
        cur[p] = {}
        cur = cur[p]
    cur[parts[-1]] = _parse_value(value)
    return deep_merge(cfg, nested)


def parse_data_spec(spec: str) -> list[dict]:
    """Command-line data sources → list of source dicts.

    Grammar: sources joined by ``+``; each ``KIND:PATH[=IMG_ROOT][@RATIO]``, e.g.
    ``synthetic:data/synth``, ``npz:extras/lsp_train.npz=datasets/lsp@0.6+npz:extras/mpii.npz=datasets/mpii@0.4``.
    """
    sources = []
    for part in spec.split("+"):
        part = part.strip()
        if ":" not in part:
            raise ValueError(f"data source {part!r} must be KIND:PATH (KIND = synthetic or npz)")
        kind, rest = part.split(":", 1)
        ratio = 1.0
        if "@" in rest:
            rest, r = rest.rsplit("@", 1)
            ratio = float(r)
        img_root = None
        if "=" in rest:
            rest, img_root = rest.split("=", 1)
        if kind not in ("synthetic", "npz"):
            raise ValueError(f"data source kind must be 'synthetic' or 'npz', got {kind!r}")
        if kind == "npz" and img_root is None:
            raise ValueError(f"npz source {part!r} needs its image root: npz:FILE.npz=IMG_ROOT")
        sources.append({"kind": kind, "path": rest, "img_root": img_root, "ratio": ratio})
    return sources


def _check_sources(sources, where: str) -> None:
    for s in sources:
        if not isinstance(s, Mapping):
            raise ValueError(f"{where}: each data source is a mapping, got {s!r}")
        unknown = set(s) - _SOURCE_KEYS
        if unknown:
            raise KeyError(f"{where}: unknown data source keys {sorted(unknown)}; valid: {sorted(_SOURCE_KEYS)}")
        if s.get("kind") not in ("synthetic", "npz") or not s.get("path"):
            raise ValueError(f"{where}: a data source needs kind (synthetic|npz) and path, got {dict(s)}")


def load_config(method: str, path=None, overrides=(), data: str | None = None) -> dict:
    """Merged configuration for ``method`` (see module docstring)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    cfg = copy.deepcopy(DEFAULTS)
    method_file = CONFIG_DIR / f"{method.replace('-', '_')}.yaml"
    if method_file.is_file():
        cfg = deep_merge(cfg, _read(method_file))
    if path is not None:
        user = _read(path)
        if user.get("method") not in (None, method):
            raise ValueError(f"{path} is a config for method {user['method']!r}, not {method!r}")
        cfg = deep_merge(cfg, user)
    for o in overrides:
        cfg = apply_override(cfg, o)
    if data:
        cfg["data"]["train"] = parse_data_spec(data)
    cfg["method"] = method
    _check_sources(cfg["data"]["train"], "data.train")
    _check_sources(cfg["data"]["val"], "data.val")
    if not cfg["data"]["train"]:
        raise ValueError("no training data: pass --data synthetic:DIR or npz:FILE=IMG_ROOT, or set data.train")
    for k in ("img_res", "batch_size", "max_steps"):
        if int(cfg[k]) <= 0:
            raise ValueError(f"{k} must be > 0, got {cfg[k]}")
    return cfg

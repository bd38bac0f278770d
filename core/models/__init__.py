"""Regression models: backbones, the HMR/SPIN regressor, PyMAF, CLIFF; official-checkpoint
loading and the project's own checkpoints.

>>> from core.models import create_model, load_official_checkpoint
>>> model = create_model("hmr", body=body)
>>> load_official_checkpoint(model, "data/model_checkpoint.pt")   # SPIN
"""
from .backbones import BACKBONES, HRNet, MobileNetV2, ResNet, create_backbone
from .checkpoints import (
    CheckpointError,
    CheckpointMismatch,
    LoadReport,
    detect_architecture,
    load_cliff_checkpoint,
    load_meta_hmr_checkpoint,
    load_official_checkpoint,
    load_project_checkpoint,
    load_pymaf_checkpoint,
    load_spin_checkpoint,
    load_state_dict_strict,
    read_project_config,
    save_checkpoint,
)
from .cliff import CLIFF, CLIFFOutput, evaluate_state_full_frame
from .hmr import HMR, HMROutput
from .ief import IEFRegressor, RegressorState
from .inputs import validate_images
from .prediction import MeshPrediction, evaluate_state, project_to_crop
from .pretrained import load_torchvision_weights
from .pymaf import FeatureSummary, IUVPrediction, PyMAF, PyMAFLevel, PyMAFOutput, feature_summary
from .registry import create_model, list_models, register_model

__all__ = [
    "BACKBONES", "HRNet", "MobileNetV2", "ResNet", "create_backbone",
    "CheckpointError", "CheckpointMismatch", "LoadReport", "detect_architecture",
    "load_cliff_checkpoint", "load_meta_hmr_checkpoint", "load_official_checkpoint",
    "load_project_checkpoint", "load_pymaf_checkpoint", "load_spin_checkpoint",
    "load_state_dict_strict", "read_project_config", "save_checkpoint",
    "CLIFF", "CLIFFOutput", "evaluate_state_full_frame", "HMR", "HMROutput",
    "IEFRegressor", "RegressorState", "validate_images", "MeshPrediction", "evaluate_state",
    "project_to_crop", "load_torchvision_weights",
    "FeatureSummary", "IUVPrediction", "PyMAF", "PyMAFLevel", "PyMAFOutput", "feature_summary",
    "create_model", "list_models", "register_model",
]

from . import registered_methods  # noqa: E402,F401  (registers "hmr", "pymaf", "cliff" in core.methods)

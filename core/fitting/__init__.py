"""Optimisation in the loop: SMPLify (SPIN's and the original multi-stage schedule), EFT and
Meta-HMR test-time optimisation, and the pose/shape priors they use.

>>> from core.body import load_body
>>> from core.fitting import run_smplify
>>> res = run_smplify(load_body("open"), keypoints_49x3_crop_px, schedule="smplify", record_every=5)
>>> trace = res.to_trace(0, crop=crop, faces=body.faces)

Modules: :mod:`.smplify` (fitter, schedules, results → Trace), :mod:`.priors` (GMM max-mixture,
joint limits, angle and shape priors), :mod:`.rom` + :mod:`.gmm_em` + :mod:`.build_open_prior`
(the open range-of-motion prior), :mod:`.keypoints` (input layouts and checks),
:mod:`.losses`, :mod:`.tto` (shared test-time-optimisation helpers), :mod:`.eft`,
:mod:`.meta_hmr`. CLI: ``python -m core.fitting photo.jpg --out DIR``.
"""
from .eft import EFTConfig, EFTResult, run_eft
from .keypoints import prepare_keypoints, to_spin49
from .meta_hmr import MetaHMRConfig, MetaHMRResult, run_meta_hmr
from .priors import (
    JointLimitPrior,
    MaxMixturePrior,
    PosePrior,
    angle_prior,
    load_gmm_pkl,
    load_open_prior,
    load_pose_prior,
    shape_prior,
)
from .smplify import FitInit, SMPLifyResult, Stage, run_smplify, smplify_schedule, spin_schedule

__all__ = [
    "run_smplify", "FitInit", "Stage", "SMPLifyResult", "spin_schedule", "smplify_schedule",
    "run_eft", "EFTConfig", "EFTResult", "run_meta_hmr", "MetaHMRConfig", "MetaHMRResult",
    "MaxMixturePrior", "JointLimitPrior", "PosePrior", "angle_prior", "shape_prior",
    "load_gmm_pkl", "load_open_prior", "load_pose_prior", "to_spin49", "prepare_keypoints",
]

"""Build the open pose prior: ``python -m core.fitting.build_open_prior [--out PATH]``.

Samples plausible poses from anatomical range-of-motion tables and posture families
(:mod:`core.fitting.rom`), fits an 8-component full-covariance Gaussian mixture to the 69-D
body-pose axis-angle by EM (:mod:`core.fitting.gmm_em`, fixed seeds), and derives per-
component joint-limit boxes from uniform-in-ROM samples. Writes
``assets/priors/open_pose_prior.npz`` (float32 ``means`` (8,69), ``covars`` (8,69,69),
``weights`` (8,), ``limits_lower``/``limits_upper`` (69,) radians, ``rom_deg`` (23,3,2),
and a JSON ``info`` string). Deterministic (fixed seeds) for a given NumPy and BLAS.

How it differs from SMPLify's ``gmm_08.pkl``: that GMM was fitted to CMU motion-capture
poses, so it encodes how real people move (correlations between joints, the frequency of
everyday poses). This one is fitted to samples from hand-written posture families inside
clinical joint ranges: it knows the limits and a few common postures (standing, walking,
running, sitting, squatting, bending, reaching, kneeling, asymmetric arms) plus a broad
uniform-in-range component, but none of the statistics of real motion. It is broader and
weaker than SMPLify's prior; the joint-limit hinges compensate where it matters most
(knees and elbows bending backwards).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from core.fitting.gmm_em import fit_gmm, gmm_log_likelihood
from core.fitting.priors import OPEN_PRIOR_PATH
from core.fitting.rom import (
    POSTURE_FAMILIES,
    euler_pose_to_axis_angle,
    mirror_axis_angle_pose,
    rom_table,
    sample_euler_poses,
    sample_poses,
)
from core.utils.io import atomic_savez

__all__ = ["build_open_prior", "main"]

BUILD_VERSION = 1


def _limits(seed: int, n: int, margin_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Axis-angle boxes enclosing uniform-in-ROM poses (0.1 / 99.9 percentiles, both
    sides mirrored) plus a margin."""
    rng = np.random.default_rng(seed)
    p = euler_pose_to_axis_angle(sample_euler_poses("anything", n, rng))
    p = np.concatenate([p, mirror_axis_angle_pose(p)], 0)
    lo = np.percentile(p, 0.1, axis=0) - np.deg2rad(margin_deg)
    hi = np.percentile(p, 99.9, axis=0) + np.deg2rad(margin_deg)
    return lo, hi


def build_open_prior(out: Path = OPEN_PRIOR_PATH, n_per_family: int = 4000, n_components: int = 8,
                     seed: int = 0, limit_margin_deg: float = 5.0, verbose: bool = True) -> dict:
    """Sample, fit and write the open prior; returns the ``info`` dict written."""
    t0 = time.time()
    poses = sample_poses(n_per_family, seed=seed)
    gmm = fit_gmm(poses, n_components=n_components, seed=seed, reg_covar=1e-4)
    lower, upper = _limits(seed + 1, 20000, limit_margin_deg)
    held_out = sample_poses(500, seed=seed + 2)
    info = {
        "name": "open_rom_gmm",
        "version": BUILD_VERSION,
        "description": "8-Gaussian mixture over SMPL body-pose axis-angle (69-D), fitted by EM to "
                       "poses sampled from clinical range-of-motion tables (AAOS) and posture "
                       "families; not motion capture. See core/fitting/rom.py.",
        "families": list(POSTURE_FAMILIES),
        "n_samples": int(len(poses)),
        "n_components": n_components,
        "seed": seed,
        "reg_covar": 1e-4,
        "em_iterations": int(gmm.n_iter),
        "train_mean_log_likelihood": float(gmm.log_likelihood),
        "heldout_mean_log_likelihood": float(gmm_log_likelihood(held_out, gmm).mean()),
        "limit_margin_deg": limit_margin_deg,
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_savez(out, compress=True,
                 means=gmm.means.astype(np.float32), covars=gmm.covars.astype(np.float32),
                 weights=gmm.weights.astype(np.float32),
                 limits_lower=lower.astype(np.float32), limits_upper=upper.astype(np.float32),
                 rom_deg=rom_table().astype(np.float32), info=np.array(json.dumps(info)))
    if verbose:
        print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB) in {time.time() - t0:.1f} s: "
              f"{info['n_samples']} poses, {gmm.n_iter} EM iterations, mean log-lik "
              f"train {info['train_mean_log_likelihood']:.2f} / held-out {info['heldout_mean_log_likelihood']:.2f}")
        print("weights:", np.round(gmm.weights, 3).tolist())
    return info


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OPEN_PRIOR_PATH)
    ap.add_argument("--n-per-family", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    build_open_prior(args.out, n_per_family=args.n_per_family, seed=args.seed)


if __name__ == "__main__":
    main()

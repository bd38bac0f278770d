"""SMPLify speed on CPU: the fast joints-only body evaluation against today's reference paths.

Three evaluations of the body inside SMPLify's loops (``core.fitting.smplify._joints``):
``joints`` (default: ``BodyModel.joints_only()``, buffers gathered once, pointer-jumping
kinematics, one keypoint matrix), ``subset`` (the reference: ``body(vertex_ids=empty)``,
the path before issue 17) and ``full`` (every vertex).

Checks first that all three give the same loss terms (relative ≤ 1e-5) and joints, then
prints, for each batch size and thread count, interleaved (reference and fast alternate,
median of `--repeats` rounds, so machine noise hits both alike):

* one body-stage iteration (loss forward + backward + Adam step: plain Adam for the
  reference, the fused kernel the loops now use for the fast path), ms, and the ratios
  subset/joints (target ≥ 1.7× at batch 1, ≥ 1.5× at 64) and full/joints;
* a whole ``run_smplify`` ("spin" schedule, `--iters` per stage, no recording) per
  iteration, reference (``evaluation="subset"`` under ``reference_paths()``) vs fast, and
  the largest difference of the fitted joints (px).

    python benchmarks/bench_smplify.py [--threads 1 2] [--batches 1 64] [--repeats 15]

Timings on a shared machine vary with its load: compare the ratios; ``uptime`` is printed.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import subprocess

import numpy as np
import torch

from core.body import load_body
from core.fitting.priors import load_pose_prior
from core.fitting.rom import sample_poses
from core.fitting.smplify import FitInit, Stage, body_stage_losses, run_smplify
from core.utils.fastpaths import fast_adam, reference_paths
from timing import interleaved  # benchmarks/timing.py


def _inputs(body, B: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    pose = torch.as_tensor(sample_poses(B // 10 + 1, seed=seed)[:B], dtype=torch.float32)   # 10 families × n
    go = torch.tensor([[np.pi, 0.0, 0.0]]).repeat(B, 1) + 0.1 * torch.randn(B, 3, generator=g)
    betas = 0.5 * torch.randn(B, 10, generator=g)
    transl = torch.tensor([[0.0, 0.1, 45.0]]).repeat(B, 1)
    kp = torch.cat([torch.rand(B, 49, 2, generator=g) * 150 + 37, torch.ones(B, 49, 1)], -1)
    return go, pose, betas, transl, kp


def _paths(reference: bool):
    """The reference implementations (plain Adam, the first GMM) or the fast ones."""
    return reference_paths() if reference else contextlib.nullcontext()


def _iteration(body, prior, stage, B: int, evaluation: str):
    """A callable doing one body-stage iteration with its own parameters and optimiser;
    "subset" is the path before issue 17 (with plain Adam and the first GMM)."""
    go, pose, betas, transl, kp = _inputs(body, B)
    params = [p.clone().requires_grad_(True) for p in (go, pose, betas)]
    reference = evaluation == "subset"
    with _paths(reference):
        opt = fast_adam(params, lr=1e-2)

    def one():
        with _paths(reference):
            terms, _, _, _ = body_stage_losses(body, kp, params[0], params[1], params[2], transl, prior, stage,
                                               evaluation=evaluation)
            opt.zero_grad(set_to_none=True)
            terms["total"].sum().backward()
            opt.step()

    return one


def check_equal(body, prior, stage, B: int = 8) -> tuple[float, float]:
    """(max relative loss difference, max joint difference in px) of joints/subset vs full."""
    go, pose, betas, transl, kp = _inputs(body, B, seed=1)
    with torch.no_grad():
        ref, _, jref, _ = body_stage_losses(body, kp, go, pose, betas, transl, prior, stage, evaluation="full")
        rel = px = 0.0
        for ev in ("subset", "joints"):
            with _paths(ev == "subset"):
                a, _, ja, _ = body_stage_losses(body, kp, go, pose, betas, transl, prior, stage, evaluation=ev)
            rel = max(rel, max(float(((a[k] - ref[k]).abs() / ref[k].abs().clamp(min=1e-6)).max()) for k in a))
            px = max(px, float((ja - jref).abs().max()))
    return rel, px


def whole_fit(body, prior, B: int, iters: int, repeats: int) -> tuple[float, float, float]:
    """run_smplify per iteration, reference ("subset") vs fast ("joints"), and the largest
    difference of the fitted 2D joints (px)."""
    go, pose, betas, transl, kp = _inputs(body, B, seed=2)
    init = FitInit(go, pose, betas, transl, "benchmark")
    kw = dict(init=init, prior=prior, schedule="spin", num_iters=iters, try_flipped_orientation=False)
    res = {}
    def fit(ev):
        with _paths(ev == "subset"):   # the path before: subset evaluation, plain Adam, the first GMM
            res[ev] = run_smplify(body, kp, evaluation=ev, **kw)

    fns = {ev: (lambda ev=ev: fit(ev)) for ev in ("subset", "joints")}
    t = interleaved(fns, repeats, inner=1, warmup=3)
    diff = float((res["subset"].joints2d - res["joints"].joints2d).abs().max())
    return t["subset"] / (2 * iters), t["joints"] / (2 * iters), diff


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--iters", type=int, default=50, help="iterations per stage of the whole-fit timing")
    args = ap.parse_args(argv)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), f"| {os.cpu_count()} CPUs")
    body = load_body("open")
    prior = load_pose_prior("open")
    stage = Stage("body", "body", 100)
    rel, px = check_equal(body, prior, stage)
    print(f"open body: {body.num_vertices} vertices, {len(body.joint_vertex_ids)} needed by the 49 keypoints")
    print(f"joints/subset vs full: max relative loss difference {rel:.2e}, max joint difference {px:.2e} px "
          f"-> {'OK' if rel <= 1e-5 else 'MISMATCH'}")
    print(f"{'threads':>7} {'batch':>6} | {'one iteration, ms: subset':>26} {'full':>8} {'joints':>8} "
          f"{'subset/joints':>14} {'full/joints':>12} | {'run_smplify ms/iter: subset':>28} {'joints':>8} "
          f"{'ratio':>6} {'max Δ px':>9}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for B in args.batches:
            t = interleaved({ev: _iteration(body, prior, stage, B, ev) for ev in ("subset", "full", "joints")},
                            args.repeats, inner=5, warmup=3)
            ref, fast, diff = whole_fit(body, prior, B, args.iters, max(3, args.repeats // 5))
            print(f"{threads:>7} {B:>6} | {1e3 * t['subset']:>26.2f} {1e3 * t['full']:>8.2f} {1e3 * t['joints']:>8.2f} "
                  f"{t['subset'] / t['joints']:>13.2f}x {t['full'] / t['joints']:>11.1f}x | {1e3 * ref:>28.2f} "
                  f"{1e3 * fast:>8.2f} {ref / fast:>5.2f}x {diff:>9.1e}")
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()

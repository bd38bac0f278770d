"""SMPLify speed: one body-stage iteration (loss forward + backward + Adam step) with the
joints-only subset evaluation (``body(..., vertex_ids=empty)``: the ~118 vertices SPIN's 49
keypoints need) versus the full mesh, at batch 1 and 64, on CPU.

    python benchmarks/bench_smplify.py [--threads N] [--repeats R] [--batches 1 64]

Checks first that both evaluations give the same loss (relative difference ≤ 1e-5) and
the same projected joints, then prints ms per iteration and the full/subset ratio
(target: ≥ 3× at batch 64).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from core.body import load_body
from core.fitting.priors import load_pose_prior
from core.fitting.rom import sample_poses
from core.fitting.smplify import Stage, body_stage_losses


def _inputs(body, B: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    pose = torch.as_tensor(sample_poses(B // 10 + 1, seed=seed)[:B], dtype=torch.float32)   # 10 families × n
    go = torch.tensor([[np.pi, 0.0, 0.0]]).repeat(B, 1) + 0.1 * torch.randn(B, 3, generator=g)
    betas = 0.5 * torch.randn(B, 10, generator=g)
    transl = torch.tensor([[0.0, 0.1, 45.0]]).repeat(B, 1)
    kp = torch.cat([torch.rand(B, 49, 2, generator=g) * 150 + 37, torch.ones(B, 49, 1)], -1)
    return go, pose, betas, transl, kp


def _iteration_time(body, prior, stage, B: int, full: bool, repeats: int) -> float:
    go, pose, betas, transl, kp = _inputs(body, B)
    params = [p.clone().requires_grad_(True) for p in (go, pose, betas)]
    opt = torch.optim.Adam(params, lr=1e-2)

    def one():
        terms, _, _, _ = body_stage_losses(body, kp, params[0], params[1], params[2], transl, prior, stage,
                                           full_mesh=full)
        opt.zero_grad(set_to_none=True)
        terms["total"].sum().backward()
        opt.step()

    for _ in range(3):
        one()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        one()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def check_equal(body, prior, stage, B: int = 8) -> tuple[float, float]:
    """(max relative loss difference, max joint difference in px) subset vs full."""
    go, pose, betas, transl, kp = _inputs(body, B, seed=1)
    with torch.no_grad():
        a, pa, ja, _ = body_stage_losses(body, kp, go, pose, betas, transl, prior, stage, full_mesh=False)
        b, pb, jb, _ = body_stage_losses(body, kp, go, pose, betas, transl, prior, stage, full_mesh=True)
    rel = max(float(((a[k] - b[k]).abs() / b[k].abs().clamp(min=1e-6)).max()) for k in a)
    return rel, float((ja - jb).abs().max())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    body = load_body("open")
    prior = load_pose_prior("open")
    stage = Stage("body", "body", 100)
    rel, px = check_equal(body, prior, stage)
    print(f"open body: {body.num_vertices} vertices, {len(body.joint_vertex_ids)} needed by the 49 joints; "
          f"torch threads: {torch.get_num_threads()}")
    print(f"subset vs full: max relative loss difference {rel:.2e}, max joint difference {px:.2e} px "
          f"-> {'OK' if rel <= 1e-5 else 'MISMATCH'}")
    print(f"{'batch':>6} {'joints-only ms/iter':>20} {'full-mesh ms/iter':>18} {'ratio':>7}")
    for B in args.batches:
        sub = _iteration_time(body, prior, stage, B, False, args.repeats)
        full = _iteration_time(body, prior, stage, B, True, args.repeats)
        print(f"{B:>6} {sub:>20.2f} {full:>18.2f} {full / sub:>6.1f}x")


if __name__ == "__main__":
    main()

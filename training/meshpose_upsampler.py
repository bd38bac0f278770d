"""Train MeshPose's low-poly → full-mesh upsampler on random bodies (CPU, a few minutes).

    python -m training.meshpose_upsampler                 # ≈3.5 CPU-minutes; writes
                                                          # assets/body/open/meshpose_upsampler.safetensors (+ .json)
    python -m training.meshpose_upsampler --max-minutes 0 # no wall-time cap: all Adam steps (reproducible)
    python -m training.meshpose_upsampler --steps 200 --out /tmp/up.safetensors   # quick run

Data: bodies generated on the fly (never stored): per-joint range-of-motion poses
(``core.models.meshpose.random_bodies.JOINT_LIMITS_DEG``), a uniformly random global
orientation and betas ~ N(0, 1). The low-poly input is the selection of the body's
vertices, with the paper's noise augmentation (spikes on 25 % of the vertices for half the
samples, Gaussian noise for half of the rest; see ``add_training_noise``).

Two stages, both on the same kind of noisy data:

1. **Least squares, layer by layer.** The upsampler is linear, so for its fixed sparsity
   the L2-optimal weights of each output vertex solve a small (k × k) ridge system
   (pulled towards the barycentric initialisation). Layer 1 is fitted to the level-1
   ground truth; layer 2 to the full mesh, *from layer 1's outputs* on a second pass over
   the same bodies. This gets most of the way in seconds on a CPU.
2. **Adam on the paper's loss** (supplementary §3.2.3): L1 between ground truth and the
   upsampled vertices at each stage (level 1 and full), plus L1 between the 24 joints
   regressed from the ground truth and from the upsampled mesh; cosine learning rate.

Evaluation: mean per-vertex error in mm on held-out random bodies (a different generator
seed), clean and noisy, after each stage.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from core.body import load_body
from core.models.meshpose.lowpoly import load_lowpoly
from core.models.meshpose.random_bodies import sample_bodies
from core.models.meshpose.upsampler import (add_training_noise, build_upsampler, evaluate_upsampler,
                                            save_upsampler, upsampler_path)

EVAL_SEED = 777_001   # held-out bodies (training uses --seed, a different stream)


def _pass(body, lowpoly, num_bodies, seed, chunk, fn) -> None:
    """Generate ``num_bodies`` noisy training pairs in chunks (same bodies for the same seed)
    and call ``fn(centred noisy low (B,V,3), centred GT (B,N,3))``."""
    gen = torch.Generator().manual_seed(seed)
    done = 0
    while done < num_bodies:
        n = min(chunk, num_bodies - done)
        out = sample_bodies(body, n, gen)
        verts = out.vertices.float()
        low = add_training_noise(lowpoly.select(verts), out.smpl_joints[:, 0].float(), gen)
        centre = low.mean(dim=1, keepdim=True)
        fn(low - centre, verts - centre)
        done += n


def _gram(layer, x: torch.Tensor, y: torch.Tensor, G: torch.Tensor, r: torch.Tensor) -> None:
    """Accumulate the per-row normal equations of a SparseVertexLinear: x (B, I, 3) inputs,
    y (B, M, 3) targets; G (M, K, K), r (M, K)."""
    g = x[:, layer.index]                                    # (B, M, K, 3)
    G += torch.einsum("bmkc,bmlc->mkl", g, g)
    r += torch.einsum("bmkc,bmc->mk", g, y)


def _solve(layer, G: torch.Tensor, r: torch.Tensor, ridge: float) -> None:
    """Ridge solution pulled towards the current weights; padding entries stay 0."""
    mask = layer.mask.to(G.dtype)
    w0 = (layer.weight.detach() * layer.mask).to(G.dtype)
    scale = torch.diagonal(G, dim1=1, dim2=2).mean(1).clamp_min(1e-12)      # (M,)
    lam = ridge * scale
    eye = torch.eye(G.shape[1], dtype=G.dtype)
    Gm = G * mask[:, :, None] * mask[:, None, :] + eye * (1 - mask)[:, None, :]
    A = Gm + lam[:, None, None] * eye * mask[:, None, :]
    b = (r + lam[:, None] * w0) * mask
    w = torch.linalg.solve(A, b[..., None])[..., 0] * mask
    with torch.no_grad():
        layer.weight.copy_(w.to(layer.weight.dtype))


@torch.no_grad()
def fit_least_squares(up, body, lowpoly, num_bodies: int, seed: int, ridge: float, chunk: int = 32) -> None:
    """Stage 1 (see module docstring): layer 1, then layer 2 from layer 1's outputs."""
    l1, l2, ids1 = up.layer1, up.layer2, up.level1_ids
    G1 = torch.zeros(l1.num_outputs, l1.index.shape[1], l1.index.shape[1], dtype=torch.float64)
    r1 = torch.zeros(l1.num_outputs, l1.index.shape[1], dtype=torch.float64)
    _pass(body, lowpoly, num_bodies, seed, chunk,
          lambda x, y: _gram(l1, x.double(), y[:, ids1].double(), G1, r1))
    _solve(l1, G1, r1, ridge)
    G1 = r1 = None  # free the layer-1 system before building layer 2's
    G2 = torch.zeros(l2.num_outputs, l2.index.shape[1], l2.index.shape[1], dtype=torch.float64)
    r2 = torch.zeros(l2.num_outputs, l2.index.shape[1], dtype=torch.float64)
    _pass(body, lowpoly, num_bodies, seed, chunk,
          lambda x, y: _gram(l2, l1(x).double(), y.double(), G2, r2))
    _solve(l2, G2, r2, ridge)


def train(args) -> dict:
    torch.manual_seed(args.seed)
    body = load_body(args.body)
    lowpoly = load_lowpoly(body)
    up = build_upsampler(body, lowpoly, k1=args.k1, k2=args.k2)
    report = {"init": evaluate_upsampler(up, body, lowpoly, args.eval_bodies, EVAL_SEED)}
    print(f"barycentric init: {report['init']['mean_mm']:.2f} mm mean vertex error", flush=True)
    start = time.time()
    if args.ls_bodies > 0:
        fit_least_squares(up, body, lowpoly, args.ls_bodies, args.seed + 1, args.ridge)
        report["least_squares"] = evaluate_upsampler(up, body, lowpoly, args.eval_bodies, EVAL_SEED)
        report["least_squares"]["seconds"] = round(time.time() - start, 1)
        print(f"least squares ({args.ls_bodies} bodies): {report['least_squares']['mean_mm']:.2f} mm "
              f"({report['least_squares']['seconds']} s)", flush=True)

    J = body.J_regressor.float()
    level1_ids = up.level1_ids
    opt = torch.optim.Adam(up.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(args.steps, 1), eta_min=args.lr * 0.05)
    gen = torch.Generator().manual_seed(args.seed)
    log = []
    step = 0
    for step in range(1, args.steps + 1):
        out = sample_bodies(body, args.batch, gen)
        verts = out.vertices.float()
        low = add_training_noise(lowpoly.select(verts), out.smpl_joints[:, 0].float(), gen)
        pred = up(low, return_level1=True)
        loss_full = (pred.full - verts).abs().mean()
        loss_l1 = (pred.level1 - verts[:, level1_ids]).abs().mean()
        loss_j = (torch.einsum("jv,bvc->bjc", J, pred.full) - torch.einsum("jv,bvc->bjc", J, verts)).abs().mean()
        loss = loss_full + loss_l1 + loss_j
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % args.log_every == 0 or step == args.steps:
            entry = {"step": step, "loss_mm": 1000 * loss.item(), "seconds": round(time.time() - start, 1)}
            log.append(entry)
            print(json.dumps(entry), flush=True)
        if args.max_minutes and time.time() - start > 60 * args.max_minutes:
            print(f"time limit reached after {step} steps", flush=True)
            break
    up.eval()
    report.update(
        steps=step, seconds=round(time.time() - start, 1),
        clean=evaluate_upsampler(up, body, lowpoly, args.eval_bodies, EVAL_SEED),
        noisy=evaluate_upsampler(up, body, lowpoly, args.eval_bodies, EVAL_SEED, noise=True),
        noisy_init=evaluate_upsampler(build_upsampler(body, lowpoly, k1=args.k1, k2=args.k2), body,
                                      lowpoly, args.eval_bodies, EVAL_SEED, noise=True),
    )
    info = {
        "body": body.name, "lowpoly_vertices": lowpoly.num_vertices,
        "data": "random bodies: per-joint range-of-motion poses (core.models.meshpose.random_bodies), "
                "uniform global orientation, betas ~ N(0,1); generated on the fly",
        "noise": "paper's augmentation: p=0.5 spikes (25% of vertices, +-15% of root-relative position), "
                 "else p=0.5 Gaussian (std 5% of each coordinate), else clean",
        "loss": "L1 level-1 + L1 full + L1 24 regressed joints (metres)",
        "train": {k: getattr(args, k) for k in ("ls_bodies", "ridge", "steps", "batch", "lr", "seed", "k1", "k2")},
        "eval_seed": EVAL_SEED, "report": report, "log": log,
    }
    out_path = args.out or upsampler_path(body.name)
    save_upsampler(up, out_path, info)
    print(json.dumps(report, indent=1))
    print(f"wrote {out_path}")
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--body", default="open")
    p.add_argument("--ls-bodies", type=int, default=2048, help="bodies for the least-squares stage (0: skip)")
    p.add_argument("--ridge", type=float, default=1e-3, help="ridge weight (relative to the Gram diagonal)")
    p.add_argument("--steps", type=int, default=300, help="Adam steps on the paper's L1 loss")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--k1", type=int, default=16)
    p.add_argument("--k2", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-bodies", type=int, default=512)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--max-minutes", type=float, default=6.0,
                   help="stop the Adam stage after this wall time (0: no limit; the committed file hit it)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

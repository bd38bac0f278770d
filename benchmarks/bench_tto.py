"""EFT and Meta-HMR per step on CPU: the fast paths against the reference paths, same run.

Fast (default): fused Adam over the network's parameters (``core.utils.fastpaths.fast_adam``)
and the joints-only body evaluation. Reference: the same loops inside
``core.utils.fastpaths.reference_paths()`` (plain Adam, the body's subset evaluation) — the
path before issue 17. Each configuration alternates reference and fast runs (median of
`--repeats`), on one random 224 crop with random keypoints, every step taken (no early
stop), and prints ms per step, the ratio, and the largest difference of the final meshes.

    python benchmarks/bench_tto.py [--threads 1 2] [--models hmr_blazepose hmr] [--steps 6]

Models: "hmr_blazepose" (the studio's default: the shipped weights) and "hmr" (ResNet-50,
SPIN's layout, untrained — latency does not depend on the weights). ``uptime`` is printed;
compare ratios, not absolute numbers, on a shared machine.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import time

import numpy as np
import torch

from core.body import load_body
from core.fitting.eft import EFTConfig, run_eft
from core.fitting.meta_hmr import MetaHMRConfig, run_meta_hmr
from core.utils.fastpaths import reference_paths


def _model(name: str, body):
    from core.models import create_model
    from core.models.shipped import load_shipped

    if name == "hmr_blazepose":
        model = load_shipped("hmr_blazepose", body)
        if model is None:
            raise SystemExit("the shipped hmr_blazepose weights need mediapipe: pip install -e '.[detect]'")
        return model
    return create_model(name, body=body)


def _time(fn, reference: bool):
    t0 = time.perf_counter()
    if reference:
        with reference_paths():
            out = fn()
    else:
        out = fn()
    return time.perf_counter() - t0, out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--models", nargs="+", default=["hmr_blazepose", "hmr"])
    ap.add_argument("--steps", type=int, default=6, help="optimisation steps per run")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), f"| {os.cpu_count()} CPUs")
    body = load_body("open")
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, (1, 224, 224, 3), dtype=np.uint8)
    kp = np.concatenate([rng.uniform(40, 180, (1, 49, 2)), np.ones((1, 49, 1))], -1).astype(np.float32)
    print(f"{'method':<9} {'model':<14} {'threads':>7} | {'reference ms/step':>18} {'fast ms/step':>13} "
          f"{'ratio':>6} {'max Δ vertex (m)':>17}")
    for name in args.models:
        model = _model(name, body)
        runs = {
            "eft": (lambda: run_eft(model, crops, kp, EFTConfig(max_iters=args.steps, threshold=0.0), record=False),
                    lambda r: int(r.iterations[0])),
            "meta-hmr": (lambda: run_meta_hmr(model, crops, kp, config=MetaHMRConfig(
                test_val_step=args.steps, adapt_val_step=False), record=False),
                         lambda r: int(r.updates[0])),
        }
        for threads in args.threads:
            torch.set_num_threads(threads)
            for method, (fn, steps_of) in runs.items():
                fn()                                    # warm-up
                times = {True: [], False: []}
                outs = {}
                for _ in range(args.repeats):
                    for ref in (True, False):
                        t, out = _time(fn, ref)
                        times[ref].append(t / (steps_of(out) + 1))   # + the final forward pass
                        outs[ref] = out
                r, f = float(np.median(times[True])), float(np.median(times[False]))
                diff = float((outs[True].vertices - outs[False].vertices).abs().max())
                print(f"{method:<9} {name:<14} {threads:>7} | {1e3 * r:>18.1f} {1e3 * f:>13.1f} {r / f:>5.2f}x "
                      f"{diff:>17.1e}", flush=True)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()

"""Backbone speed on CPU: BlazePose GHUM vs ResNet-50 and HRNet-W32, measured in one run.

For each backbone, batch size and thread count: forward (eval, ``torch.inference_mode``)
and forward + backward (train mode, gradient of the sum of the outputs' means). Inputs are
the project's crops: 224² ImageNet-normalised for every backbone (BlazePose resizes them to
its 256² inside, which is timed). What each backbone computes:

* ``blazepose`` — what the learned variants use: the feature pyramid (strides 4–32) and
  the 2×2 global map (the segmentation branch is skipped);
* ``blazepose_all`` — every output of the network (landmarks, presence, segmentation,
  heatmaps, world landmarks) plus the features;
* ``resnet50`` — layer4 (B, 2048, 7, 7); ``hrnet_w32`` — the four branch outputs.

Each figure is the best of ``--reps`` timed calls after 3 warm-up calls; the ratio columns divide
ResNet-50's time by each backbone's (> 1 = faster than ResNet-50) in the same run.

    python benchmarks/bench_backbones.py                      # batch 1 and 16, 1 and 2 threads
    python benchmarks/bench_backbones.py --batch 1 --threads 2 --reps 10

Target (issue 11): BlazePose forward at batch 1 ≤ 15 ms on 2 idle cores and ≥ 5× faster
than ResNet-50. The machine is shared: `uptime` is printed with the figures.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.models.backbones import create_backbone  # noqa: E402
from core.models.backbones.blazepose import BLAZEPOSE_OUTPUTS  # noqa: E402
from timing import best_time  # noqa: E402  (benchmarks/timing.py)


def make_runner(name: str):
    """(module, fn(images) → list of output tensors)."""
    if name.startswith("blazepose"):
        m = create_backbone("blazepose")
        outputs = BLAZEPOSE_OUTPUTS if name == "blazepose_all" else ("pyramid", "global")

        def run(x):
            o = m(x, outputs)
            return [t for t in (o.landmarks, o.presence, o.segmentation, o.heatmaps, o.world_landmarks,
                                o.global_map, *o.pyramid.values()) if t is not None]
        return m, run
    if name == "hrnet_w32":
        m = create_backbone("hrnet_w32")
        return m, lambda x: list(m.forward_branches(x)) if hasattr(m, "forward_branches") else [m.forward_features(x)]
    m = create_backbone(name)
    return m, lambda x: [m.forward_features(x)]


def measure(name: str, batch: int, reps: int) -> tuple[float, float]:
    m, run = make_runner(name)
    x = torch.randn(batch, 3, 224, 224)
    m.eval()
    with torch.inference_mode():
        fwd = best_time(lambda: run(x), reps, warmup=3)   # oneDNN builds its kernels on the first calls
    m.train()

    def step():
        m.zero_grad(set_to_none=True)
        sum(t.float().mean() for t in run(x)).backward()
    both = best_time(step, max(1, reps // 3), warmup=1)
    return fwd, both


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--backbones", nargs="+", default=["blazepose", "blazepose_all", "resnet50", "hrnet_w32"])
    args = p.parse_args(argv)
    print(f"uptime: {os.popen('uptime').read().strip()}  (torch {torch.__version__}, {os.cpu_count()} CPUs)")
    print(f"{'backbone':>14s} {'thr':>3s} {'batch':>5s} {'fwd ms':>9s} {'fwd+bwd ms':>11s} "
          f"{'fwd vs R50':>10s} {'f+b vs R50':>10s}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for batch in args.batch:
            rows = {name: measure(name, batch, args.reps) for name in args.backbones}
            ref = rows.get("resnet50")
            for name, (fwd, both) in rows.items():
                r1 = f"{ref[0] / fwd:9.2f}×" if ref else "-"
                r2 = f"{ref[1] / both:9.2f}×" if ref else "-"
                print(f"{name:>14s} {threads:3d} {batch:5d} {fwd * 1e3:9.1f} {both * 1e3:11.1f} {r1:>10s} {r2:>10s}")
    print(f"uptime: {os.popen('uptime').read().strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

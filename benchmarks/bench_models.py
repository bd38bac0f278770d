"""Forward latency of the regressors on CPU: today's eager path against the inference path.

"today": the model as ``create_model`` builds it, eval mode, under ``torch.no_grad`` (the
path before issue 17). "inference": the same weights after
``core.models.inference.prepare_for_inference`` (BatchNorm folded into the convolutions,
channels-last, no gradients) under ``torch.inference_mode`` — what the methods run.
For PyMAF also "no maps": the inference path without the IUV head and feature summaries
(``with_iuv=False``: a method asked for no maps). Untrained weights (latency does not depend
on them) with randomised BatchNorm statistics, the embedded open body. The two paths
alternate (median of `--reps` rounds after a warm-up), so machine noise hits both alike;
the largest output difference is printed as a check (≤ 1e-5 expected).

    python benchmarks/bench_models.py                        # batch 1 and 8, 1 and 2 threads
    python benchmarks/bench_models.py --batch 1 --threads 1 --models pymaf

Timings on a shared machine vary with its load: compare the ratios; ``uptime`` is printed.
"""
from __future__ import annotations

import argparse
import copy
import os
import subprocess

import torch
from torch import nn

from core.body import load_body
from core.geometry import cliff_bbox_info
from core.models import create_model
from core.models.inference import prepare_for_inference
from timing import interleaved  # benchmarks/timing.py

DEFAULT_MODELS = ["hmr", "pymaf", "cliff_res50", "cliff_hrnet48", "hmr_blazepose", "pymaf_blazepose"]


def _randomise_batchnorm(model: nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.2 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))


def _final(out) -> torch.Tensor:
    if hasattr(out, "levels"):
        return out.levels[-1].state.rotmat
    return out.iterations[-1].rotmat


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    args = p.parse_args(argv)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), f"| {os.cpu_count()} CPUs")
    torch.manual_seed(0)
    body = load_body("open")
    body(betas=torch.zeros(1, 10))
    print(f"torch {torch.__version__}, body 'open' ({body.num_vertices} vertices)")
    print(f"{'model':<16}{'batch':>6}{'threads':>8} | {'today ms/img':>13}{'inference':>11}{'ratio':>7}"
          f"{'no maps':>9}{'ratio':>7}{'max diff':>10}")
    for name in args.models:
        try:
            model = create_model(name, body=body, **({"layout": "project"} if name == "pymaf" else {})).eval()
        except ImportError as e:          # BlazePose models need mediapipe
            print(f"{name:<16} skipped: {e}")
            continue
        _randomise_batchnorm(model)
        fast = copy.deepcopy(model)
        prepare_for_inference(fast)
        h, w = getattr(model, "input_size", (224, 224))
        for threads in args.threads:
            torch.set_num_threads(threads)
            for batch in args.batch:
                x = torch.randn(batch, 3, h, w)
                extra = ()
                if name.startswith("cliff"):
                    extra = (cliff_bbox_info(torch.full((batch, 2), 300.0), torch.full((batch,), 2.0),
                                             torch.tensor([[600.0, 800.0]]).expand(batch, 2),
                                             torch.full((batch,), 1000.0)),)

                def today():
                    with torch.no_grad():
                        return model(x, *extra)

                def inference():
                    with torch.inference_mode():
                        return fast(x, *extra)

                fns = {"today": today, "inference": inference}
                if name.startswith("pymaf"):
                    def no_maps():
                        with torch.inference_mode():
                            return fast(x, with_iuv=False)
                    fns["no maps"] = no_maps
                t = interleaved(fns, args.reps)
                diff = float((_final(today()) - _final(inference())).abs().max())
                nm = (f"{1e3 * t['no maps'] / batch:>9.1f}{t['today'] / t['no maps']:>6.2f}x"
                      if "no maps" in t else f"{'':>9}{'':>7}")
                print(f"{name:<16}{batch:>6}{threads:>8} | {1e3 * t['today'] / batch:>13.1f}"
                      f"{1e3 * t['inference'] / batch:>11.1f}{t['today'] / t['inference']:>6.2f}x{nm}{diff:>10.1e}",
                      flush=True)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()

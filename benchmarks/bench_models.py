"""Forward latency of the regressors on CPU (HMR, PyMAF subset vs full-mesh levels, CLIFF).

Untrained weights (latency does not depend on them), the embedded open body, eval mode,
``torch.no_grad``, one intra-op thread by default (`--threads`; on a shared machine extra
threads mostly measure scheduler waits). Each configuration: one warm-up pass, then the
best of `--reps` timed passes. The ratio lines compare PyMAF's default (intermediate meshes evaluated on the ≈431
sampling vertices only) with evaluating every intermediate mesh in full — for the whole
forward and for the body evaluations alone.

    python benchmarks/bench_models.py                    # batch 1 and 16
    python benchmarks/bench_models.py --batch 1 --reps 5 --models pymaf

Timings on a shared machine vary with its load: compare ratios, not absolute numbers.
"""
from __future__ import annotations

import argparse

import torch

from core.body import load_body
from core.geometry import cliff_bbox_info
from core.models import create_model
from core.models.prediction import evaluate_state
from timing import best_time  # benchmarks/timing.py


def bench_body_levels(body, model, batch: int, reps: int) -> tuple[float, float]:
    """Body evaluations of PyMAF's four levels: 3 subsets + 1 full vs 4 full."""
    ids = torch.as_tensor(body.sampling_vertex_ids, dtype=torch.long)
    state = model.regressor[0].initial_state(batch)
    subset = best_time(lambda: [evaluate_state(body, state, ids) for _ in range(3)]
                         + [evaluate_state(body, state)], reps)
    full = best_time(lambda: [evaluate_state(body, state) for _ in range(4)], reps)
    return subset, full


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--models", nargs="+", default=["hmr", "pymaf", "cliff_res50", "cliff_hrnet48"])
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (0 = torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    body = load_body("open")
    # warm the body once so the first model does not pay for lazy initialisation
    body(betas=torch.zeros(1, 10))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, body 'open' "
          f"({body.num_vertices} vertices, {len(body.sampling_vertex_ids)} sampling vertices)")
    print(f"{'model':<28}{'batch':>6}{'best s':>11}{'ms / image':>12}")
    with torch.no_grad():
        for name in args.models:
            cfg = {"layout": "project"} if name == "pymaf" else {}
            model = create_model(name, body, **cfg).eval()
            h, w = getattr(model, "input_size", (224, 224))
            for batch in args.batch:
                x = torch.randn(batch, 3, h, w)
                if name.startswith("cliff"):
                    info = cliff_bbox_info(torch.full((batch, 2), 300.0), torch.full((batch,), 2.0),
                                           torch.tensor([[600.0, 800.0]]).expand(batch, 2),
                                           torch.full((batch,), 1000.0))
                    runs = {name: lambda: model(x, info)}
                elif name == "pymaf":
                    runs = {"pymaf (subset levels)": lambda: model(x, intermediate="subset"),
                            "pymaf (full-mesh levels)": lambda: model(x, intermediate="full")}
                else:
                    runs = {name: lambda: model(x)}
                results = {}
                for label, fn in runs.items():
                    results[label] = t = best_time(fn, args.reps)
                    print(f"{label:<28}{batch:>6}{t:>11.3f}{1000 * t / batch:>12.1f}")
                if name == "pymaf":
                    sub, full = results["pymaf (subset levels)"], results["pymaf (full-mesh levels)"]
                    print(f"  ratio full/subset, whole forward: {full / sub:.3f}")
                    b_sub, b_full = bench_body_levels(body, model, batch, args.reps)
                    print(f"  body evaluations of the 4 levels: subset {1000 * b_sub:.1f} ms, "
                          f"full {1000 * b_full:.1f} ms, ratio {b_full / b_sub:.2f}")


if __name__ == "__main__":
    main()

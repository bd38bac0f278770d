"""Body forward: full mesh vs subset evaluation (joints only; PyMAF's 431 points).

    python benchmarks/bench_body.py [--body open|smpl --smpl-dir DIR] [--repeats 20]

Prints milliseconds per forward and the speed-up of each subset path over the full mesh,
measured in the same run (the baseline is the full-mesh forward).
"""
import argparse
import time

import torch

from core.body import load_body


def timeit(fn, repeats):
    for _ in range(3):
        fn()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--body", default="open")
    ap.add_argument("--smpl-dir", default=None)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    body = load_body(a.body, data_dir=a.smpl_dir)
    pts = torch.as_tensor(body.sampling_vertex_ids)
    print(f"body={a.body} V={body.num_vertices} threads={a.threads}")
    print(f"{'batch':>5} {'full ms':>9} {'joints ms':>10} {'x':>6} {'431pts ms':>10} {'x':>6}")
    with torch.no_grad():
        for B in (1, 64):
            p = dict(betas=torch.randn(B, 10), body_pose=torch.randn(B, 69) * 0.3,
                     global_orient=torch.randn(B, 3))
            full = timeit(lambda: body(**p), a.repeats)
            jo = timeit(lambda: body(**p, vertex_ids=torch.arange(0)), a.repeats)
            sub = timeit(lambda: body(**p, vertex_ids=pts), a.repeats)
            print(f"{B:>5} {full:>9.2f} {jo:>10.2f} {full / jo:>6.1f} {sub:>10.2f} {full / sub:>6.1f}")


if __name__ == "__main__":
    main()

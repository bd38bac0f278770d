"""MeshPose forward time per crop on the CPU (batch 1), per backbone.

    python benchmarks/bench_meshpose.py [--repeats 10] [--threads 1] [--size 224]

For each backbone (HRNet-W32 = MeshPose, ResNet-50 = MeshPose-S, MobileNetV2 = MeshPose-XS)
prints milliseconds for the backbone alone and for the whole model (heads, fusion and
upsampling to the full mesh), and the ratio to the baseline: the ResNet-50 HMR regressor
(SPIN's network, 3 IEF iterations, parameters only) on the same crop. Baseline and model
calls are interleaved and the *minimum* over the repeats is reported, so that load from
other processes on a shared machine affects both sides alike. Weights are random (speed
does not depend on them).
"""
import argparse
import time

import torch


def one_call_ms(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def interleaved_min(fns, repeats: int) -> list[float]:
    """Minimum milliseconds per function over ``repeats`` interleaved rounds (after 2 warm-ups)."""
    for fn in fns:
        fn()
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            best[i] = min(best[i], one_call_ms(fn))
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--size", type=int, default=224, help="square crop side")
    ap.add_argument("--backbones", default="hrnet_w32,resnet50,mobilenet_v2")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    from core.body import load_body
    from core.models import create_model
    from core.models.meshpose import MeshPose

    body = load_body("open")
    x = torch.randn(1, 3, a.size, a.size)
    hmr = create_model("hmr", body=body).eval()
    hmr.input_size = (a.size, a.size)
    print(f"CPU, batch 1, {a.size}x{a.size} crop, threads={a.threads}, min of {a.repeats} interleaved runs")
    print(f"{'backbone':>14} {'backbone ms':>12} {'MeshPose ms':>12} {'HMR-R50 ms':>11} {'x HMR':>7} {'params M':>9}")
    for name in a.backbones.split(","):
        model = MeshPose(body, backbone=name, input_size=(a.size, a.size)).eval()
        params = sum(p.numel() for p in model.parameters()) / 1e6
        with torch.inference_mode():
            t_base, t_backbone, t_full = interleaved_min(
                [lambda: hmr(x), lambda: model.backbone(x), lambda: model(x)], a.repeats)
        print(f"{name:>14} {t_backbone:12.1f} {t_full:12.1f} {t_base:11.1f} {t_full / t_base:7.2f} {params:9.1f}")


if __name__ == "__main__":
    main()

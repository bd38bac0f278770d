"""MeshPose forward time per crop on the CPU (batch 1), per backbone.

    python benchmarks/bench_meshpose.py [--repeats 10] [--threads 1] [--size 224]

For each backbone (HRNet-W32 = MeshPose, ResNet-50 = MeshPose-S, MobileNetV2 = MeshPose-XS)
prints milliseconds for the backbone alone and for the whole model (heads, fusion and
upsampling to the full mesh), and the ratio to the baseline measured in the same run: the
ResNet-50 HMR regressor (SPIN's network, 3 IEF iterations, parameters only) on the same
crop size. Weights are random (speed does not depend on them).
"""
import argparse
import time

import torch


def timeit(fn, repeats: int) -> float:
    """Median milliseconds of ``repeats`` calls after 2 warm-up calls."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2] * 1000


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
    with torch.inference_mode():
        base = timeit(lambda: hmr(x), a.repeats)
    print(f"CPU, batch 1, {a.size}x{a.size} crop, threads={a.threads}, median of {a.repeats}")
    print(f"baseline: HMR ResNet-50 regressor {base:8.1f} ms")
    print(f"{'backbone':>14} {'backbone ms':>12} {'MeshPose ms':>12} {'x HMR':>7} {'params M':>9}")
    for name in a.backbones.split(","):
        model = MeshPose(body, backbone=name, input_size=(a.size, a.size)).eval()
        params = sum(p.numel() for p in model.parameters()) / 1e6
        with torch.inference_mode():
            t_backbone = timeit(lambda: model.backbone(x), a.repeats)
            t_full = timeit(lambda: model(x), a.repeats)
        print(f"{name:>14} {t_backbone:12.1f} {t_full:12.1f} {t_full / base:7.2f} {params:9.1f}")


if __name__ == "__main__":
    main()

"""Data throughput: synthetic generation, shard reading, SPIN .npz loading.

    python benchmarks/bench_data.py [--num 64] [--workers 2] [--quick]

Prints samples/s and ratios against baselines:

* label rendering: ``core.data.render_labels.raycast_rasters`` (one scene, 224² + 56² +
  vertex rays in one cast) vs ``core.render.render_maps`` called per raster (a scene build
  per raster) — same labels;
* generation: samples/s of ``SyntheticGenerator`` (1 process) and of ``write_dataset`` with
  ``--workers`` processes, vs the 200 samples/s target;
* reading: ``SyntheticShards`` samples/s (decode + normalise) and through a DataLoader with
  ``--workers`` workers; ``SpinNpzDataset`` (JPEG decode, SPIN crop + augmentation) on
  640×480 images.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET = 200.0


def _rate(n, dt):
    return n / dt if dt > 0 else float("inf")


def bench_render(body, n: int) -> None:
    from core.data.render_labels import raycast_rasters
    from core.data.synthetic import SyntheticGenerator
    from core.render.camera import spin_intrinsics
    from core.render.iuv import render_maps

    gen = SyntheticGenerator(body, nthreads=1)
    rng = np.random.default_rng(0)
    p = gen.sample_params(rng, n)
    pose = torch.as_tensor(p["pose"])
    with torch.no_grad():
        v = body(betas=torch.as_tensor(p["betas"]), body_pose=pose[:, 3:], global_orient=pose[:, :3]).vertices.numpy()
    _, transl = gen.place_camera(v, rng)
    verts = (v + transl[:, None]).astype(np.float32)
    K = spin_intrinsics()
    raycast_rasters(verts[0], body.faces, K, 224, [(224, 224), (56, 56)], nthreads=1)          # warm-up
    t = time.perf_counter()
    for i in range(n):
        raycast_rasters(verts[i], body.faces, K, 224, [(224, 224), (56, 56)], vertex_occlusion=True, nthreads=1)
    one = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(n):
        render_maps(verts[i:i + 1], body.faces, K, 224, body.face_part, body.face_uv, visibility=True,
                    cull_back_faces=True)
        render_maps(verts[i:i + 1], body.faces, K, 224, body.face_part, body.face_uv, out_size=(56, 56),
                    visibility=False, cull_back_faces=True)
    two = time.perf_counter() - t
    print(f"label raycast (224²+56²+vertex rays): one scene {1000 * one / n:.1f} ms/sample, "
          f"render_maps per raster {1000 * two / n:.1f} ms/sample → ×{two / one:.2f}")


def bench_generate(body, n: int, workers: int, out: Path) -> None:
    from core.data.synthetic import SyntheticGenerator, write_dataset

    gen = SyntheticGenerator(body, nthreads=1)
    gen.generate(np.random.default_rng(1), 2)                                          # warm-up
    t, c = time.perf_counter(), time.process_time()
    gen.generate(np.random.default_rng(2), n)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    r1, rc = _rate(n, dt), _rate(n, dc)
    print(f"generation, 1 process (in memory): {r1:.1f} samples/s wall ({1000 / r1:.1f} ms/sample), "
          f"{rc:.1f} samples/s per CPU-second ({1000 / rc:.1f} ms CPU/sample; what one free core gives) "
          f"→ 2 free cores ≈ {2 * rc:.0f}/s = {2 * rc / TARGET:.2f}× the {TARGET:.0f}/s target")
    t = time.perf_counter()
    write_dataset(out, num=n, shard_size=max(1, n // (2 * workers)), seed=0, workers=workers, progress=False)
    dt = time.perf_counter() - t
    rw = _rate(n, dt)
    print(f"write_dataset, {workers} worker(s), incl. start-up and compressed shards: {rw:.1f} samples/s "
          f"→ {rw / TARGET:.2f}× target")


def bench_read(out: Path, workers: int) -> None:
    from torch.utils.data import DataLoader

    from core.data import DeterministicStream, SyntheticShards

    ds = SyntheticShards(out, pixel_noise=0.4)
    n = len(ds)
    ds.get(0, np.random.default_rng(0))
    t = time.perf_counter()
    for i in range(n):
        ds.get(i, np.random.default_rng(i))
    r = _rate(n, time.perf_counter() - t)
    print(f"SyntheticShards.get (cached shards): {r:.0f} samples/s → {r / TARGET:.1f}× target")
    loader = DataLoader(DeterministicStream(ds, seed=0), batch_size=16, num_workers=workers)
    t = time.perf_counter()
    m = sum(b["img"].shape[0] for b in loader)
    r = _rate(m, time.perf_counter() - t)
    print(f"DataLoader, {workers} workers, batch 16 (incl. worker start-up and shard decode): {r:.0f} samples/s "
          f"→ {r / TARGET:.1f}× target")


def bench_npz(tmp: Path, n: int) -> None:
    import cv2

    from core.data import AugmentConfig, SpinNpzDataset

    rng = np.random.default_rng(0)
    (tmp / "img").mkdir(exist_ok=True)
    names = []
    for i in range(min(n, 16)):
        names.append(f"img/{i}.jpg")
        cv2.imwrite(str(tmp / names[-1]), rng.integers(0, 255, size=(480, 640, 3), dtype=np.uint8))
    k = len(names)
    np.savez(tmp / "bench.npz", imgname=np.array(names), center=np.tile([[320.0, 240.0]], (k, 1)),
             scale=np.full(k, 2.0), part=np.concatenate([rng.uniform(200, 400, (k, 24, 2)), np.ones((k, 24, 1))], -1))
    ds = SpinNpzDataset(tmp / "bench.npz", tmp, augment=AugmentConfig())
    ds.get(0, rng)
    t = time.perf_counter()
    for i in range(n):
        ds.get(i % k, rng)
    r = _rate(n, time.perf_counter() - t)
    print(f"SpinNpzDataset (640×480 JPEG, crop + SPIN augmentation): {r:.0f} samples/s → {r / TARGET:.1f}× target")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--num", type=int, default=64, help="samples per measurement")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="16 samples, 1 worker")
    args = ap.parse_args(argv)
    if args.quick:
        args.num, args.workers = 16, 1
    torch.set_num_threads(1)
    from core.body import load_body

    body = load_body("open")
    print(f"torch threads 1, {args.num} samples, {args.workers} worker(s)")
    import os

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.1f} (wall-clock rates shrink with load; "
          f"CPU-time rates do not)")
    bench_render(body, min(args.num, 32))
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "synth"
        bench_generate(body, args.num, args.workers, out)
        bench_read(out, args.workers)
        bench_npz(Path(d), args.num)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Data throughput: synthetic generation, shard reading, SPIN .npz loading.

    python benchmarks/bench_data.py [--num 256] [--workers 2] [--quick]

Prints samples/s, CPU time per sample (``time.process_time``; for worker pools the parent's
plus the workers' ``getrusage``), the load average, and ratios against baselines:

* label rendering: ``core.data.render_labels.raycast_label_batch`` (a batch of bodies; per
  body one culled scene, the 224² + 56² pixel rays inside the body parts' projected boxes
  in one cast, occlusion rays for camera-facing vertices) vs ``raycast_rasters`` (one body,
  every pixel ray) vs ``core.render.render_maps`` called per raster (a scene build per
  raster) — the same labels;
* generation: ``SyntheticGenerator.generate`` in one process (one Open3D thread) with the
  share spent in the label raycast, shard writing, and ``write_dataset`` with 1 process and
  with ``--workers`` processes, start-up included and in steady state (from the difference
  of two runs), vs the 200 samples/s target;
* reading: ``SyntheticShards`` samples/s (decode + normalise) and through a DataLoader with
  ``--workers`` workers; ``SpinNpzDataset`` (JPEG decode, SPIN crop + augmentation) on
  640×480 images.

Wall-clock rates fall when other processes share the cores; CPU time per sample does not
(much), so "2 free cores" estimates are ``2 / CPU-seconds per sample``.
"""
from __future__ import annotations

import argparse
import os
import resource
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


def _load() -> str:
    return "load average " + "/".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def _cpu_all() -> float:
    """CPU seconds of this process and its finished children (worker pools)."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _timed(fn, reps: int = 1):
    """(wall s, CPU s) of the fastest of ``reps`` calls (by CPU time)."""
    best = None
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        fn()
        r = (time.perf_counter() - t, time.process_time() - c)
        best = r if best is None or r[1] < best[1] else best
    return best


def _posed(body, gen, n, seed=0):
    rng = np.random.default_rng(seed)
    p = gen.sample_params(rng, n)
    pose = torch.as_tensor(p["pose"])
    with torch.no_grad():
        v = body(betas=torch.as_tensor(p["betas"]), body_pose=pose[:, 3:], global_orient=pose[:, :3]).vertices.numpy()
    _, transl = gen.place_camera(v, rng)
    return (v + transl[:, None]).astype(np.float32)


def bench_render(body, n: int) -> None:
    from core.data.render_labels import raycast_label_batch, raycast_rasters
    from core.data.synthetic import SyntheticGenerator
    from core.render.camera import spin_intrinsics
    from core.render.iuv import render_maps

    gen = SyntheticGenerator(body, nthreads=1)
    verts = _posed(body, gen, n)
    K, sizes = spin_intrinsics(), [(224, 224), (56, 56)]
    parts = body.face_part
    raycast_label_batch(verts[:2], body.faces, K, 224, sizes, face_groups=parts, nthreads=1)  # warm-up
    raycast_rasters(verts[0], body.faces, K, 224, sizes, nthreads=1)
    _, batch = _timed(lambda: raycast_label_batch(verts, body.faces, K, 224, sizes, face_groups=parts, nthreads=1),
                      reps=3)
    _, one_box = _timed(lambda: raycast_label_batch(verts, body.faces, K, 224, sizes, nthreads=1), reps=3)
    _, one = _timed(lambda: [raycast_rasters(v, body.faces, K, 224, sizes, nthreads=1) for v in verts])
    _, per = _timed(lambda: [(render_maps(verts[i:i + 1], body.faces, K, 224, body.face_part, body.face_uv,
                                          visibility=True, cull_back_faces=True),
                              render_maps(verts[i:i + 1], body.faces, K, 224, body.face_part, body.face_uv,
                                          out_size=(56, 56), visibility=False, cull_back_faces=True))
                             for i in range(n)])
    ms = lambda s: 1000 * s / n  # noqa: E731
    print(f"label raycast (224² + 56² + vertex rays), CPU ms/sample: raycast_label_batch {ms(batch):.2f} "
          f"(rays in the 24 part boxes; in one box per body {ms(one_box):.2f}), raycast_rasters per body "
          f"{ms(one):.2f} (×{one / batch:.2f}), render_maps per raster {ms(per):.2f} (×{per / batch:.2f})")


def bench_generate(body, n: int, workers: int, tmp: Path) -> None:
    from core.data.render_labels import raycast_label_batch
    from core.data.synthetic import CHUNK, SyntheticGenerator, generate_shard, save_shard, write_dataset

    gen = SyntheticGenerator(body, nthreads=1)
    gen.generate(np.random.default_rng(1), 4)                                           # warm-up
    arrays = {}
    dt, dc = _timed(lambda: arrays.update(generate_shard(gen, 0, 0, n)), reps=2)
    verts = _posed(body, gen, CHUNK, seed=3)
    _, rc = _timed(lambda: raycast_label_batch(verts, body.faces, gen.K, 224, [(224, 224), (56, 56)],
                                               face_groups=body.face_part, nthreads=1), reps=3)
    _, sc = _timed(lambda: save_shard(tmp / "bench_shard.npz", arrays), reps=2)
    ms, ray_ms, save_ms = 1000 * dc / n, 1000 * rc / CHUNK, 1000 * sc / n
    total = ms + save_ms
    print(f"generation, 1 process, 1 Open3D thread, {_load()}: {_rate(n, dt):.0f} samples/s wall, "
          f"{ms:.2f} ms CPU/sample (label raycast {ray_ms:.2f}, the rest {ms - ray_ms:.2f}) "
          f"+ writing the shard {save_ms:.2f} ms CPU/sample (labels deflated, image stored) "
          f"= {total:.2f} ms → 2 free cores ≈ {2000 / total:.0f}/s = {2000 / total / TARGET:.2f}× the "
          f"{TARGET:.0f}/s target")

    def run(k: int, num: int, w: int):
        out = tmp / f"synth_w{w}_{k}"
        t, c = time.perf_counter(), _cpu_all()
        write_dataset(out, num=num, shard_size=max(1, min(CHUNK * 2, num // (2 * w))), seed=0, workers=w,
                      progress=False)
        return time.perf_counter() - t, _cpu_all() - c

    for w in sorted({1, workers}):
        (t1, c1), (t2, c2) = run(0, n, w), run(1, 2 * n, w)
        steady, steady_cpu = _rate(n, t2 - t1), 1000 * (c2 - c1) / n
        print(f"write_dataset, {w} process(es){' (Open3D threads: all)' if w == 1 else ''}, {_load()}: "
              f"{2 * n} samples {_rate(2 * n, t2):.0f}/s incl. start-up ({1000 * c2 / (2 * n):.2f} ms CPU/sample); "
              f"steady state {steady:.0f}/s wall ({steady_cpu:.2f} ms CPU/sample) → {steady / TARGET:.2f}× target")


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
    ap.add_argument("--num", type=int, default=256, help="samples per measurement")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="32 samples, 1 worker")
    args = ap.parse_args(argv)
    if args.quick:
        args.num, args.workers = 32, 1
    torch.set_num_threads(1)
    from core.body import load_body

    body = load_body("open")
    print(f"torch threads 1, {args.num} samples, {args.workers} worker(s); machine: {os.cpu_count()} CPUs, "
          f"{_load()} (wall-clock rates shrink with load; CPU-time rates much less)")
    bench_render(body, min(args.num, 32))
    with tempfile.TemporaryDirectory() as d:
        bench_generate(body, args.num, args.workers, Path(d))
        bench_read(Path(d) / f"synth_w{args.workers}_0", args.workers)
        bench_npz(Path(d), args.num)
    return 0


if __name__ == "__main__":
    sys.exit(main())

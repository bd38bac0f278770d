"""Speed of core.render: IUV + visibility frames/s, and the soft silhouette's forward+backward.

    python benchmarks/bench_render.py            # full run (a few minutes on 2 cores)
    python benchmarks/bench_render.py --quick    # smaller repeats

Prints, for a ~7k-vertex body at 224×224 (the open body in the mean pose seen by SPIN's
camera if ``core.body`` loads, else a procedural mesh of the same size):

- IUV + visibility frames/s (one scene build per frame, pixel rays + one occlusion ray per
  vertex), at 224×224 and cast at 112×112, with and without back-face culling;
- a baseline in the same run: a naive per-pixel numpy ray–triangle loop (vectorised over
  faces) on a small crop, extrapolated to 224×224, and the speed-up ratio;
- soft silhouette forward+backward at batch 32 with ~1000 faces at 56×56 and 112×112
  (tile pruning + chunking), eager and ``compiled=True`` (torch.compile), and the pruning
  speed-up against the unpruned evaluation at a size where the unpruned one fits in time.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core.render import project_points, raycast, render_maps, spin_intrinsics, soft_silhouette  # noqa: E402


def body_mesh():
    """(vertices (V,3) camera frame, faces, face_part, face_uv, low-poly (verts, faces), source name)."""
    try:
        from core.body import load_body
        from core.geometry.camera import weak_perspective_to_translation
        from core.geometry.rotations import rot6d_to_rotmat

        body = load_body("open")
        mp = body.mean_params
        rot = rot6d_to_rotmat(torch.as_tensor(mp["pose"], dtype=torch.float32).reshape(1, 24, 6))
        transl = weak_perspective_to_translation(torch.as_tensor(mp["cam"], dtype=torch.float32)[None])
        out = body(betas=torch.as_tensor(mp["shape"], dtype=torch.float32)[None], global_orient=rot[:, :1],
                   body_pose=rot[:, 1:], transl=transl)
        verts = out.vertices[0].detach().numpy()
        levels, _ = body.downsampling()
        low_ids = levels[0][0][levels[1][0]]
        low = (verts[low_ids], levels[1][1])
        return verts, body.faces, body.face_part, body.face_uv, low, "open body, mean pose, SPIN camera"
    except Exception as exc:  # the body is optional for this benchmark
        print(f"(core.body not usable: {type(exc).__name__}: {exc}; using a procedural mesh)")
        import trimesh

        parts = [trimesh.creation.capsule(height=1.0, radius=0.18, count=[40, 40]),
                 trimesh.creation.icosphere(subdivisions=4, radius=0.12)]
        parts[1].apply_translation([0, -0.75, 0])
        mesh = trimesh.util.concatenate(parts)
        verts = np.asarray(mesh.vertices) * [1.0, 1.0, 0.6] + [0.0, 0.0, 2 * 5000.0 / (224 * 0.9)]
        faces = np.asarray(mesh.faces)
        rng = np.random.default_rng(0)
        face_part = rng.integers(1, 25, len(faces))
        face_uv = rng.random((len(faces), 3, 2))
        low = trimesh.creation.icosphere(subdivisions=3)
        low_v = np.asarray(low.vertices) * [0.3, 0.9, 0.2] + verts.mean(0)
        return verts, faces, face_part, face_uv, (low_v, np.asarray(low.faces)), "procedural capsule+sphere"


def best_of(fn, repeats: int):
    """(best wall-clock seconds, best process CPU seconds) over repeats.

    CPU time (all threads of this process) is printed too because the machine may be shared:
    wall time then includes waiting for a core, CPU time does not.
    """
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus)


def naive_raycast_per_pixel(verts, faces, K, size, rows, cols):
    """Baseline: for each pixel, Möller–Trumbore against all faces (numpy over faces)."""
    Kinv = np.linalg.inv(K)
    v0, v1, v2 = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    e1, e2 = v1 - v0, v2 - v0
    out = np.full((len(rows), len(cols)), -1)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            d = Kinv @ np.array([c + 0.5, r + 0.5, 1.0])
            p = np.cross(d, e2)
            det = (e1 * p).sum(1)
            ok = np.abs(det) > 1e-12
            inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
            s = -v0
            u = (s * p).sum(1) * inv
            q = np.cross(s, e1)
            v = (q @ d) * inv
            t = (e2 * q).sum(1) * inv
            hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
            if hit.any():
                out[i, j] = np.flatnonzero(hit)[np.argmin(t[hit])]
    return out


def _worker_frames(args):
    """One worker process: render ``n`` frames of IUV + visibility (culled) at 224×224."""
    n, batch = args
    torch.set_num_threads(1)
    verts, faces, face_part, face_uv, _, _ = body_mesh()
    K = spin_intrinsics()
    b = np.repeat(verts[None].astype(np.float32), batch, 0)
    render_maps(b[:1], faces, K, 224, face_part, face_uv, cull_back_faces=True)   # warm-up
    t = time.perf_counter()
    for _ in range(n // batch):
        render_maps(b, faces, K, 224, face_part, face_uv, cull_back_faces=True)
    return time.perf_counter() - t, (n // batch) * batch


def parallel_throughput(processes: int, frames: int = 320, batch: int = 16) -> float:
    """Frames/s of IUV + visibility with ``processes`` worker processes (one per core):
    the scene build is single-threaded inside Open3D, so cores are used by processes."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(processes) as pool:
        out = pool.map(_worker_frames, [(frames // processes, batch)] * processes)
    return sum(n for _, n in out) / max(dt for dt, _ in out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--batch", type=int, default=16, help="meshes per raycast call")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile'd soft silhouette")
    args = ap.parse_args()
    reps = 2 if args.quick else 5
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    print(f"cpus: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, "
          f"load average: {os.getloadavg()[0]:.1f}")

    verts, faces, face_part, face_uv, (low_v, low_f), source = body_mesh()
    K = spin_intrinsics()
    print(f"mesh: {source}: {len(verts)} vertices, {len(faces)} faces")
    batch = np.repeat(verts[None].astype(np.float32), args.batch, 0)
    batch += np.random.default_rng(0).normal(0, 0.01, batch.shape[:1] + (1, 3)).astype(np.float32)
    render_maps(batch[:1], faces, K, 224, face_part, face_uv)  # warm-up (imports, ray cache)
    cov = raycast(batch[:1], faces, K, 224).mask.mean()
    print(f"silhouette covers {100 * cov:.0f}% of the 224×224 crop")

    print("\n== raycast renderer (CPU, Open3D/Embree), batch of", args.batch)
    results = {}
    for label, out_size, vis, cull in [("IUV + visibility 224x224", None, True, False),
                                       ("IUV + visibility 224x224, culled", None, True, True),
                                       ("IUV only 224x224", None, False, False),
                                       ("IUV + visibility cast 112x112, culled", (112, 112), True, True),
                                       ("IUV 56x56 (PyMAF target), culled", (56, 56), False, True)]:
        dt, cpu = best_of(lambda: render_maps(batch, faces, K, 224, face_part, face_uv, out_size=out_size,
                                              visibility=vis, cull_back_faces=cull), reps)
        results[label] = dt / args.batch
        print(f"{label:40s} {1000 * dt / args.batch:7.2f} ms/frame  {args.batch / dt:7.1f} frames/s   "
              f"(CPU {1000 * cpu / args.batch:6.2f} ms/frame → {args.batch / cpu:6.1f} frames/s per busy core)")
    n_proc = min(2, os.cpu_count() or 1)
    fps1 = parallel_throughput(1)
    fpsn = parallel_throughput(n_proc)
    print(f"IUV + visibility 224x224, culled, {n_proc} processes: {fpsn:7.1f} frames/s "
          f"(1 process: {fps1:.1f} frames/s; scaling x{fpsn / fps1:.2f}; target >= 150 on 2 cores)")
    full = render_maps(batch[:2], faces, K, 224, face_part, face_uv)
    culled = render_maps(batch[:2], faces, K, 224, face_part, face_uv, cull_back_faces=True)
    same = (np.array_equal(full.hits.face_id, culled.hits.face_id)
            and np.array_equal(full.visibility.visible, culled.visibility.visible))
    print(f"(culled = back faces left out of the BVH; identical output on this closed mesh: {same})")
    vis = full.visibility
    print(f"visibility: {100 * vis.visible.mean():.0f}% visible, {100 * vis.occluded.mean():.0f}% occluded, "
          f"{100 * vis.back_facing.mean():.0f}% back-facing, {100 * vis.out_of_crop.mean():.0f}% out of crop")

    # baseline: naive per-pixel loop on a 12×12 patch through the body, extrapolated
    rows = np.arange(100, 112)
    cols = np.arange(106, 118)
    t = time.perf_counter()
    naive = naive_raycast_per_pixel(verts.astype(np.float64), faces, K, 224, rows, cols)
    per_pixel = (time.perf_counter() - t) / naive.size
    ours = raycast(verts[None], faces, K, 224).face_id[0][np.ix_(rows, cols)]
    agree = (naive == ours).mean()
    naive_frame = per_pixel * 224 * 224
    ratio = naive_frame / results["IUV only 224x224"]
    print(f"baseline naive per-pixel numpy loop: {1e3 * per_pixel:.2f} ms/pixel → "
          f"{naive_frame:.1f} s per 224x224 frame (face ids agree on {100 * agree:.0f}% of the patch)")
    print(f"speed-up of the Embree raycaster over the naive loop: {ratio:,.0f}x")

    print("\n== soft silhouette (PyTorch CPU), forward + backward, batch 32")
    faces_t = torch.as_tensor(np.asarray(low_f, dtype=np.int64))
    print(f"low-poly mesh: {len(low_v)} vertices, {len(low_f)} faces")
    low_px = project_points(low_v[None], K)[0]  # 224-crop pixels
    soft_times = {}
    for compiled in ((False,) if args.no_compile else (False, True)):
        for size in (56, 112):
            pts = torch.tensor(low_px * (size / 224.0), dtype=torch.float32)[None].repeat(32, 1, 1)
            pts = pts + torch.randn(32, 1, 2)
            weights = torch.rand(32, len(low_v))

            def step(p=pts, w=weights, size=size, compiled=compiled):
                p = p.clone().requires_grad_(True)
                ww = w.clone().requires_grad_(True)
                sil = soft_silhouette(p, faces_t, size, sigma=1.0, vertex_weights=ww, compiled=compiled)
                sil.mean().backward()

            if compiled:
                t = time.perf_counter()
                step()
                print(f"(torch.compile warm-up at {size}x{size}: {time.perf_counter() - t:.1f} s)")
            dt, cpu = best_of(step, 1 if args.quick else 2)
            soft_times[(size, compiled)] = dt
            tag = "compiled" if compiled else "eager   "
            print(f"{tag} {size}x{size}: {dt:6.2f} s per batch of 32  ({1000 * dt / 32:6.1f} ms/image; "
                  f"CPU {cpu:6.2f} s)")
    for size in (56, 112):
        if (size, True) in soft_times:
            print(f"torch.compile speed-up at {size}x{size}: {soft_times[(size, False)] / soft_times[(size, True)]:.1f}x")

    # baseline: the same evaluation without pruning (every face against every pixel), at batch 4, 56x56
    pts = torch.tensor(low_px * (56 / 224.0), dtype=torch.float32)[None].repeat(4, 1, 1)
    weights = torch.rand(4, len(low_v))

    def small(tile):
        p = pts.clone().requires_grad_(True)
        sil = soft_silhouette(p, faces_t, 56, sigma=1.0, vertex_weights=weights, tile_size=tile)
        sil.mean().backward()
        return sil.detach()

    t_pruned, c_pruned = best_of(lambda: small(4), 2)
    t_dense, c_dense = best_of(lambda: small(None), 1)
    diff = (small(4) - small(None)).abs().max().item()
    print(f"baseline unpruned (tile_size=None) batch 4, 56x56: {t_dense:.2f} s vs pruned {t_pruned:.2f} s "
          f"→ pruning speed-up {t_dense / t_pruned:.1f}x wall, {c_dense / c_pruned:.1f}x CPU "
          f"(max |difference| {diff:.1e})")


if __name__ == "__main__":
    main()

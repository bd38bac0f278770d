"""Tests for core.render.soft: the differentiable soft silhouette and MeshPose's silhouette losses."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from core.render import project_points, raycast, spin_intrinsics
from core.render.soft import (boundary_distance_loss, boundary_distance_map, meshpose_silhouette_loss,
                              silhouette_l2_loss, soft_silhouette)


def reference_soft_silhouette(points, faces, H, W, sigma, weights=None):
    """Slow per-pixel, per-face loop of the definition (float64)."""
    B = points.shape[0]
    out = np.zeros((B, H, W))
    for b in range(B):
        pts = points[b]
        w = np.ones(len(pts)) if weights is None else weights[b]
        for r in range(H):
            for c in range(W):
                p = np.array([c + 0.5, r + 0.5])
                keep = 1.0
                for f in faces:
                    best_d2, best_w = np.inf, 0.0
                    for i, j in ((0, 1), (1, 2), (2, 0)):
                        p0, p1 = pts[f[i]], pts[f[j]]
                        e = p1 - p0
                        t = float(np.clip((p - p0) @ e / (e @ e), 0.0, 1.0))
                        d2 = float(np.sum((p - p0 - t * e) ** 2))
                        if d2 < best_d2:
                            best_d2, best_w = d2, (1 - t) * w[f[i]] + t * w[f[j]]
                    a, bb, cc = pts[f]
                    lam1, lam2 = np.linalg.solve(np.stack([bb - a, cc - a], 1), p - a)
                    lam = np.array([1 - lam1 - lam2, lam1, lam2])
                    inside = bool((lam > 0).all())
                    x = best_d2 / sigma if inside else -best_d2 / sigma
                    wf = float(lam @ w[f]) if inside else best_w
                    keep *= 1.0 - wf / (1.0 + math.exp(-x))
                out[b, r, c] = 1.0 - keep
    return out


def random_mesh(seed=0, B=2, V=12, F=10, lo=1.0, hi=14.0):
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(B, V, 2, generator=g, dtype=torch.float64) * (hi - lo) + lo
    faces = torch.stack([torch.randperm(V, generator=g)[:3] for _ in range(F)])
    weights = torch.rand(B, V, generator=g, dtype=torch.float64)
    return pts, faces, weights


@pytest.mark.parametrize("tile_size", [None, 4])
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_slow_reference(tile_size, weighted):
    pts, faces, weights = random_mesh()
    w = weights if weighted else None
    got = soft_silhouette(pts, faces, (13, 15), sigma=2.0, vertex_weights=w, tile_size=tile_size,
                          prune_eps=1e-12, max_elements=300)
    ref = reference_soft_silhouette(pts.numpy(), faces.numpy(), 13, 15, 2.0,
                                    None if w is None else w.numpy())
    assert got.shape == (2, 13, 15) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-9)


def test_weights_scale_influence():
    pts, faces, _ = random_mesh(seed=1)
    plain = soft_silhouette(pts, faces, 16, sigma=1.0)
    ones = soft_silhouette(pts, faces, 16, sigma=1.0, vertex_weights=torch.ones(2, 12, dtype=torch.float64))
    zeros = soft_silhouette(pts, faces, 16, sigma=1.0, vertex_weights=torch.zeros(2, 12, dtype=torch.float64))
    np.testing.assert_allclose(ones.numpy(), plain.numpy(), atol=1e-12)
    assert zeros.abs().max() == 0
    half = soft_silhouette(pts, faces, 16, sigma=1.0, vertex_weights=torch.full((2, 12), 0.5, dtype=torch.float64))
    assert (half <= plain + 1e-12).all() and (half < plain - 1e-3).any()


def test_pruning_and_chunking_do_not_change_the_result():
    pts, faces, weights = random_mesh(seed=2, B=3, V=30, F=40, hi=30.0)
    dense = soft_silhouette(pts, faces, (32, 28), sigma=1.5, vertex_weights=weights, tile_size=None)
    tiled = soft_silhouette(pts, faces, (32, 28), sigma=1.5, vertex_weights=weights, tile_size=5,
                            max_elements=4000)  # several chunks
    np.testing.assert_allclose(tiled.numpy(), dense.numpy(), atol=1e-4)  # prune_eps=1e-6 per face


def test_small_sigma_matches_raycast_mask_away_from_edges():
    m = trimesh.creation.icosphere(subdivisions=2, radius=1.0)
    verts = np.asarray(m.vertices) * [0.6, 1.0, 0.5] + [0.1, 0.0, 6.0]
    K = spin_intrinsics(focal=100.0, img_res=56)
    mask = raycast(verts[None], m.faces, K, 56).mask[0]
    pts = torch.tensor(project_points(verts[None], K), dtype=torch.float32)
    sil = soft_silhouette(pts, torch.tensor(m.faces), 56, sigma=0.02)[0].numpy()
    # a 1-pixel band around the raycast boundary
    padded = np.pad(mask, 1, mode="edge")
    neighbours = [padded[1 + dy:57 + dy, 1 + dx:57 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    band = np.any([n != mask for n in neighbours], axis=0)
    away = ~band
    agree = ((sil > 0.5) == mask)[away].mean()
    assert mask.sum() > 300 and away.sum() > 2000
    assert agree >= 0.97
    assert sil[mask & away].min() > 0.9 and sil[~mask & away].max() < 0.1


def test_gradcheck_tiny_mesh():
    pts = torch.tensor([[[1.3, 1.1], [6.2, 1.7], [2.1, 6.6], [7.1, 6.3]]], dtype=torch.float64, requires_grad=True)
    faces = torch.tensor([[0, 1, 2], [1, 3, 2]])
    w = torch.tensor([[0.9, 0.4, 0.7, 0.2]], dtype=torch.float64, requires_grad=True)
    sil = lambda tile, chunk: (lambda p, ww: soft_silhouette(p, faces, (8, 7), sigma=2.0, vertex_weights=ww,
                                                             tile_size=tile, max_elements=chunk))
    for tile in (None, 4):
        assert torch.autograd.gradcheck(sil(tile, None), (pts, w))
        assert torch.autograd.gradcheck(lambda p: soft_silhouette(p, faces, (8, 7), sigma=2.0, tile_size=tile), (pts,))
        # several chunks, each recomputed in backward (checkpointing); fast mode keeps it quick
        assert torch.autograd.gradcheck(sil(tile, 48), (pts, w), fast_mode=True)


def test_finite_gradients_when_saturated():
    # a big triangle with weight exactly 1 saturates D to 1 in float32
    pts = torch.tensor([[[-50.0, -50.0], [200.0, -50.0], [-50.0, 200.0]]], requires_grad=True)
    w = torch.ones(1, 3, requires_grad=True)
    sil = soft_silhouette(pts, torch.tensor([[0, 1, 2]]), 16, sigma=0.5, vertex_weights=w)
    assert torch.allclose(sil, torch.ones_like(sil))
    sil.sum().backward()
    assert torch.isfinite(pts.grad).all() and torch.isfinite(w.grad).all()


def test_bad_inputs():
    pts, faces, weights = random_mesh()
    with pytest.raises(ValueError, match="points2d"):
        soft_silhouette(pts[0], faces, 8)
    with pytest.raises(ValueError, match="vertex_weights"):
        soft_silhouette(pts, faces, 8, vertex_weights=weights[:, :3])
    with pytest.raises(ValueError, match="outside"):
        soft_silhouette(pts, faces + 20, 8)
    with pytest.raises(ValueError, match="sigma"):
        soft_silhouette(pts, faces, 8, sigma=0.0)


# ----------------------------------------------------------------------------- losses


def test_boundary_distance_map_matches_brute_force():
    mask = np.zeros((2, 9, 11), bool)
    mask[0, 2:7, 3:10] = True
    mask[1, 0:5, 0:4] = True          # touches the image border
    D = boundary_distance_map(torch.tensor(mask)).numpy()
    for b in range(2):
        bg = np.argwhere(np.pad(~mask[b], 1, constant_values=True)) - 1  # outside the image counts as bg
        for r, c in np.argwhere(mask[b]):
            d = np.sqrt(((bg - [r, c]) ** 2).sum(1)).min() - 0.5
            assert abs(D[b, r, c] - d) < 1e-5
    assert (D[~mask] == 0).all() and D[0, 4, 6] == 2.5
    inner = boundary_distance_map(mask[1], border_is_boundary=False).numpy()
    assert inner[0, 0] == pytest.approx(np.sqrt(16) - 0.5) and inner.shape == (9, 11)


def test_silhouette_losses():
    target = torch.zeros(1, 10, 10)
    target[0, 2:8, 2:8] = 1
    D = boundary_distance_map(target)
    full = torch.ones(1, 10, 10)          # covers the mask and more
    small = torch.zeros(1, 10, 10)
    small[0, 4:6, 4:6] = 1
    assert boundary_distance_loss(full, target) == 0          # too big is not penalised
    assert boundary_distance_loss(small, target) > 0          # too small is
    assert boundary_distance_loss(full, target, offset=False) == pytest.approx(-float(D.sum()))
    np.testing.assert_allclose(float(boundary_distance_loss(small, target) - boundary_distance_loss(small, target, offset=False)),
                               float(D.sum()), rtol=1e-6)
    assert silhouette_l2_loss(full, target) == pytest.approx(100 - 36)
    assert silhouette_l2_loss(full, target, reduction="mean") == pytest.approx(0.64)
    total = meshpose_silhouette_loss(small, target)
    assert float(total) == pytest.approx(100 * float(silhouette_l2_loss(small, target)) +
                                         float(boundary_distance_loss(small, target)))
    # the losses pull a too-small soft silhouette outwards
    pts = torch.tensor([[[4.0, 4.0], [6.0, 4.0], [6.0, 6.0], [4.0, 6.0]]], requires_grad=True)
    sil = soft_silhouette(pts, torch.tensor([[0, 1, 2], [0, 2, 3]]), 10, sigma=0.5)
    meshpose_silhouette_loss(sil, target).backward()
    assert pts.grad[0, 0, 0] > 0 and pts.grad[0, 2, 0] < 0   # left corner moves left, right moves right


@pytest.mark.slow
def test_batch32_1000_faces_112_forward_backward_memory_bounded():
    m = trimesh.creation.icosphere(subdivisions=3, radius=1.0)  # 1280 faces
    v = torch.tensor(np.asarray(m.vertices)[:, :2] * [20.0, 45.0] + 56.0, dtype=torch.float32)
    pts = (v[None].repeat(32, 1, 1) + torch.randn(32, 1, 2)).requires_grad_(True)
    w = torch.rand(32, len(v), requires_grad=True)
    sil = soft_silhouette(pts, torch.tensor(m.faces), 112, sigma=1.0, vertex_weights=w)
    sil.mean().backward()
    assert sil.shape == (32, 112, 112) and torch.isfinite(pts.grad).all() and torch.isfinite(w.grad).all()


@pytest.mark.slow
def test_compiled_matches_eager():
    pts, faces, weights = random_mesh(seed=4, B=2, V=30, F=40, hi=30.0)
    pts32, w32 = pts.float(), weights.float()
    grads = []
    for compiled in (False, True):
        p = pts32.clone().requires_grad_(True)
        sil = soft_silhouette(p, faces, 32, sigma=1.0, vertex_weights=w32, compiled=compiled)
        (sil * torch.linspace(0, 1, 32)).sum().backward()
        grads.append((sil.detach(), p.grad))
    np.testing.assert_allclose(grads[1][0].numpy(), grads[0][0].numpy(), atol=1e-5)
    np.testing.assert_allclose(grads[1][1].numpy(), grads[0][1].numpy(), atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    pts, faces, weights = random_mesh(seed=3, B=4, V=30, F=40, hi=30.0)
    cpu = soft_silhouette(pts, faces, 32, sigma=1.0, vertex_weights=weights)
    gpu = soft_silhouette(pts.cuda(), faces.cuda(), 32, sigma=1.0, vertex_weights=weights.cuda())
    np.testing.assert_allclose(gpu.cpu().numpy(), cpu.numpy(), atol=1e-9)

"""Tests for core.render: raycasting, IUV, visibility, parts, overlays, drawing, colourisation."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import trimesh

from core.render import (DENSEPOSE_TO_COARSE15, DENSEPOSE_TO_LSP6, LSP6_PART_NAMES, PART_PALETTE,
                         densepose_to_lsp6, draw_keypoints, draw_points, feature_map_to_rgb, frame_vertices,
                         iuv_to_rgb, placeholder_image, project_points, raycast,
                         render_iuv, render_maps, render_overlay, render_view, render_visibility,
                         rescale_intrinsics, rotate_about_centroid, safe_render, spin_intrinsics,
                         vertex_normals, vertex_visibility, visibility_colors)

# ----------------------------------------------------------------------------- helpers

K_SMALL = np.array([[20.0, 0.0, 8.3], [0.0, 22.0, 5.7], [0.0, 0.0, 1.0]])  # for a 12×16 (H×W) image
SIZE_SMALL = (12, 16)


def two_triangles():
    """Two triangles facing the camera: A at z=5 (part 3), B at z=4 partly in front of A (part 17)."""
    verts = np.array([
        [-1.6, -1.2, 5.0], [1.4, -1.0, 5.0], [-1.0, 1.3, 5.0],     # A
        [0.1, -0.3, 4.0], [1.3, 0.9, 4.0], [-0.2, 1.0, 4.0],       # B (in front)
    ], np.float64)
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    face_part = np.array([3, 17])
    face_uv = np.array([[[0.1, 0.2], [0.9, 0.1], [0.3, 0.8]],
                        [[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]]])
    return verts, faces, face_part, face_uv


def reference_raycast(verts, faces, K, size):
    """Slow per-pixel Möller–Trumbore through pixel centres: (depth, face id, barycentrics)."""
    H, W = size
    Kinv = np.linalg.inv(K)
    depth = np.zeros((H, W))
    fid = np.full((H, W), -1)
    bary = np.zeros((H, W, 3))
    for r in range(H):
        for c in range(W):
            d = Kinv @ np.array([c + 0.5, r + 0.5, 1.0])
            best = np.inf
            for f, (i0, i1, i2) in enumerate(faces):
                v0, v1, v2 = verts[i0], verts[i1], verts[i2]
                e1, e2 = v1 - v0, v2 - v0
                p = np.cross(d, e2)
                det = e1 @ p
                if abs(det) < 1e-12:
                    continue
                s = -v0
                u = (s @ p) / det
                q = np.cross(s, e1)
                v = (d @ q) / det
                t = (e2 @ q) / det
                if u < 0 or v < 0 or u + v > 1 or t <= 0 or t >= best:
                    continue
                best = t
                depth[r, c], fid[r, c], bary[r, c] = t, f, (1 - u - v, u, v)
    return depth, fid, bary


def edge_distance_ok(verts, faces, K, size, tol=1e-3):
    """(H, W) bool: pixel centres farther than tol pixels from every projected triangle edge."""
    H, W = size
    pts = project_points(verts[None], K)[0]
    ys, xs = np.mgrid[0:H, 0:W] + 0.5
    ok = np.ones((H, W), bool)
    for tri in faces:
        for a, b in ((0, 1), (1, 2), (2, 0)):
            p0, p1 = pts[tri[a]], pts[tri[b]]
            e = p1 - p0
            t = np.clip(((xs - p0[0]) * e[0] + (ys - p0[1]) * e[1]) / (e @ e), 0, 1)
            d = np.hypot(xs - p0[0] - t * e[0], ys - p0[1] - t * e[1])
            ok &= d > tol
    return ok


def sphere(center=(0.0, 0.0, 5.0), radius=1.0, subdivisions=3):
    m = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return np.asarray(m.vertices) + np.asarray(center), np.asarray(m.faces)


# ----------------------------------------------------------------------------- raycast / IUV


def test_raycast_matches_reference_intersection():
    verts, faces, _, _ = two_triangles()
    hits = raycast(verts[None], faces, K_SMALL, SIZE_SMALL)
    depth, fid, bary = reference_raycast(verts, faces, K_SMALL, SIZE_SMALL)
    ok = edge_distance_ok(verts, faces, K_SMALL, SIZE_SMALL)
    assert (fid[ok] == 0).any() and (fid[ok] == 1).any() and (fid[ok] == -1).any()
    np.testing.assert_array_equal(hits.face_id[0][ok], fid[ok])
    np.testing.assert_allclose(hits.depth[0][ok], depth[ok], atol=1e-4)
    np.testing.assert_allclose(hits.bary[0][ok], bary[ok], atol=1e-4)
    assert hits.mask.shape == (1, 12, 16)
    assert hits.depth.dtype == np.float32 and hits.face_id.dtype == np.int64
    # background: depth 0, face −1, zero barycentrics and normals
    bg = hits.face_id[0] < 0
    assert np.all(hits.depth[0][bg] == 0) and np.all(hits.normal[0][bg] == 0)
    # geometric normal (v1 − v0) × (v2 − v0) of these triangles is +z (away from the camera)
    fg = ~bg
    np.testing.assert_allclose(hits.normal[0][fg], np.tile([0, 0, 1.0], (fg.sum(), 1)), atol=1e-6)


def test_raycast_with_vertices_behind_the_camera_and_flipped_axes():
    # a triangle crossing the camera plane (one corner behind it) and one off to the side
    verts = np.array([[-2.0, -0.5, -1.0], [1.5, -1.0, 5.0], [0.5, 1.4, 4.0],
                      [0.3, 0.1, 3.0], [1.2, 0.3, 3.0], [0.6, 0.9, 3.0]])
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    K_flip = K_SMALL * [[-1.0], [-1.0], [1.0]] + [[0, 0, 16.0], [0, 0, 12.0], [0, 0, 0]]  # fx, fy < 0
    for K in (K_SMALL, K_flip):
        # small triangle alone: its projected bounding box limits the rays cast; exact away from edges
        hits = raycast(verts[None], faces[1:], K, SIZE_SMALL)
        _, fid, _ = reference_raycast(verts, faces[1:], K, SIZE_SMALL)
        ok = edge_distance_ok(verts, faces[1:], K, SIZE_SMALL)
        assert (fid == 0).sum() >= 3
        np.testing.assert_array_equal(hits.face_id[0][ok], fid[ok])
        # with a corner behind the camera every pixel is cast (no projected box exists);
        # pixel centres can fall on edges, so allow a few disagreements there
        hits = raycast(verts[None], faces, K, SIZE_SMALL)
        _, fid, _ = reference_raycast(verts, faces, K, SIZE_SMALL)
        assert (fid == 0).sum() > 20 and (hits.face_id[0] == fid).mean() > 0.97


def test_iuv_matches_barycentric_interpolation_at_pixel_centres():
    verts, faces, face_part, face_uv = two_triangles()
    iuv = render_iuv(verts[None], faces, face_part, face_uv, K_SMALL, SIZE_SMALL)
    _, fid, bary = reference_raycast(verts, faces, K_SMALL, SIZE_SMALL)
    ok = edge_distance_ok(verts, faces, K_SMALL, SIZE_SMALL)
    exp_part = np.where(fid >= 0, face_part[np.maximum(fid, 0)], 0)
    exp_uv = np.einsum("hwk,hwkc->hwc", bary, face_uv[np.maximum(fid, 0)]) * (fid >= 0)[..., None]
    assert iuv.part.dtype == np.uint8 and iuv.part.shape == (1, 12, 16)
    np.testing.assert_array_equal(iuv.part[0][ok], exp_part[ok])
    np.testing.assert_allclose(iuv.u[0][ok], exp_uv[..., 0][ok], atol=1e-4)
    np.testing.assert_allclose(iuv.v[0][ok], exp_uv[..., 1][ok], atol=1e-4)
    assert set(np.unique(iuv.part[0][ok])) == {0, 3, 17}
    assert np.all(iuv.u[0][iuv.part[0] == 0] == 0) and np.all(iuv.v[0][iuv.part[0] == 0] == 0)
    # PyMAF layout and stacking
    target = iuv.as_pymaf_target()
    assert target.shape == (1, 3, 12, 16)
    np.testing.assert_allclose(target[0, 0], iuv.part[0] / 24.0)
    np.testing.assert_allclose(iuv.stacked()[0, ..., 1], iuv.u[0])
    np.testing.assert_array_equal(iuv.lsp6()[0], DENSEPOSE_TO_LSP6[iuv.part[0]])


def test_lower_resolution_is_the_same_camera_rescaled():
    verts, faces, face_part, face_uv = two_triangles()
    low = render_iuv(verts[None], faces, face_part, face_uv, K_SMALL, SIZE_SMALL, out_size=(6, 8))
    K_low = rescale_intrinsics(K_SMALL, SIZE_SMALL, (6, 8))
    np.testing.assert_allclose(K_low[0], K_SMALL[0] * 0.5)
    _, fid, _ = reference_raycast(verts, faces, K_low, (6, 8))
    ok = edge_distance_ok(verts, faces, K_low, (6, 8))
    exp_part = np.where(fid >= 0, face_part[np.maximum(fid, 0)], 0)
    assert low.part.shape == (1, 6, 8)
    np.testing.assert_array_equal(low.part[0][ok], exp_part[ok])


def test_batch_and_per_mesh_intrinsics():
    verts, faces, face_part, face_uv = two_triangles()
    batch = np.stack([verts, verts + [0.3, 0.0, 0.0]])
    Ks = np.stack([K_SMALL, K_SMALL * [[1.1], [1.1], [1.0]]])
    maps = render_maps(batch, faces, Ks, SIZE_SMALL, face_part, face_uv)
    for b in range(2):
        single = render_iuv(batch[b:b + 1], faces, face_part, face_uv, Ks[b], SIZE_SMALL)
        np.testing.assert_array_equal(maps.iuv.part[b], single.part[0])
    assert not np.array_equal(maps.iuv.part[0], maps.iuv.part[1])
    assert maps.visibility.visible.shape == (2, 6)


def test_spin_camera_depth_is_camera_z():
    K = spin_intrinsics()
    np.testing.assert_allclose(K, [[5000, 0, 112], [0, 5000, 112], [0, 0, 1]])
    verts, faces = sphere(center=(0.0, 0.1, 50.0), radius=0.8, subdivisions=2)
    hits = raycast(verts[None], faces, K, 224)
    assert hits.mask.mean() > 0.3
    # the back-projected hit depth·K⁻¹(c + 0.5, r + 0.5, 1) lies on the hit face's plane
    r, c = np.nonzero(hits.mask[0])
    pts = hits.depth[0, r, c, None] * (np.stack([c + 0.5, r + 0.5, np.ones_like(r)], 1) @ np.linalg.inv(K).T)
    tri = verts[faces[hits.face_id[0, r, c]]]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    assert np.abs(((pts - tri[:, 0]) * n).sum(1)).max() < 1e-4
    # and equals the barycentric combination of the face's corners
    np.testing.assert_allclose(pts, np.einsum("nk,nkc->nc", hits.bary[0, r, c], tri), atol=2e-4)


def test_bad_inputs_raise_clear_errors():
    verts, faces, face_part, face_uv = two_triangles()
    with pytest.raises(ValueError, match=r"vertices\[None\]"):
        raycast(verts, faces, K_SMALL, SIZE_SMALL)
    with pytest.raises(ValueError, match="NaN"):
        raycast(np.full((1, 6, 3), np.nan), faces, K_SMALL, SIZE_SMALL)
    with pytest.raises(ValueError, match="outside"):
        raycast(verts[None], faces + 10, K_SMALL, SIZE_SMALL)
    with pytest.raises(ValueError, match="last row"):
        raycast(verts[None], faces, K_SMALL * 2, SIZE_SMALL)
    with pytest.raises(ValueError, match="0..24"):
        render_iuv(verts[None], faces, np.array([3, 25]), face_uv, K_SMALL, SIZE_SMALL)
    with pytest.raises(ValueError, match="face_uv"):
        render_iuv(verts[None], faces, face_part, face_uv[:, :2], K_SMALL, SIZE_SMALL)
    with pytest.raises(ValueError, match="batch"):
        raycast(verts[None], faces, np.stack([K_SMALL] * 3), SIZE_SMALL)


# ----------------------------------------------------------------------------- visibility


def test_vertex_normals_match_slow_reference():
    verts, faces = sphere(subdivisions=1)
    verts = verts * [1.0, 1.7, 0.6]  # anisotropic so area weighting matters
    ref = np.zeros_like(verts)
    for f in faces:
        n = np.cross(verts[f[1]] - verts[f[0]], verts[f[2]] - verts[f[0]])
        for i in f:
            ref[i] += n
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(vertex_normals(verts[None], faces)[0], ref, atol=1e-5)
    # outward: icosphere faces are counter-clockwise from outside
    assert np.all((vertex_normals(verts[None], faces)[0] * (verts - verts.mean(0))).sum(1) > 0)


def test_sphere_front_hemisphere_visible_back_not():
    center = np.array([0.2, -0.1, 6.0])
    verts, faces = sphere(center=center, subdivisions=3)
    K = spin_intrinsics(focal=300.0, img_res=224)
    vis = vertex_visibility(verts[None], faces, K, 224)
    n = verts - center
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    view = verts / np.linalg.norm(verts, axis=1, keepdims=True)
    cos = (n * view).sum(1)
    clear = np.abs(cos) > 0.1
    np.testing.assert_array_equal(vis.visible[0][clear], (cos < 0)[clear])
    np.testing.assert_array_equal(vis.back_facing[0][clear], (cos >= 0)[clear])
    # back vertices are also occluded by the front of the sphere; front ones are not
    assert vis.occluded[0][cos > 0.1].all() and not vis.occluded[0][cos < -0.1].any()
    assert not vis.out_of_crop.any()
    np.testing.assert_array_equal(vis.weight[0], vis.visible[0].astype(np.float32))
    assert vis.weight.dtype == np.float32 and vis.visible.dtype == bool


def test_vertex_behind_another_object_is_occluded():
    back, back_faces = sphere(center=(0.0, 0.0, 8.0), radius=1.0, subdivisions=3)
    # a small square plate in front of the sphere's upper-left quadrant, facing the camera
    plate = np.array([[-1.2, -1.2, 4.0], [0.0, -1.2, 4.0], [0.0, 0.0, 4.0], [-1.2, 0.0, 4.0]])
    verts = np.concatenate([back, plate])
    n = len(back)
    faces = np.concatenate([back_faces, np.array([[n, n + 2, n + 1], [n, n + 3, n + 2]])])
    K = spin_intrinsics(focal=300.0, img_res=224)
    vis = vertex_visibility(verts[None], faces, K, 224)
    without = vertex_visibility(back[None], back_faces, K, 224)
    pix = project_points(verts[None], K)[0]
    plate_px = project_points(plate[None], K)[0]
    lo, hi = plate_px.min(0), plate_px.max(0)
    behind = ((pix[:n] > lo + 2) & (pix[:n] < hi - 2)).all(1) & without.visible[0]
    assert behind.sum() > 10
    assert vis.occluded[0][:n][behind].all()
    assert not vis.visible[0][:n][behind].any()
    assert not vis.back_facing[0][:n][behind].any()  # occlusion, not orientation
    far = ((pix[:n] < lo - 2) | (pix[:n] > hi + 2)).any(1) & without.visible[0]
    assert vis.visible[0][:n][far].all()
    assert vis.visible[0][n:].all()  # the plate faces the camera and nothing is in front of it


def test_out_of_crop_is_reported_separately():
    verts, faces = sphere(center=(1.2, 0.0, 5.0), radius=1.0, subdivisions=2)
    K = spin_intrinsics(focal=100.0, img_res=64)
    vis = vertex_visibility(verts[None], faces, K, 64)
    px = project_points(verts[None], K)[0]
    expected = (px[:, 0] < 0) | (px[:, 0] >= 64) | (px[:, 1] < 0) | (px[:, 1] >= 64)
    assert expected.any() and (~expected).any()
    np.testing.assert_array_equal(vis.out_of_crop[0], expected)
    np.testing.assert_array_equal(vis.weight[0] > 0, vis.visible[0] & ~expected)
    assert (vis.visible[0] & expected).any()  # visible but outside the crop


def test_render_maps_agrees_with_separate_calls():
    verts, faces = sphere(center=(0.0, 0.0, 6.0), subdivisions=2)
    rng = np.random.default_rng(0)
    face_part = rng.integers(1, 25, len(faces))
    face_uv = rng.random((len(faces), 3, 2))
    K = spin_intrinsics(focal=200.0, img_res=96)
    maps = render_maps(verts[None], faces, K, 96, face_part, face_uv)
    iuv = render_iuv(verts[None], faces, face_part, face_uv, K, 96)
    vis = vertex_visibility(verts[None], faces, K, 96)
    np.testing.assert_array_equal(maps.iuv.part, iuv.part)
    np.testing.assert_array_equal(maps.visibility.visible, vis.visible)
    np.testing.assert_array_equal(maps.mask, iuv.mask)
    assert maps.depth[maps.mask].min() > 4.9


def test_back_face_culling_is_exact_for_closed_meshes():
    a, fa = sphere(center=(0.0, 0.0, 6.0), subdivisions=3)
    b, fb = sphere(center=(0.5, 0.4, 4.5), radius=0.4, subdivisions=2)  # a closed occluder in front
    verts = np.concatenate([a, b])
    faces = np.concatenate([fa, fb + len(a)])
    batch = np.stack([verts, verts[:, [1, 0, 2]] * [1, 1, 1.1]])   # second mesh mirrored: flipped winding
    faces_b = [faces, faces[:, [0, 2, 1]]]
    K = spin_intrinsics(focal=150.0, img_res=96)
    for b_i in range(2):
        ref = raycast(batch[b_i:b_i + 1], faces_b[b_i], K, 96, vertex_occlusion=True)
        fast = raycast(batch[b_i:b_i + 1], faces_b[b_i], K, 96, vertex_occlusion=True, cull_back_faces=True)
        np.testing.assert_array_equal(fast.face_id, ref.face_id)
        np.testing.assert_array_equal(fast.depth, ref.depth)
        np.testing.assert_array_equal(fast.vertex_occluded, ref.vertex_occluded)
        assert ref.vertex_occluded.mean() > 0.4
    # an open mesh turned away from the camera disappears: the documented limitation
    verts2, faces2, _, _ = two_triangles()
    assert not raycast(verts2[None], faces2, K_SMALL, SIZE_SMALL, cull_back_faces=True).mask.any()


# ----------------------------------------------------------------------------- parts


def test_lsp6_grouping_of_densepose_parts():
    assert DENSEPOSE_TO_LSP6[0] == 0 and (DENSEPOSE_TO_LSP6[1:] > 0).all()
    names = {LSP6_PART_NAMES[DENSEPOSE_TO_LSP6[i]] for i in range(25)}
    assert names == set(LSP6_PART_NAMES)
    expect = {"head": [23, 24], "torso": [1, 2], "left arm": [4, 15, 17, 19, 21],
              "right arm": [3, 16, 18, 20, 22], "left leg": [5, 8, 10, 12, 14],
              "right leg": [6, 7, 9, 11, 13]}
    for name, ids in expect.items():
        assert sorted(np.flatnonzero(DENSEPOSE_TO_LSP6 == LSP6_PART_NAMES.index(name))) == ids
    np.testing.assert_array_equal(densepose_to_lsp6(np.array([[0, 23], [3, 6]])), [[0, 1], [4, 6]])
    with pytest.raises(ValueError):
        densepose_to_lsp6(np.array([25]))
    assert DENSEPOSE_TO_COARSE15[7] == DENSEPOSE_TO_COARSE15[9] and DENSEPOSE_TO_COARSE15.max() == 14


# ----------------------------------------------------------------------------- overlays and views


def test_overlay_changes_the_image_only_where_the_mesh_is():
    verts, faces = sphere(center=(0.0, 0.0, 6.0), subdivisions=2)
    K = spin_intrinsics(focal=150.0, img_res=96)
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    out = render_overlay(image, verts, faces, K, alpha=0.9)
    mask = raycast(verts[None], faces, K, 96).mask[0]
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[~mask], image[~mask])
    assert (np.abs(out[mask].astype(int) - image[mask]).sum(-1) > 0).mean() > 0.95
    # per-face colours and per-vertex colours take effect
    red = np.tile([255, 0, 0], (len(faces), 1))
    out_red = render_overlay(np.zeros_like(image), verts, faces, K, face_colors=red, alpha=1.0)
    assert (out_red[mask][:, 0] > 0).all() and (out_red[mask][:, 1:] == 0).all()
    blue = np.tile([0.0, 0.0, 1.0], (len(verts), 1))
    out_blue = render_overlay(np.zeros_like(image), verts, faces, K, vertex_colors=blue, alpha=1.0)
    assert (out_blue[mask][:, 2] > 0).all() and (out_blue[mask][:, :2] == 0).all()
    # head-light shading: the centre (facing the camera) is brighter than the rim
    assert out_red[48, 48, 0] > out_red[mask][:, 0].min() + 30
    # supersampling: same inside, untouched far outside, blended (in-between) on the edge
    smooth = render_overlay(np.zeros_like(image), verts, faces, K, face_colors=red, alpha=1.0, supersample=3)
    inner = mask.copy()
    for axis in (0, 1):
        inner &= np.roll(mask, 2, axis) & np.roll(mask, -2, axis)
    assert np.abs(smooth[inner].astype(int) - out_red[inner]).max() <= 12
    grown = mask.copy()
    for axis in (0, 1):
        grown |= np.roll(mask, 2, axis) | np.roll(mask, -2, axis)
    assert (smooth[~grown] == 0).all()
    edge = mask & ~inner
    assert ((smooth[edge][:, 0] > 0) & (smooth[edge][:, 0] < out_red[edge][:, 0])).mean() > 0.3


def test_rotate_about_centroid_and_views():
    verts, faces = sphere(center=(0.0, 0.0, 6.0), subdivisions=2)
    body = verts * [0.4, 1.0, 0.2] + [0, 0, 4.8]  # thin, tall, flat ellipsoid
    c = body.mean(0)
    rot = rotate_about_centroid(body, 90.0, "y")
    np.testing.assert_allclose(rot.mean(0), c, atol=1e-9)
    pair_x = c + np.array([[1.0, 0, 0], [-1.0, 0, 0]])  # centroid c
    np.testing.assert_allclose(rotate_about_centroid(pair_x, 90, "y")[0], c + [0, 0, -1.0], atol=1e-9)
    pair_y = c + np.array([[0, -1.0, 0], [0, 1.0, 0]])
    np.testing.assert_allclose(rotate_about_centroid(pair_y, 90, "x")[0], c + [0, 0, -1.0], atol=1e-9)
    K = spin_intrinsics(focal=500.0, img_res=128)
    front = render_view(body, faces, K, 128, "front", frame=False)
    side = render_view(body, faces, K, 128, "side", frame=False)
    top = render_view(body, faces, K, 128, "top")
    for img in (front, side, top):
        assert img.shape == (128, 128, 3) and img.dtype == np.uint8
    width = lambda img: np.flatnonzero((img != 255).any(-1).any(0)).ptp()
    height = lambda img: np.flatnonzero((img != 255).any(-1).any(1)).ptp()
    assert width(side) < width(front)       # seen from the side, the flat body is thin
    assert height(top) < height(front)      # seen from above, the tall body is short
    # framing keeps the whole mesh inside the image with the margin
    framed = frame_vertices(rotate_about_centroid(body, 90, "x"), K, 128, margin=0.1)
    px = project_points(framed[None], K)[0]
    assert px.min() >= 128 * 0.1 - 1e-6 and px.max() <= 128 * 0.9 + 1e-6
    assert px[:, 0].min() < 128 * 0.1 + 1 or px[:, 1].min() < 128 * 0.1 + 1  # tight on one axis
    with pytest.raises(ValueError, match="view"):
        render_view(body, faces, K, 128, "back")


# ----------------------------------------------------------------------------- drawing and colours


def test_draw_keypoints_marks_only_near_keypoints():
    image = np.full((64, 80, 3), 40, np.uint8)
    kp = np.array([[10.0, 10.0], [60.0, 40.0], [30.0, 50.0]])
    conf = np.array([1.0, 0.3, 0.0])
    proj = np.array([[14.0, 12.0], [55.0, 44.0], [5.0, 5.0]])
    out = draw_keypoints(image, kp, conf, projected=proj, radius=2)
    assert out.shape == image.shape and out.dtype == np.uint8
    changed = (out != image).any(-1)
    assert changed[9:12, 9:12].all() and changed[39:42, 59:62].all()
    assert not changed[48:53, 28:33].any()           # confidence 0: target not drawn
    assert changed[3:7, 3:7].any()                   # its projection is still drawn
    assert not changed[25:35, 65:80].any()           # far from everything
    # colour by confidence: the confident point is greener than the unsure one
    assert int(out[10, 10, 1]) - int(out[10, 10, 0]) > int(out[40, 60, 1]) - int(out[40, 60, 0])
    out3 = draw_keypoints(image, np.concatenate([kp, conf[:, None]], 1), radius=2)
    assert not (out3 != image).any(-1)[48:53, 28:33].any()


def test_draw_points_coordinates():
    image = np.zeros((40, 40, 3), np.uint8)
    out = draw_points(image, np.array([[0.0, 0.0]]), coords="normalized", radius=1)
    assert (out[19:21, 19:21] > 0).any() and not (out[:10] > 0).any()
    out = draw_points(image, np.array([[5.0, 5.0]]), colors=(255, 0, 0), source_size=10, radius=1)
    assert out[20, 20, 0] > 0 and out[20, 20, 1] == 0


def test_iuv_to_rgb_modes():
    part = np.array([[0, 1], [24, 3]])
    u = np.array([[0.0, 0.2], [1.0, 0.5]])
    v = np.array([[0.0, 0.9], [0.0, 0.1]])
    for mode in ("part", "u", "v", "iuv"):
        rgb = iuv_to_rgb(part, u, v, mode=mode)
        assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
        assert (rgb[0, 0] == 0).all() and (rgb[part > 0].sum(-1) > 0).all()
    np.testing.assert_array_equal(iuv_to_rgb(part, u, v, "iuv")[1, 0], [255, 255, 0])
    np.testing.assert_array_equal(iuv_to_rgb(part, mode="part")[0, 1], PART_PALETTE[1])
    assert len({tuple(c) for c in PART_PALETTE}) == 25
    with pytest.raises(ValueError):
        iuv_to_rgb(part, mode="u")


def test_visibility_colours_and_rendering():
    np.testing.assert_array_equal(visibility_colors(np.array([1.0, 0.0, 0.5])),
                                  [[0, 255, 0], [255, 0, 0], [128, 128, 0]])
    verts, faces = sphere(center=(0.0, 0.0, 6.0), subdivisions=2)
    K = spin_intrinsics(focal=150.0, img_res=96)
    weights = (verts[:, 0] > 0).astype(float)  # right half "visible"
    img = np.zeros((96, 96, 3), np.uint8)
    mesh = render_visibility(img, verts, faces, K, weights, mode="mesh", alpha=1.0)
    assert mesh[48, 70, 1] > mesh[48, 70, 0] and mesh[48, 26, 0] > mesh[48, 26, 1]
    pts = render_visibility(img, verts, faces, K, weights, mode="points", radius=1)
    assert pts.shape == (96, 96, 3) and (pts > 0).any()


def test_feature_map_pictures():
    f = np.zeros((8, 6, 10))
    f[0, :, :5] = 1.0
    f[1, 3:, 5:] = 2.0
    f[2, :3, 5:] = -1.5
    s = feature_map_to_rgb(f, "sum")
    p = feature_map_to_rgb(f, "pca", out_size=(12, 20))
    assert s.shape == (6, 10, 3) and p.shape == (12, 20, 3) and p.dtype == np.uint8
    regions = [tuple(p[2, 2]), tuple(p[10, 15]), tuple(p[2, 15])]
    assert len(set(regions)) == 3  # three distinct feature vectors → three colours
    import torch
    np.testing.assert_array_equal(feature_map_to_rgb(torch.tensor(f), "sum"), s)


# ----------------------------------------------------------------------------- safe_render


def test_safe_render_returns_placeholder_and_logs(caplog):
    def broken(x):
        raise RuntimeError("no mesh")

    with caplog.at_level(logging.ERROR, logger="core.render.safe"):
        out = safe_render(broken, 1, fallback_shape=(50, 70, 3))
    assert out.shape == (50, 70, 3) and out.dtype == np.uint8
    assert np.median(out) == 128 and (out != 128).any()  # grey with some text
    assert "no mesh" in caplog.text
    assert safe_render(lambda a, b=0: a + b, 1, b=2) == 3
    assert placeholder_image((30, 30), "x").shape == (30, 30, 3)
    # a real renderer failing on bad input still gives an image
    verts, faces, _, _ = two_triangles()
    out = safe_render(render_overlay, np.zeros((12, 16, 3), np.uint8), verts * np.nan, faces, K_SMALL,
                      fallback_shape=(12, 16, 3))
    assert out.shape == (12, 16, 3)

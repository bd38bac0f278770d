"""Studio view builders from a Trace: shading (against a slow rasteriser), overlays, side
views, keypoints, strips, maps, loss plots, camera re-projection, exports."""
from __future__ import annotations

import io

import numpy as np
import pytest

from core.trace import Step, Trace
from studio.export import image_plane, mesh_glb, mesh_obj, scene_glb, step_params_npz, to_viewer_frame
from studio.maps import colorize_parts, colorize_scalar, draw_points, map_panels, visibility_colors
from studio.plots import figure_to_image, loss_figure
from studio.shading import blend, look_at_camera, shade_mesh
from studio.views import (
    ViewSettings,
    compare_strip,
    full_image_intrinsics,
    intrinsics_in_crop,
    keypoints_image,
    mesh_status,
    overlay_image,
    side_view,
    step_strip,
    trace_intrinsics,
)
from tests.test_studio_support import body_trace


@pytest.fixture(scope="module")
def trace() -> Trace:
    return body_trace()


# ----------------------------------------------------------------------------- shading
def _raster_reference(verts: np.ndarray, faces: np.ndarray, K: np.ndarray, h: int, w: int) -> np.ndarray:
    """Slow obvious reference: a pixel centre is covered when it lies inside a projected
    triangle (barycentric sign test), for every pixel and every triangle."""
    uv = verts[:, :2] / verts[:, 2:3] * np.diag(K)[:2] + K[:2, 2]
    mask = np.zeros((h, w), bool)
    for r in range(h):
        for c in range(w):
            p = np.array([c + 0.5, r + 0.5])
            for f in faces:
                a, b, d = uv[f]
                m = np.array([b - a, d - a]).T
                if abs(np.linalg.det(m)) < 1e-12:
                    continue
                l1, l2 = np.linalg.solve(m, p - a)
                if l1 >= -1e-9 and l2 >= -1e-9 and l1 + l2 <= 1 + 1e-9:
                    mask[r, c] = True
                    break
    return mask


def test_shade_mesh_mask_matches_a_slow_rasteriser():
    rng = np.random.default_rng(1)
    verts = np.concatenate([rng.uniform(-1.0, 1.0, size=(6, 2)), rng.uniform(3, 4, size=(6, 1))], 1)
    faces = np.array([[0, 1, 2], [3, 4, 5], [0, 2, 4]])
    K = np.array([[30.0, 0, 16], [0, 30.0, 12], [0, 0, 1]])
    got = shade_mesh(verts, faces, K, (24, 32)).mask
    ref = _raster_reference(verts, faces, K, 24, 32)
    # pixels whose centre lies exactly on an edge may go either way
    assert (got != ref).sum() <= 3, (got != ref).sum()
    assert ref.sum() > 20


def test_shade_mesh_empty_for_meshes_behind_the_camera_or_nan():
    faces = np.array([[0, 1, 2]])
    K = np.eye(3)
    behind = np.array([[0, 0, -1.0], [1, 0, -1.0], [0, 1, -1.0]])
    assert not shade_mesh(behind, faces, K, (8, 8)).mask.any()
    nan = behind.copy()
    nan[0, 0] = np.nan
    assert not shade_mesh(nan, faces, K, (8, 8)).mask.any()


def test_shade_mesh_out_size_is_the_same_camera_rescaled():
    verts = np.array([[-0.5, -0.5, 3.0], [0.5, -0.5, 3.0], [0.0, 0.6, 3.0]])
    K = np.array([[20.0, 0, 16], [0, 20.0, 16], [0, 0, 1]])
    small = shade_mesh(verts, np.array([[0, 1, 2]]), K, (32, 32)).mask
    big = shade_mesh(verts, np.array([[0, 1, 2]]), K, (32, 32), out_size=(64, 64)).mask
    down = big.reshape(32, 2, 32, 2).mean(axis=(1, 3)) > 0.5
    assert (down != small).sum() <= 6


def test_shading_is_brighter_facing_the_camera():
    # a quad facing the camera and one turned 70°: the turned one is darker
    K = np.array([[40.0, 0, 20], [0, 40.0, 20], [0, 0, 1]])
    quad = np.array([[-0.4, -0.4, 4.0], [0.4, -0.4, 4.0], [0.4, 0.4, 4.0], [-0.4, 0.4, 4.0]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    a = np.deg2rad(70)
    R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    turned = (quad - [0, 0, 4.0]) @ R.T + [0, 0, 4.0]
    s1 = shade_mesh(quad, faces, K, (40, 40))
    s2 = shade_mesh(turned, faces, K, (40, 40))
    assert s1.rgb[s1.mask].mean() > s2.rgb[s2.mask].mean() + 0.1


def test_blend_only_changes_mesh_pixels():
    bg = np.full((8, 8, 3), 100, np.uint8)
    verts = np.array([[-1.0, -1.0, 2.0], [1.0, -1.0, 2.0], [0.0, 1.0, 2.0]])
    s = shade_mesh(verts, np.array([[0, 1, 2]]), np.array([[4.0, 0, 4], [0, 4.0, 4], [0, 0, 1]]), (8, 8))
    out = blend(bg, s, 1.0)
    assert (out[~s.mask] == 100).all()
    np.testing.assert_allclose(out[s.mask] / 255.0, s.rgb[s.mask], atol=1 / 255 + 1e-6)


def test_look_at_camera_side_view_turns_the_persons_left_towards_the_camera():
    v = np.array([[1.0, 0, 10], [-1.0, 0, 10], [0, -1.0, 10], [0, 1.0, 10]])  # +x = person's left
    moved, K = look_at_camera(v, yaw_deg=90, size=100)
    assert moved[0, 2] < moved[1, 2]  # the +x point came closer
    moved, _ = look_at_camera(v, pitch_deg=90, size=100)
    assert moved[2, 2] < moved[3, 2]  # top of the head (−y) came closer: seen from above
    # framed: everything projects inside the image
    uv = moved[:, :2] / moved[:, 2:3] * K[0, 0] + 50
    assert ((uv > 0) & (uv < 100)).all()


# ----------------------------------------------------------------------------- views
def test_trace_intrinsics_and_status(trace):
    K, hw = trace_intrinsics(trace)
    assert hw == (224, 224) and K[0, 0] == 5000 and K[0, 2] == 112
    assert mesh_status(trace.final, K, hw) == ""
    far = Step("far", vertices=trace.final.vertices + [100.0, 0, 0])
    assert "outside" in mesh_status(far, K, hw)
    assert "behind" in mesh_status(Step("b", vertices=-np.abs(trace.final.vertices)), K, hw)


def test_overlay_draws_the_mesh_where_it_projects(trace):
    img = overlay_image(trace, -1, ViewSettings(size=224, alpha=1.0))
    assert img.shape == (224, 224, 3) and img.dtype == np.uint8
    changed = (img != trace.crop).any(axis=2)
    K, hw = trace_intrinsics(trace)
    ref = shade_mesh(trace.final.vertices, trace.faces, K, hw).mask
    assert (changed == ref).mean() > 0.97  # only noise pixels that happen to match differ
    assert ref.sum() > 1000


def test_overlay_of_a_mesh_outside_the_crop_is_just_the_crop(trace):
    far = Trace("x", crop=trace.crop, camera=trace.camera, faces=trace.faces,
                steps=[Step("far", vertices=trace.final.vertices + [1000.0, 0, 0])])
    img = overlay_image(far, 0, ViewSettings(size=224))
    np.testing.assert_array_equal(img, trace.crop)


def test_nonsquare_crops_keep_their_aspect():
    tr = body_trace()
    cliff = Trace("cliff", crop=np.zeros((256, 192, 3), np.uint8),
                  camera={"focal": 4000.0, "center": np.array([96.0, 128.0])}, steps=tr.steps, faces=tr.faces)
    assert overlay_image(cliff, -1, ViewSettings(size=448)).shape == (448, 336, 3)


def test_side_view_frames_every_step_the_same(trace):
    imgs = [side_view(trace, i, settings=ViewSettings(side_size=160)) for i in range(len(trace.steps))]
    areas = [((im != im[0, 0]).any(axis=2)).sum() for im in imgs]
    # the meshes differ only by translation: same framing radius → same area (±2 %)
    assert max(areas) / min(areas) < 1.02 and min(areas) > 500


def test_keypoints_image_draws_targets_and_projections(trace):
    plain = keypoints_image(trace, 0, ViewSettings(size=224))
    green = (plain[..., 1] > 180) & (plain[..., 0] < 80)
    red = (plain[..., 0] > 200) & (plain[..., 1] < 90)
    assert green.sum() > 50 and red.sum() > 50


def test_step_strip_subsamples_keeping_first_and_last():
    tr = body_trace(n_steps=9, with_maps=False)
    items = step_strip(tr, max_items=4, settings=ViewSettings(size=64))
    labels = [c for _, c in items]
    assert labels[0].startswith("0:") and labels[-1].startswith("8:") and len(items) == 4


def test_crop_reprojection_matches_the_full_image_camera(trace):
    from core.geometry import points_to_crop

    K_full = full_image_intrinsics(trace)
    X = trace.final.vertices[:50].astype(np.float64)
    full = X[:, :2] / X[:, 2:] * np.diag(K_full)[:2] + K_full[:2, 2]
    K, _ = trace_intrinsics(trace)
    crop = X[:, :2] / X[:, 2:] * np.diag(K)[:2] + K[:2, 2]
    np.testing.assert_allclose(points_to_crop(full, trace.camera["bbox_center"], 2.0, 224), crop, atol=1e-6)
    # the same crop again: the identity
    K2 = intrinsics_in_crop(trace, trace.camera["bbox_center"], 2.0, (224, 224))
    np.testing.assert_allclose(K2, K, atol=1e-6)
    # another crop (CLIFF-like 256×192 around another centre)
    K3 = intrinsics_in_crop(trace, [300.0, 250.0], 1.5, (256, 192))
    other = X[:, :2] / X[:, 2:] * np.diag(K3)[:2] + K3[:2, 2]
    np.testing.assert_allclose(points_to_crop(full, [300.0, 250.0], 1.5, (256, 192)), other, atol=1e-6)


def test_compare_strip_marks_untrained(trace):
    untrained = Trace("pymaf", crop=trace.crop, camera=trace.camera, steps=trace.steps, faces=trace.faces,
                      meta={"weights_trained": False})
    items = compare_strip([trace, untrained], ViewSettings(size=96),
                          reference=(trace.crop, trace.camera["bbox_center"], 2.0))
    assert "UNTRAINED" in items[1][1] and "UNTRAINED" not in items[0][1]
    assert items[0][0].shape == (96, 192, 3)


# ----------------------------------------------------------------------------- maps and plots
def test_map_panels_cover_each_kind(trace):
    panels = map_panels(trace, -1, ViewSettings(size=112))
    caps = " | ".join(c for _, c in panels)
    for word in ("IUV parts", "IUV U", "IUV V", "visibility", "feature map, summed over channels", "sampling points"):
        assert word in caps, caps
    assert "_" not in caps, caps                    # titles in words, never variable names
    assert "sampled_vertex_ids" not in caps
    assert all(img.shape == (112, 112, 3) and img.dtype == np.uint8 for img, _ in panels)
    assert map_panels(trace, 0) == []


def test_map_panels_point_sets_and_vertex_lists_are_not_drawn_as_images(trace):
    import copy

    t = copy.deepcopy(trace)
    step = t.steps[-1]
    V = step.vertices.shape[0]
    step.maps = {
        "fused_xy": np.full((40, 2), 100.0, np.float32),            # 2D points in crop pixels
        "lowpoly_vertices": np.zeros((40, 3), np.float32),           # 3D coordinates
        "lowpoly_faces": np.zeros((70, 3), np.int64),                # faces
        "vertex_rgb": np.tile(np.array([[0, 255, 0]], np.uint8), (V, 1)),  # per-vertex colours
    }
    panels = map_panels(t, -1, ViewSettings(size=112))
    caps = [c for _, c in panels]
    assert "fused vertices (40 points)" in caps, caps
    assert "vertex rgb (per-vertex colours)" in caps, caps
    assert not any(c.startswith(("low-poly", "lowpoly")) for c in caps), caps
    green = dict((c, img) for img, c in panels)["vertex rgb (per-vertex colours)"].astype(int)
    assert (green[..., 1] - green[..., 0] > 40).any()          # the mesh is painted green


def test_colourisers():
    parts = colorize_parts(np.array([[0, 1], [24, 99]]))
    assert (parts[0, 0] == 0).all() and not (parts[0, 1] == 0).all()
    np.testing.assert_array_equal(parts[1, 1], parts[1, 0])  # clipped to the last part
    sc = colorize_scalar(np.array([[0.0, 1.0], [np.nan, 0.5]]), lo=0.0, hi=1.0)
    assert (sc[1, 0] == 0).all() and not (sc[0, 0] == sc[0, 1]).all()
    vis = visibility_colors(np.array([0.0, 1.0]))
    assert vis[0, 0] > vis[0, 1] and vis[1, 1] > vis[1, 0]  # red then green
    # a point at (20, 25) in a 50×50 image lands at (40, 50) in a 100×100 one
    img = draw_points(np.zeros((100, 100, 3), np.uint8), np.array([[20.0, 25.0]]), (50, 50), radius=1)
    ys, xs = np.nonzero(img.any(axis=2))
    assert abs(xs.mean() - 40) <= 1 and abs(ys.mean() - 50) <= 1


def test_loss_figure(trace):
    fig = loss_figure(trace, current=1)
    assert len(fig.axes) == 2 and [a.get_title() for a in fig.axes] == ["keypoints_2d_px", "depth"]
    img = figure_to_image(fig)
    assert img.ndim == 3 and img.shape[2] == 3 and img.std() > 0
    empty = Trace("x", steps=[Step("a")])
    assert "no losses" in loss_figure(empty).axes[0].texts[0].get_text()


# ----------------------------------------------------------------------------- exports
def test_viewer_frame_and_image_plane(trace):
    p = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(to_viewer_frame(p), [[1.0, -2.0, -3.0]])
    K, _ = trace_intrinsics(trace)
    plane = image_plane(trace.crop, K, 60.0)
    uv = plane.corners[:, :2] / plane.corners[:, 2:] * np.diag(K)[:2] + K[:2, 2]
    np.testing.assert_allclose(uv, [[0, 0], [224, 0], [224, 224], [0, 224]], atol=1e-9)


def test_glb_round_trip_keeps_vertices_and_colours(trace):
    import trimesh

    v, f = trace.final.vertices, trace.faces
    colors = np.tile([0.2, 0.4, 0.6], (len(v), 1))
    K, _ = trace_intrinsics(trace)
    data = mesh_glb(v, f, colors, plane=image_plane(trace.crop, K, 60.0))
    scene = trimesh.load(io.BytesIO(data), file_type="glb")
    mesh = scene.geometry["mesh_0"]
    assert len(mesh.vertices) == len(v) and len(mesh.faces) == len(f)
    center = (v.min(0) + v.max(0)) / 2
    np.testing.assert_allclose(mesh.vertices, to_viewer_frame(v, center), atol=1e-5)
    np.testing.assert_array_equal(mesh.visual.vertex_colors[0, :3], [51, 102, 153])
    assert "photo" in scene.geometry
    with pytest.raises(ValueError, match="NaN"):
        scene_glb([(np.full((3, 3), np.nan), np.array([[0, 1, 2]]), None)])


def test_obj_text_parses_back(trace):
    v, f = trace.final.vertices, trace.faces
    text = mesh_obj(v, f, np.tile([1.0, 0.5, 0.0], (len(v), 1)), comment="step 3")
    lines = text.splitlines()
    vs = np.array([l.split()[1:] for l in lines if l.startswith("v ")], float)
    fs = np.array([l.split()[1:] for l in lines if l.startswith("f ")], int)
    assert vs.shape == (len(v), 6) and fs.shape == f.shape and fs.min() == 1
    np.testing.assert_allclose(vs[:, 3:], np.tile([1.0, 0.5, 0.0], (len(v), 1)), atol=1 / 255)  # 8-bit
    assert "# step 3" in text


def test_step_params_npz_loads_without_pickle(trace):
    data = np.load(io.BytesIO(step_params_npz(trace, -1)), allow_pickle=False)
    np.testing.assert_allclose(data["vertices"], trace.final.vertices)
    np.testing.assert_allclose(data["params/transl"], trace.final.params["transl"])
    assert str(data["label"]) == trace.final.label and "losses/keypoints_2d_px" in data

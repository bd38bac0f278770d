"""MeshPose: soft-argmaxes, fusion, UV decoding against the raycast renderer, targets,
losses, the upsampler (committed weights), the network and its Trace."""
import numpy as np
import pytest
import torch

from core.models.meshpose import (MESHPOSE_LOSS_WEIGHTS, MeshPose, barycentric_cross_entropy, bin_soft_argmax,
                                  build_upsampler,
                                  bins_to_pixels, camera_to_pixel_space, decode_iuv, edge_loss, estimate_root_depth,
                                  evaluate_upsampler, fuse_vertices, joint_loss, load_upsampler,
                                  normal_loss, pixel_space_to_camera, silhouette_loss, spatial_soft_argmax,
                                  target_from_body_hits, target_from_lowpoly_hits, target_from_uv,
                                  uv_consistency_loss, visibility_bce, visibility_colors, weighted_total)
from core.models.meshpose.heads import RegressionHead
from core.models.meshpose.random_bodies import sample_poses
from core.models.meshpose.upsampler import SparseVertexLinear, upsampler_path
from core.render.iuv import render_iuv
from core.render.raycast import raycast

CROP = 224
FOCAL = 5000.0
K = np.array([[FOCAL, 0, CROP / 2], [0, FOCAL, CROP / 2], [0, 0, 1.0]])


pytestmark = pytest.mark.usefixtures("one_thread")    # body, lowpoly: the open body's (tests/conftest.py)


@pytest.fixture(scope="module")
def posed_camera_vertices(body):
    """Two posed open bodies in SPIN's crop camera (≈ 170 px tall), camera frame."""
    gen = torch.Generator().manual_seed(5)
    pose = sample_poses(2, gen, scale=0.5)
    out = body(betas=torch.randn(2, 10, generator=gen) * 0.5, body_pose=pose)
    v = out.vertices * torch.tensor([1.0, -1.0, -1.0])            # face the camera, y down
    v = v - v.mean(dim=1, keepdim=True)
    return v + torch.tensor([0.0, 0.0, 50.0])


def ideal_scores(target, num_vertices, h, w, eps=1e-6):
    """(B, V+1, h, w) log-scores whose per-pixel softmax is the target's barycentrics."""
    B = target.vertex_ids.shape[0]
    q = torch.full((B, h * w, num_vertices + 1), eps)
    q.scatter_add_(2, target.vertex_ids, target.weights.float())
    return q.log().reshape(B, h, w, -1).permute(0, 3, 1, 2)


# ------------------------------------------------------------------ soft-argmax and fusion
def test_spatial_soft_argmax_recovers_a_known_peak():
    h, w, stride = 56, 48, 4.0
    peaks = torch.tensor([[[20.3, 30.7], [7.25, 11.5]]])              # (x, y) in map pixels
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    d2 = (xs - peaks[0, :, 0, None, None]) ** 2 + (ys - peaks[0, :, 1, None, None]) ** 2
    scores = (-d2 / (2 * 1.5 ** 2))[None]                            # log of a Gaussian
    got = spatial_soft_argmax(scores.double(), stride=stride)
    assert torch.allclose(got, peaks.double() * stride, atol=1e-6)
    # a sharp peak with a gain: the argmax pixel's centre
    one_hot = torch.full((1, 1, h, w), -1.0)
    one_hot[0, 0, 9, 33] = 1.0
    assert torch.allclose(spatial_soft_argmax(one_hot, stride=stride, gain=50.0),
                          torch.tensor([[[33.5 * stride, 9.5 * stride]]]), atol=1e-3)


def test_spatial_soft_argmax_matches_slow_reference():
    scores = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    got = spatial_soft_argmax(scores, stride=2.0, gain=3.0)
    for b in range(2):
        for k in range(3):
            p = torch.softmax(3.0 * scores[b, k].flatten(), 0).reshape(5, 7)
            ex = sum(p[r, c] * (c + 0.5) * 2 for r in range(5) for c in range(7))
            ey = sum(p[r, c] * (r + 0.5) * 2 for r in range(5) for c in range(7))
            assert torch.allclose(got[b, k], torch.stack([ex, ey]))


def test_bin_soft_argmax_and_paper_ranges():
    logits = torch.full((4, 64), -40.0)
    for i, k in enumerate((0, 17, 40, 63)):
        logits[i, k] = 40.0
    assert torch.allclose(bin_soft_argmax(logits), torch.tensor([0.5, 17.5, 40.5, 63.5]), atol=1e-4)
    size = (200, 160)                                                 # (H, W)
    ends = torch.tensor([0.0, 64.0])
    assert torch.allclose(bins_to_pixels(ends, "x", size), torch.tensor([-160.0, 320.0]))
    assert torch.allclose(bins_to_pixels(ends, "y", size), torch.tensor([-200.0, 600.0]))
    assert torch.allclose(bins_to_pixels(ends, "z", size), torch.tensor([-320.0, 320.0]))


def test_regression_head_visibility_is_sigmoid_of_mean_z_logits():
    torch.manual_seed(0)
    head = RegressionHead(8, 5).eval()
    feats = torch.randn(2, 8, 6, 6)
    xyz, vis_logits, logits = head(feats, (224, 224))
    pooled = feats.mean(dim=(2, 3))
    z_logits = head.z(pooled)
    assert torch.allclose(vis_logits, z_logits.mean(-1))
    assert torch.allclose(xyz[..., 2], bins_to_pixels(bin_soft_argmax(z_logits), "z", (224, 224)))
    assert ((xyz[..., 0] > -224) & (xyz[..., 0] < 448)).all()


def test_fusion_equals_each_branch_at_the_extremes():
    torch.manual_seed(1)
    vp, reg = torch.randn(2, 7, 2), torch.randn(2, 7, 3)
    assert torch.equal(fuse_vertices(vp, reg, torch.ones(2, 7))[..., :2], vp)
    assert torch.equal(fuse_vertices(vp, reg, torch.zeros(2, 7)), reg)
    assert torch.equal(fuse_vertices(vp, reg, torch.ones(2, 7))[..., 2], reg[..., 2])   # depth: regression
    mid = fuse_vertices(vp, reg, torch.full((2, 7), 0.25))
    assert torch.allclose(mid[..., :2], 0.25 * vp + 0.75 * reg[..., :2])


# ------------------------------------------------------------------ UV decoding vs the renderer
def test_barycentric_decoding_reproduces_a_rendered_lowpoly_iuv(body, lowpoly, posed_camera_vertices):
    low = posed_camera_vertices[:, lowpoly.vertex_ids]
    hits = raycast(low, lowpoly.faces, K, CROP, out_size=(56, 56))
    gt = render_iuv(low, lowpoly.faces, lowpoly.face_part, lowpoly.face_uv, K, CROP, out_size=(56, 56))
    scores = ideal_scores(target_from_lowpoly_hits(lowpoly, hits), lowpoly.num_vertices, 56, 56)
    fg = torch.from_numpy(gt.mask)
    gt_uv = torch.from_numpy(np.stack([gt.u, gt.v], -1))
    errors = {}
    for strategy in ("barycentric", "nearest", "global_average"):
        dec = decode_iuv(scores, lowpoly, strategy)
        assert torch.equal(dec.foreground, fg)
        errors[strategy] = (dec.uv - gt_uv).norm(dim=-1)[fg].mean().item()
        if strategy == "barycentric":
            assert (dec.part[fg] == torch.from_numpy(gt.part.astype(np.int64))[fg]).float().mean() > 0.99
    print("UV error on the low-poly render:", errors)
    assert errors["barycentric"] < 2e-3
    # nearest: piecewise constant; global average: mixes vertex UVs across charts at seams
    assert errors["nearest"] > 100 * errors["barycentric"] and errors["global_average"] > 100 * errors["barycentric"]


def test_barycentric_decoding_of_a_full_body_render_beats_nearest(body, lowpoly, posed_camera_vertices):
    hits = raycast(posed_camera_vertices, body.faces, K, CROP, out_size=(56, 56))
    gt = render_iuv(posed_camera_vertices, body.faces, body.face_part, body.face_uv, K, CROP, out_size=(56, 56))
    scores = ideal_scores(target_from_body_hits(lowpoly, body, hits), lowpoly.num_vertices, 56, 56)
    fg = torch.from_numpy(gt.mask)
    gt_part = torch.from_numpy(gt.part.astype(np.int64))
    gt_uv = torch.from_numpy(np.stack([gt.u, gt.v], -1))
    res = {}
    for strategy in ("barycentric", "nearest", "global_average"):
        dec = decode_iuv(scores, lowpoly, strategy)
        same = fg & (dec.part == gt_part)
        res[strategy] = ((dec.uv - gt_uv).norm(dim=-1)[same].mean().item(), same.sum().item() / fg.sum().item())
    print("full-body render: (UV error, part agreement):", res)
    assert res["barycentric"][1] > 0.97
    assert res["barycentric"][0] < 0.02
    assert res["barycentric"][0] < 0.5 * res["nearest"][0]


def test_target_from_uv_reproduces_annotated_uvs(lowpoly):
    rng = np.random.default_rng(3)
    faces = rng.choice(lowpoly.num_faces, 300)
    b = rng.dirichlet(np.ones(3), 300)
    uv = np.einsum("nk,nkc->nc", b, lowpoly.face_uv[faces])
    part = lowpoly.face_part[faces]
    t = target_from_uv(lowpoly, rng.random((1, 300, 2)) * 56, part[None], uv[None])
    assert torch.equal(t.part[0], torch.from_numpy(part))
    # the chosen face and barycentrics give back the annotated UV (in the annotated chart)
    chart_uv = torch.from_numpy(lowpoly.chart_uv)
    back = (t.weights[0, :, :, None] * chart_uv[t.vertex_ids[0], torch.from_numpy(part)[:, None]]).sum(1)
    assert torch.allclose(back, torch.from_numpy(uv).float(), atol=1e-4)
    # the UV-consistency loss of the ideal posterior is ~0, and it grows for a wrong one
    scores = ideal_scores(t, lowpoly.num_vertices, 1, 300).reshape(1, -1, 1, 300)
    t.pixels = torch.stack([torch.arange(300) + 0.5, torch.full((300,), 0.5)], -1)[None]
    assert uv_consistency_loss(scores, t, lowpoly) < 1e-3
    shuffled = scores[..., torch.from_numpy(rng.permutation(300))]
    assert uv_consistency_loss(shuffled, t, lowpoly) > 0.05


# ------------------------------------------------------------------ losses
def test_barycentric_cross_entropy_prefers_the_ideal_scores(lowpoly, posed_camera_vertices):
    low = posed_camera_vertices[:1, lowpoly.vertex_ids]
    t = target_from_lowpoly_hits(lowpoly, raycast(low, lowpoly.faces, K, CROP, out_size=(28, 28)))
    good = ideal_scores(t, lowpoly.num_vertices, 28, 28, eps=1e-3)
    flat = torch.zeros_like(good)
    assert barycentric_cross_entropy(good, t) < 0.5 * barycentric_cross_entropy(flat, t)
    # slow reference on a few points (scores sampled at pixel centres = the pixel's own value)
    logq = torch.log_softmax(good[0].reshape(good.shape[1], -1).T, -1)
    ref = -(t.weights[0] * torch.gather(logq, 1, t.vertex_ids[0])).sum(-1).mean()
    assert torch.allclose(barycentric_cross_entropy(good, t), ref, atol=1e-5)


def test_mesh_losses(lowpoly, posed_camera_vertices):
    gt = posed_camera_vertices[:, lowpoly.vertex_ids] * 100
    assert edge_loss(gt, gt, lowpoly.edges) == 0 and normal_loss(gt, gt, lowpoly.faces) < 1e-6
    moved = gt + torch.randn_like(gt)
    assert edge_loss(moved, gt, lowpoly.edges) > 0.1 and normal_loss(moved, gt, lowpoly.faces) > 0.01
    # rigid motions keep edge lengths
    R = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    assert edge_loss(gt @ R.T + 3, gt, lowpoly.edges) < 1e-3
    pred, target = torch.zeros(1, 3, 2), torch.ones(1, 3, 2)
    assert joint_loss(pred, target, torch.tensor([[1.0, 0.0, 1.0]])) == 2.0
    logits, tgt = torch.randn(2, 5), torch.rand(2, 5)
    ref = -(tgt * torch.log(torch.sigmoid(logits)) + (1 - tgt) * torch.log(1 - torch.sigmoid(logits))).mean()
    assert torch.allclose(visibility_bce(logits, tgt), ref, atol=1e-6)


def test_total_loss_uses_the_paper_weights():
    assert MESHPOSE_LOSS_WEIGHTS == {"barycentric": 1.0, "uv_consistency": 1.0, "visibility": 10.0,
                                     "vertex": 0.1, "edge": 1.0, "normal": 0.1, "joint": 1.0, "silhouette": 1.0}
    terms = {k: torch.tensor(1.0) for k in MESHPOSE_LOSS_WEIGHTS}
    assert weighted_total(terms) == pytest.approx(15.2)
    with pytest.raises(KeyError):
        weighted_total({"bogus": torch.tensor(1.0)})


def test_silhouette_loss_trains_visibility(lowpoly, posed_camera_vertices):
    low = posed_camera_vertices[:1, lowpoly.vertex_ids]
    px = camera_to_pixel_space(low, FOCAL, (CROP / 2, CROP / 2), low[:, :, 2].mean(1))[..., :2] / 4   # 56×56 map
    mask = torch.from_numpy(raycast(low, lowpoly.faces, K, CROP, out_size=(56, 56)).mask).float()
    V = lowpoly.num_vertices
    with torch.no_grad():
        visible = silhouette_loss(px, lowpoly.faces, torch.ones(1, V), mask, 56, pad=4)
        hidden = silhouette_loss(px, lowpoly.faces, torch.zeros(1, V), mask, 56, pad=4)
    assert visible < 0.2 * hidden              # a mesh on its own mask should be visible
    # a mesh that missed the mask (shifted off it): the loss pushes its visibility down
    w = torch.full((1, V), 0.5, requires_grad=True)
    silhouette_loss(px + torch.tensor([40.0, 0.0]), lowpoly.faces, w, mask, 56, pad=4).backward()
    assert torch.isfinite(w.grad).all() and w.grad.sum() > 0


def test_silhouette_loss_is_a_per_pixel_mean(lowpoly, posed_camera_vertices):
    """Normalised (the default): the same scene on a 56² and a 112² map gives about the same
    loss, of the order of the other terms; the literal sums grow with the resolution and
    are ~10³ larger."""
    low = posed_camera_vertices[:1, lowpoly.vertex_ids]
    V = lowpoly.num_vertices
    values = {}
    for side in (56, 112):
        px = camera_to_pixel_space(low, FOCAL, (CROP / 2, CROP / 2), low[:, :, 2].mean(1))[..., :2] * (side / CROP)
        mask = torch.from_numpy(raycast(low, lowpoly.faces, K, CROP, out_size=(side, side)).mask).float()
        shifted = px + torch.tensor([side / 6, 0.0])  # a prediction beside the person
        with torch.no_grad():
            values[side] = [silhouette_loss(shifted, lowpoly.faces, torch.full((1, V), 0.8), mask, side, pad=4,
                                            normalize=n).item() for n in (True, False)]
    (mean56, sum56), (mean112, sum112) = values[56], values[112]
    assert 0.7 < mean112 / mean56 < 1.4 and sum112 / sum56 > 3.0
    assert 0.1 < mean56 < 50.0 and sum56 > 300 * mean56


# ------------------------------------------------------------------ pixel space
def test_pixel_space_round_trip_and_root_depth(body, lowpoly, posed_camera_vertices):
    v = posed_camera_vertices
    root = v[:, :, 2].mean(1)
    px = camera_to_pixel_space(v, FOCAL, (112, 112), root)
    assert torch.allclose(pixel_space_to_camera(px, FOCAL, (112, 112), root), v, atol=1e-4)
    rest = body.v_template * torch.tensor([1.0, -1, -1]) + torch.tensor([0.0, 0, 40])
    rest_px = camera_to_pixel_space(rest[None], FOCAL, (112, 112), torch.tensor([40.0]))
    est = estimate_root_depth(rest_px[:, lowpoly.vertex_ids], lowpoly, body.v_template, FOCAL)
    assert est.item() == pytest.approx(40.0, rel=0.01)


# ------------------------------------------------------------------ upsampler
def test_committed_upsampler_error_on_held_out_bodies(body, lowpoly):
    up = load_upsampler(upsampler_path("open"), body, lowpoly)
    res = evaluate_upsampler(up, body, lowpoly, num_bodies=24, seed=4242)
    print(f"upsampler, held-out random bodies: {res['mean_mm']:.2f} mm mean vertex error "
          f"(hands {res['hands_mm']:.2f} mm, level 1 {res['level1_mm']:.2f} mm)")
    assert res["mean_mm"] < 10.0
    assert up.trained_on["report"]["clean"]["mean_mm"] < 10.0
    # training helped: better than the barycentric upsampler it started from, same bodies
    init = evaluate_upsampler(build_upsampler(body, lowpoly), body, lowpoly, num_bodies=24, seed=4242)
    print(f"barycentric (untrained) upsampler: {init['mean_mm']:.2f} mm")
    assert res["mean_mm"] < 0.85 * init["mean_mm"]


def test_upsampler_is_equivariant(body, lowpoly):
    up = load_upsampler(upsampler_path("open"), body, lowpoly)
    x = body.v_template[lowpoly.vertex_ids][None]
    c, s = np.cos(0.7), np.sin(0.7)
    R = torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1.0]], dtype=torch.float32)
    t = torch.tensor([3.0, -2.0, 10.0])
    with torch.no_grad():
        a = up(x) @ R.T * 250 + t
        b = up(x @ R.T * 250 + t)
    assert torch.allclose(a, b, atol=1e-3)


def test_sparse_vertex_linear_matches_dense():
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 9, (5, 4))
    mask = rng.random((5, 4)) > 0.3
    layer = SparseVertexLinear(idx, rng.standard_normal((5, 4)), mask, 9)
    x = torch.randn(2, 9, 3)
    assert torch.allclose(layer(x), torch.einsum("mi,bic->bmc", layer.dense(), x), atol=1e-5)


# ------------------------------------------------------------------ network and trace
@pytest.fixture(scope="module")
def small_model(body):
    torch.manual_seed(0)
    return MeshPose(body, backbone="mobilenet_v2", input_size=(64, 64)).eval()


def test_network_outputs_and_gradients(small_model):
    x = torch.randn(2, 3, 64, 64)
    out = small_model.train()(x)
    small_model.eval()
    V = small_model.num_lowpoly_vertices
    assert out.scores.shape == (2, V + 1, 16, 16)
    assert out.vertexpose_xy.shape == (2, V, 2) and out.full_vertices.shape == (2, 6902, 3)
    assert ((out.vertexpose_xy >= 0) & (out.vertexpose_xy <= 64)).all()
    assert ((out.regression[..., 1] > -64) & (out.regression[..., 1] < 192)).all()
    assert torch.allclose(out.vertices, fuse_vertices(out.vertexpose_xy, out.regression, out.visibility))
    (out.full_vertices.square().mean() + out.scores.logsumexp(1).mean()).backward()
    grads = [p.grad for p in small_model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    small_model.zero_grad()
    with pytest.raises(ValueError, match="expects a float tensor"):
        small_model(torch.zeros(1, 3, 224, 224))


def test_visibility_colors_go_from_red_to_green():
    assert visibility_colors(np.array([0.0, 1.0])).tolist() == [[255, 0, 0], [0, 255, 0]]


def test_meshpose_method_trace(tmp_path):
    from core.methods import MethodInputs, create_method
    from core.trace import Trace

    img = (np.random.default_rng(0).random((300, 400, 3)) * 255).astype(np.uint8)
    inputs = MethodInputs.from_image(img, [200, 150], 1.2)
    trace = create_method("meshpose", backbone="mobilenet_v2").run(inputs)
    assert trace.step_labels == ["Regression branch", "VertexPose", "MeshPose (fused)"]
    assert trace.meta["weights_trained"] is False and "untrained" in trace.meta["warning"]
    assert trace.meta["upsampler"].startswith("trained")
    fused = trace.final
    assert fused.vertices.shape == (6902, 3) and fused.joints2d.shape == (49, 2)
    assert trace.steps[1].maps["iuv"].shape == (56, 56, 3)
    assert fused.maps["visibility_render"].shape == (224, 224, 3)
    assert fused.maps["visibility_colors"].dtype == np.uint8
    # the camera-frame mesh reprojects onto the fused pixel positions
    low = fused.maps["lowpoly_vertices"]
    reproj = FOCAL * low[:, :2] / low[:, 2:] + 112
    assert np.allclose(reproj, fused.maps["fused_xy"], atol=1e-2)
    trace.save(tmp_path / "t.npz")
    assert Trace.load(tmp_path / "t.npz").final.maps["lowpoly_faces"].shape == (1032, 3)

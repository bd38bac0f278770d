"""PyMAF: sampling pieces against slow references, level structure, subset == full mesh."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.body import load_body
from core.geometry import perspective_projection, weak_perspective_to_translation
from core.models import PyMAF, feature_summary
from core.models.prediction import MeshPrediction
from core.models.pymaf import MAFExtractor, decode_iuv, grid_points, sample_point_features
from tests.helpers.fake_smpl import write_fake_smpl_dir


@pytest.fixture(scope="module")
def smpl_body(tmp_path_factory):
    return load_body("smpl", data_dir=write_fake_smpl_dir(tmp_path_factory.mktemp("smpl")))


@pytest.fixture(scope="module")
def model(smpl_body):
    """Official layout on the fake SMPL; a ResNet-18 trunk keeps the tests fast (the
    ResNet-50 layout is checked in test_models_keys.py; nothing below depends on it)."""
    torch.manual_seed(0)
    return PyMAF(smpl_body, layout="official", backbone="resnet18").eval()


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def runs(model, images):
    with torch.no_grad():
        return model(images, intermediate="subset"), model(images, intermediate="full")


# ----------------------------------------------------------------- pieces vs references
def test_grid_points_ij_order():
    g = grid_points(21)
    lin = np.linspace(-1, 1, 21)
    assert g.shape == (2, 441)
    for n in (0, 1, 20, 21, 230, 440):
        i, j = divmod(n, 21)
        assert g[0, n].item() == pytest.approx(lin[i], abs=1e-6) and g[1, n].item() == pytest.approx(lin[j], abs=1e-6)


def _bilinear_reference(fmap, x, y):
    """align_corners=True, zero padding, one point, loops."""
    C, H, W = fmap.shape
    px, py = (x + 1) / 2 * (W - 1), (y + 1) / 2 * (H - 1)
    x0, y0 = int(np.floor(px)), int(np.floor(py))
    out = np.zeros(C)
    for xi, yi in ((x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1)):
        w = (1 - abs(px - xi)) * (1 - abs(py - yi))
        if 0 <= xi < W and 0 <= yi < H:
            out += w * fmap[:, yi, xi]
    return out


def test_sample_point_features_matches_bilinear_reference():
    rng = np.random.default_rng(0)
    fmap = rng.normal(size=(1, 4, 5, 7))
    pts = np.concatenate([rng.uniform(-1.2, 1.2, size=(1, 30, 2)), [[[-1, -1], [1, 1], [1, -1]]]], axis=1)
    got = sample_point_features(torch.tensor(fmap), torch.tensor(pts)).numpy()
    for n in range(pts.shape[1]):
        np.testing.assert_allclose(got[0, :, n], _bilinear_reference(fmap[0], *pts[0, n]), atol=1e-10)


def test_maf_extractor_matches_per_point_reference():
    torch.manual_seed(0)
    mlp = MAFExtractor((6, 4, 3, 2)).double()
    x = torch.randn(2, 6, 5, dtype=torch.float64)
    got = mlp(x)
    W = [(c.weight[:, :, 0], c.bias) for c in (mlp.conv0, mlp.conv1, mlp.conv2)]
    for b in range(2):
        for n in range(5):
            f = x[b, :, n]
            h = F.leaky_relu(W[0][0] @ f + W[0][1], 0.01)
            h = F.leaky_relu(W[1][0] @ torch.cat([h, f]) + W[1][1], 0.01)
            h = torch.relu(W[2][0] @ torch.cat([h, f]) + W[2][1])
            for c in range(2):  # channel-major flattening: index c·N + n
                assert torch.allclose(got[b, c * 5 + n], h[c])


def test_feature_summary_against_numpy():
    rng = np.random.default_rng(0)
    fmap = rng.normal(size=(2, 8, 4, 5)) + np.linspace(0, 3, 20).reshape(1, 1, 4, 5)
    s = feature_summary(torch.tensor(fmap, dtype=torch.float32))
    np.testing.assert_allclose(s.channel_sum.numpy(), fmap.sum(1), rtol=1e-5, atol=1e-5)
    for b in range(2):
        X = fmap[b].reshape(8, 20).T
        X = X - X.mean(0)
        _, _, vt = np.linalg.svd(X, full_matrices=False)
        for k in range(3):
            v = vt[k] * np.sign(vt[k][np.abs(vt[k]).argmax()])
            p = X @ v
            ref = (p - p.min()) / (p.max() - p.min())
            np.testing.assert_allclose(s.pca[b, :, :, k].numpy().ravel(), ref, atol=1e-4)


def test_decode_iuv_against_loop():
    g = torch.Generator().manual_seed(0)
    idx, u, v = (torch.randn(2, 25, 3, 4, generator=g) for _ in range(3))
    part, uv = decode_iuv(idx, u, v)
    for b in range(2):
        for y in range(3):
            for x in range(4):
                p = int(idx[b, :, y, x].argmax())
                assert part[b, y, x] == p
                want = (0.0, 0.0) if p == 0 else (u[b, p, y, x].item(), v[b, p, y, x].item())
                assert uv[b, :, y, x].tolist() == pytest.approx(want)


# ----------------------------------------------------------------- the model
def test_dmap_is_the_bodys_sampling_selection(model, smpl_body):
    ids = np.asarray(smpl_body.sampling_vertex_ids)
    for level in (1, 2):
        assert model.sampling_vertex_ids(level).tolist() == ids.tolist()
    D = model.maf_extractor[0].Dmap
    assert D.shape == (len(ids), 6890) and torch.equal(D.sum(1), torch.ones(len(ids)))


def test_level_structure(runs, smpl_body):
    out, _ = runs
    assert [lv.label for lv in out.levels] == ["mean", "level 0", "level 1", "level 2"]
    n = len(smpl_body.sampling_vertex_ids)
    for lv in out.levels[:3]:
        assert lv.mesh.vertices.shape == (2, n, 3) and lv.mesh.vertex_ids is not None
    assert out.final.mesh.vertices.shape == (2, 6890, 3) and out.final.mesh.vertex_ids is None
    assert out.levels[0].sampling_points is None
    assert [lv.sampling_points.shape[1] for lv in out.levels[1:]] == [441, n, n]
    assert [lv.feature_map.shape[-1] for lv in out.levels[1:]] == [14, 28, 56]
    for lv in out.levels:
        assert lv.mesh.joints3d.shape == (2, 49, 3) and lv.mesh.joints2d.shape == (2, 49, 2)
        R = lv.state.rotmat
        assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3).expand_as(R), atol=1e-5)
    assert out.iuv.part.shape == (2, 56, 56) and out.iuv.uv.shape == (2, 2, 56, 56)
    assert out.iuv.uv_index.shape == (2, 25, 56, 56) and out.iuv.ann_index.shape == (2, 15, 56, 56)


def test_subset_equals_full_mesh_at_every_level(runs):
    subset, full = runs
    for a, b in zip(subset.levels, full.levels):
        assert torch.allclose(a.state.pose6d, b.state.pose6d, atol=1e-5)
        assert torch.allclose(a.state.cam, b.state.cam, atol=1e-5)
        ids = a.mesh.vertex_ids
        full_v = b.mesh.vertices if ids is None else b.mesh.vertices[:, ids]
        assert torch.allclose(a.mesh.vertices, full_v, atol=1e-5), a.label
        assert torch.allclose(a.mesh.joints3d, b.mesh.joints3d, atol=1e-5)
        assert torch.allclose(a.mesh.joints2d, b.mesh.joints2d, atol=1e-4)
        if a.sampling_points is not None:
            assert torch.allclose(a.sampling_points, b.sampling_points, atol=1e-4)


def test_sampling_points_are_the_projected_previous_mesh(runs, model):
    out, _ = runs
    grid = model.points_grid[0].T
    assert torch.allclose(out.levels[1].sampling_points[0], (grid + 1) * 112)
    for i in (2, 3):
        prev = out.levels[i - 1]
        t = weak_perspective_to_translation(prev.state.cam)
        px = perspective_projection(prev.mesh.vertices, None, t, 5000.0, 112.0)
        assert torch.allclose(out.levels[i].sampling_points, px, atol=1e-3)
        assert out.levels[i].sampled_vertex_ids.tolist() == model.sampling_vertex_ids(i - 1).tolist()


def test_levels_are_trained_separately(model, images):
    """Each regressor starts from the detached previous estimate (PyMAF's deep supervision)."""
    model.train()
    try:
        out = model(images[:1])
        out.final.state.pose6d.sum().backward()
        grads = [r.fc1.weight.grad for r in model.regressor]
        assert grads[0] is None and grads[1] is None and grads[2].abs().sum() > 0
        assert model.deconv_layers[0].weight.grad.abs().sum() > 0
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


def test_non_selection_dmap_falls_back_to_full_mesh(model):
    """A general downsampling matrix (rows averaging vertices) is applied to full meshes."""
    D = torch.zeros(3, 6890)
    D[0, [0, 1]] = 0.5
    D[1, 10] = 1.0
    D[2, [5, 6, 7, 8]] = 0.25
    original = model.maf_extractor[1].Dmap.clone()
    try:
        model.maf_extractor[1].Dmap = D
        assert model.sampling_vertex_ids(1) is None
        verts = torch.randn(1, 6890, 3)
        mesh = MeshPrediction(verts, None, None, None, None, None, None)
        cam = torch.tensor([[0.9, 0.1, -0.2]])
        ids, pts = model._sample_from_mesh(mesh, cam, 1)
        t = weak_perspective_to_translation(cam)
        want = perspective_projection(torch.einsum("sv,bvc->bsc", D, verts), None, t, 5000.0, 0.0) / 112
        assert ids is None and torch.allclose(pts, want, atol=1e-5)
    finally:
        model.maf_extractor[1].Dmap = original


def test_project_layout_on_the_open_body():
    body = load_body("open")
    n = len(body.sampling_vertex_ids)
    model = PyMAF(body, layout="project", backbone="resnet18").eval()
    keys = model.state_dict().keys()
    assert not any(".smpl." in k or k.endswith("Dmap") for k in keys)
    assert model.regressor[0].fc1.in_features == 2205 + 157
    assert model.regressor[1].fc1.in_features == 5 * n + 157
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 224, 224))
    assert out.final.mesh.vertices.shape == (1, body.num_vertices, 3)
    assert out.levels[2].mesh.vertices.shape == (1, n, 3)


def test_official_layout_refuses_a_non_smpl_body():
    with pytest.raises(ValueError, match="layout='project'"):
        PyMAF(load_body("open"), layout="official")


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(1, 3, 224, 224, dtype=torch.uint8), "uint8"),
    (torch.zeros(3, 224, 224), "batch dimension"),
    (torch.zeros(1, 224, 224, 3), "channels last"),
    (torch.zeros(1, 3, 256, 192), r"\(B, 3, 224, 224\)"),
])
def test_input_validation(model, bad, match):
    with pytest.raises(ValueError, match=match):
        model(bad)

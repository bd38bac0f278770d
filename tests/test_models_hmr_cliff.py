"""HMR/SPIN and CLIFF regressors: IEF against a slow reference, cameras, input checks."""
import numpy as np
import pytest
import torch

from core.body import load_body
from core.geometry import (cliff_bbox_info, cliff_cam_to_full, perspective_projection, points_to_crop,
                           rot6d_to_rotmat, weak_perspective_to_translation)
from core.models import CLIFF, HMR, IEFRegressor, evaluate_state_full_frame
from core.models.trace_adapters import cliff_trace
from tests.helpers.trace_checks import body_at_step

# body: the open body (tests/conftest.py)


def _reference_ief(head, feat, n_iter):
    """SPIN's loop written out: concat [feat, pose, betas, cam] → fc1 → fc2 → residuals."""
    B = feat.shape[0]
    pose, betas, cam = (b.expand(B, -1) for b in (head.init_pose, head.init_shape, head.init_cam))
    out = []
    for _ in range(n_iter):
        x = torch.cat([feat, pose, betas, cam], 1)
        x = head.fc2(head.fc1(x))
        pose, betas, cam = pose + head.decpose(x), betas + head.decshape(x), cam + head.deccam(x)
        out.append((pose, betas, cam))
    return out


def test_ief_matches_reference_loop():
    torch.manual_seed(0)
    head = IEFRegressor(32).eval()
    for layer in (head.decpose, head.decshape, head.deccam):  # make the updates non-trivial
        torch.nn.init.normal_(layer.weight, std=0.05)
    feat = torch.randn(3, 32)
    states = head.iterate(feat, 4)
    for s, (pose, betas, cam) in zip(states, _reference_ief(head, feat, 4)):
        assert torch.allclose(s.pose6d, pose, atol=1e-6) and torch.allclose(s.betas, betas, atol=1e-6)
        assert torch.allclose(s.cam, cam, atol=1e-6)
        assert torch.allclose(s.rotmat, rot6d_to_rotmat(pose.reshape(3, 24, 6)), atol=1e-6)


def test_ief_dropout_only_in_training():
    head = IEFRegressor(8)
    feat = torch.randn(2, 8)
    head.eval()
    a, b = head.iterate(feat, 1)[0], head.iterate(feat, 1)[0]
    assert torch.equal(a.pose6d, b.pose6d)
    head.train()
    torch.manual_seed(0)
    c = head.iterate(feat, 1)[0]
    assert not torch.allclose(c.betas, a.betas)


def test_mean_params_come_from_the_body(body):
    head = IEFRegressor(8, mean_params=body)
    assert np.allclose(head.init_pose[0].numpy(), body.mean_params["pose"])
    assert np.allclose(head.init_cam[0].numpy(), body.mean_params["cam"])
    with pytest.raises(ValueError, match="144"):
        IEFRegressor(8, mean_params={"pose": np.zeros(72), "shape": np.zeros(10), "cam": np.zeros(3)})


def test_hmr_forward_and_meshes(body):
    torch.manual_seed(0)
    model = HMR(body, backbone="resnet18").eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        out = model(x, with_mesh=True)
        out5 = model(x, n_iter=5)
    assert len(out.iterations) == 3 and len(out5.iterations) == 5
    assert torch.allclose(out5.iterations[2].pose6d, out.final.pose6d, atol=1e-6)
    assert out.features.shape == (2, 512)
    mesh = out.meshes[-1]
    assert mesh.vertices.shape == (2, body.num_vertices, 3) and mesh.joints3d.shape == (2, 49, 3)
    t = weak_perspective_to_translation(out.final.cam, 5000.0, 224)
    px = perspective_projection(mesh.joints3d, None, t, 5000.0, 112.0)
    assert torch.allclose(mesh.joints2d, px, atol=1e-3)
    assert torch.allclose(mesh.joints2d_norm, (px - 112) / 112, atol=1e-5)
    assert torch.allclose(mesh.transl, t)


def test_hmr_without_body_gives_parameters_only():
    model = HMR(backbone="resnet18").eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 224, 224))
    assert out.final.rotmat.shape == (1, 24, 3, 3)
    with pytest.raises(ValueError, match="needs a body"):
        model(torch.zeros(1, 3, 224, 224), with_mesh=True)


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(1, 3, 224, 224, dtype=torch.uint8), "uint8 pixels must be normalised"),
    (torch.zeros(3, 224, 224), "add the batch dimension"),
    (torch.zeros(1, 224, 224, 3), "permute"),
    (torch.zeros(1, 3, 256, 256), r"\(B, 3, 224, 224\): RGB crops, ImageNet-normalised"),
    (np.zeros((1, 3, 224, 224), np.float32), "got ndarray"),
])
def test_hmr_input_validation(bad, match):
    model = HMR(backbone="resnet18")
    with pytest.raises((ValueError, TypeError), match=match):
        model(bad)


def test_body_moves_with_the_model_without_touching_the_shared_body(body):
    model = HMR(body, backbone="resnet18")
    model.double()
    assert model.body.v_template.dtype == torch.float64
    assert body.v_template.dtype == torch.float32 and load_body("open").v_template.dtype == torch.float32
    assert "v_template" not in " ".join(model.state_dict())


# ----------------------------------------------------------------- CLIFF
def test_cliff_feeds_bbox_info_after_the_image_feature(body):
    torch.manual_seed(0)
    model = CLIFF(body, backbone="resnet50").eval()
    x, bbox = torch.randn(2, 3, 256, 192), torch.randn(2, 3)
    with torch.no_grad():
        out = model(x, bbox)
        ref = _reference_ief(model, torch.cat([out.features, bbox], 1), 3)
    assert model.fc1.in_features == 2048 + 3 + 157
    for s, (pose, betas, cam) in zip(out.iterations, ref):
        assert torch.allclose(s.pose6d, pose, atol=1e-5) and torch.allclose(s.cam, cam, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(B, 3, 256, 192\)"):
        model(torch.zeros(1, 3, 224, 224), bbox[:1])
    with pytest.raises(ValueError, match="bbox_info"):
        model(x, bbox[:, :2])


def test_cliff_full_frame_camera(body):
    torch.manual_seed(0)
    model = CLIFF(body, backbone="resnet50").eval()
    state = model.initial_state(2)
    center = torch.tensor([[600.0, 300.0], [200.0, 500.0]])
    scale, size = torch.tensor([2.0, 1.2]), torch.tensor([[720.0, 1280.0], [720.0, 1280.0]])
    focal = torch.tensor([1468.6, 1000.0])
    with torch.no_grad():
        mesh = evaluate_state_full_frame(body, state, center, scale, size, focal, (256, 192))
    t = cliff_cam_to_full(state.cam, center, scale, size, focal)
    assert torch.allclose(mesh.transl, t)
    full = perspective_projection(mesh.joints3d, None, t, focal, torch.tensor([640.0, 360.0]))
    for b in range(2):
        want = points_to_crop(full[b].numpy().astype(np.float64), center[b].numpy(), float(scale[b]), (256, 192))
        np.testing.assert_allclose(mesh.joints2d[b].numpy(), want, atol=2e-3)
    half = torch.tensor([96.0, 128.0])
    assert torch.allclose(mesh.joints2d_norm, (mesh.joints2d - half) / half)


def test_cliff_trace_camera_reprojects_the_joints(body):
    """The trace's crop camera (focal, center in crop px) reproduces the crop joints."""
    torch.manual_seed(0)
    model = CLIFF(body, backbone="resnet50").eval()
    crop = np.random.default_rng(0).integers(0, 255, (256, 192, 3), dtype=np.uint8)
    trace = cliff_trace(model, crop, bbox_center=(700.0, 300.0), bbox_scale=1.5, img_size=(720, 1280))
    assert trace.step_labels == ["mean", "IEF 1", "IEF 2", "IEF 3"]
    f, c = float(trace.camera["focal"]), trace.camera["center"]
    for step in trace.steps:
        j = body_at_step(body, step).joints[0].numpy()
        np.testing.assert_allclose(j[:, :2] / j[:, 2:] * f + c, step.joints2d, rtol=1e-4, atol=1e-2)
    info = cliff_bbox_info(torch.tensor([[700.0, 300.0]]), torch.tensor([1.5]),
                           torch.tensor([[720.0, 1280.0]]), torch.tensor([float(np.hypot(720, 1280))]))
    assert info.shape == (1, 3)  # the same bbox info the trace fed the model


def test_hrnet_branches_and_cls_head_shapes():
    from core.models.backbones import HRNet

    net = HRNet(width=8, head="cls").eval()  # narrow: the structure is what is tested
    with torch.no_grad():
        branches = net.forward_branches(torch.zeros(1, 3, 64, 96))
        feat = net.forward_features(torch.zeros(1, 3, 64, 96))
    assert [tuple(b.shape) for b in branches] == [(1, 8, 16, 24), (1, 16, 8, 12), (1, 32, 4, 6), (1, 64, 2, 3)]
    assert tuple(feat.shape) == (1, 2048, 2, 3)
    pose = HRNet(width=8, multi_scale_output=False)
    assert len(pose.stage4[-1].fuse_layers) == 1 and len(pose.stage4[0].fuse_layers) == 4
    assert [len(s) for s in (pose.stage2, pose.stage3, pose.stage4)] == [1, 4, 3]
    assert "final_layer.0.weight" not in pose.state_dict() and pose.out_channels == 8


@pytest.mark.slow
def test_cliff_hrnet_forward_shapes(body):
    model = CLIFF(body, backbone="hrnet_w48").eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 256, 192), torch.zeros(1, 3))
    assert out.features.shape == (1, 2048) and len(out.iterations) == 3

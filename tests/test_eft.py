"""core.fitting.eft: EFT on a small regressor — the 2D loss falls, the caller's model and
the BatchNorm statistics are untouched, each sample starts from the same weights, the
stopping rule, the loss terms, bad input, the registry."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from core.body import load_body
from core.fitting import losses as L
from core.fitting.eft import EFTConfig, eft_loss, eft_targets, run_eft
from core.fitting.rom import sample_poses
from core.fitting.tto import bn_running_stats, set_exemplar_mode
from core.models.hmr import HMROutput
from core.models.ief import IEFRegressor


class TinyRegressor(IEFRegressor):
    """An HMR-like regressor small enough for unit tests: two strided conv + BatchNorm
    layers, global pooling, the IEF head (with its dropout), 3 iterations."""

    def __init__(self, body, hidden: int = 64):
        super().__init__(16, mean_params=body, hidden=hidden)
        self.conv1 = nn.Conv2d(3, 8, 5, stride=4)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2)
        self.bn2 = nn.BatchNorm2d(16)
        object.__setattr__(self, "body", body)
        self.n_iter = 3
        self.weights_trained = False

    def forward(self, images, n_iter=None):
        x = torch.relu(self.bn1(self.conv1(images)))
        x = torch.relu(self.bn2(self.conv2(x)))
        f = x.mean(dim=(2, 3))
        return HMROutput(self.iterate(f, n_iter or self.n_iter), f)


def make_tiny(body, seed: int = 0) -> TinyRegressor:
    torch.manual_seed(seed)
    m = TinyRegressor(body)
    m.train()
    with torch.no_grad():                      # non-trivial BatchNorm statistics
        m(torch.randn(8, 3, 224, 224))
    m.eval()
    return m


def make_data(body, B: int = 2, seed: int = 1):
    rng = np.random.default_rng(seed)
    crops = (rng.random((B, 224, 224, 3)) * 255).astype(np.uint8)
    pose = torch.tensor(sample_poses(5, seed=seed)[:B], dtype=torch.float32)
    with torch.no_grad():
        out = body(betas=torch.zeros(B, 10), body_pose=pose, global_orient=torch.tensor([[np.pi, 0, 0]] * B))
    j2d = L.project_crop(out.joints, torch.tensor([[0.0, 0.0, 45.0]] * B), 5000.0, 224)
    return crops, torch.cat([j2d, torch.ones(B, 49, 1)], -1)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def body():
    return load_body("open")


FAST = EFTConfig(lr=1e-3, max_iters=6)     # a random tiny net needs a larger step to move


def test_eft_loss_falls_and_the_model_is_untouched(body):
    model = make_tiny(body)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    crops, kp = make_data(body)
    res = run_eft(model, crops, kp, FAST, return_adapted=True)
    for b, trace in enumerate(res.traces):
        curve = [s.losses["keypoints_2d"] for s in trace.steps]
        assert len(curve) == FAST.max_iters + 1 and curve[-1] < 0.7 * curve[0], curve
        assert trace.step_labels[0] == "EFT 0 (network)" and trace.step_labels[-1] == "EFT 6/6"
        assert trace.meta["weights_trained"] is False and "untrained" in trace.meta["warning"]
        assert trace.final.vertices.shape == (body.num_vertices, 3)
    assert (res.loss_2d_final < res.loss_2d_init).all() and res.iterations.tolist() == [6, 6]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    # BatchNorm: statistics and affine frozen; the rest was fine-tuned
    stats = bn_running_stats(model)
    for sd in res.adapted_state_dicts:
        for k, v in stats.items():
            assert torch.equal(sd[k], v), k
        assert torch.equal(sd["bn1.weight"], before["bn1.weight"])
        assert not torch.equal(sd["conv1.weight"], before["conv1.weight"])
        assert not torch.equal(sd["fc1.weight"], before["fc1.weight"])


def test_each_sample_starts_from_the_same_weights(body):
    model = make_tiny(body)
    crops, kp = make_data(body, B=2)
    pair = run_eft(model, crops, kp, FAST, record=False)
    alone = run_eft(model, crops[1:], kp[1:], FAST, record=False)
    torch.testing.assert_close(pair.rotmats[1:], alone.rotmats)
    torch.testing.assert_close(pair.loss_2d_final[1:], alone.loss_2d_final)


def test_exemplar_mode_disables_dropout_and_freezes_bn(body):
    model = make_tiny(body)
    set_exemplar_mode(model)
    assert model.training and not model.bn1.training and not model.drop1.training
    assert not model.bn1.weight.requires_grad and model.conv1.weight.requires_grad
    x = torch.randn(1, 3, 224, 224)
    a, b = model(x).final.pose6d, model(x).final.pose6d
    assert torch.equal(a, b)                 # dropout off: deterministic


def test_threshold_stops_before_any_step(body):
    model = make_tiny(body)
    crops, kp = make_data(body, B=1)
    res = run_eft(model, crops, kp, EFTConfig(threshold=10.0))
    assert res.iterations.tolist() == [0] and res.stop_reason == ["threshold"]
    assert len(res.traces[0]) == 1


def test_eft_targets_and_loss_terms():
    kp = torch.rand(1, 49, 3)
    t2d, tleg = eft_targets(kp)
    assert (t2d[0, [27, 28, 39, 25, 30], 2] == 0).all() and torch.equal(tleg, kp)
    t2d_hip, _ = eft_targets(kp, with_hip=True)
    assert (t2d_hip[0, [27, 28, 39], 2] == kp[0, [27, 28, 39], 2]).all()
    # leg orientation: 0 for the same direction, 2 per leg for the opposite one
    target = torch.zeros(1, 49, 3)
    target[0, 26, :2] = torch.tensor([0.0, 0.0])
    target[0, 25, :2] = torch.tensor([0.0, 0.5])
    target[0, 29, :2] = torch.tensor([0.2, 0.0])
    target[0, 30, :2] = torch.tensor([0.2, 0.4])
    target[0, [25, 26, 29, 30], 2] = 1.0
    same = target[..., :2].clone()
    same[0, [25, 30]] = target[0, [25, 30], :2] * torch.tensor([1.0, 2.0])
    assert float(L.leg_orientation_loss(same, target)) == pytest.approx(0.0, abs=1e-6)
    flipped = target[..., :2].clone()
    flipped[0, 25, 1], flipped[0, 30, 1] = -0.5, -0.4
    assert float(L.leg_orientation_loss(flipped, target)) == pytest.approx(4.0, abs=1e-5)
    short = target.clone()
    short[0, 25, :2] = short[0, 26, :2] + 0.001          # bone below ~1 px: ignored
    assert float(L.leg_orientation_loss(flipped, short)) == pytest.approx(2.0, abs=1e-5)

    class S:
        betas = torch.ones(1, 10)
        cam = torch.tensor([[0.5, 0.0, 0.0]])
    pred = torch.zeros(1, 49, 2)
    terms = eft_loss(S, pred, t2d, tleg, EFTConfig())
    expect = 60 * (5 * terms["keypoints_2d"] + 0.001 * 1.0 + np.exp(-5.0) ** 2 + 0.005 * terms["leg_orientation"])
    torch.testing.assert_close(terms["total"], expect)


def test_eft_projection_option(body):
    from core.fitting.tto import weak_projection_norm

    pts = torch.randn(2, 5, 3)
    cam = torch.tensor([[0.8, 0.1, -0.2], [1.1, 0.0, 0.3]])
    ref = torch.stack([cam[:, :1] * pts[..., 0] + cam[:, 1:2], cam[:, :1] * pts[..., 1] + cam[:, 2:3]], -1)
    torch.testing.assert_close(weak_projection_norm(pts, cam), ref)
    model = make_tiny(body)
    crops, kp = make_data(body, B=1)
    res = run_eft(model, crops, kp, EFTConfig(lr=1e-3, max_iters=4, projection="eft"))
    assert res.loss_2d_final[0] < res.loss_2d_init[0] and res.traces[0].meta["projection"] == "eft"
    with pytest.raises(ValueError, match="projection"):
        run_eft(model, crops, kp, EFTConfig(projection="orthographic"))


@pytest.mark.parametrize("case", ["all_zero", "nan", "openpose_only"])
def test_bad_keypoints_return_the_network_prediction(body, case):
    model = make_tiny(body)
    crops, kp = make_data(body, B=1)
    kp = kp.clone()
    if case == "all_zero":
        kp[..., 2] = 0
    elif case == "nan":
        kp[0, :30, :2] = float("nan")
    else:
        kp[0, 25:, 2] = 0                  # EFT weighs only the 24 GT joints
    res = run_eft(model, crops, kp, FAST)
    assert torch.isfinite(res.vertices).all()
    t = res.traces[0]
    if case == "nan":
        assert res.iterations[0] > 0 and "NaN" in t.meta["input_warning"]
    else:
        assert res.stop_reason == ["not_fitted"] and len(t) == 1
        with torch.no_grad():
            from core.fitting.tto import as_network_input
            st = model(as_network_input(crops, model)).final
        torch.testing.assert_close(res.rotmats, st.rotmat)


def test_registered_eft_method(body):
    from core.methods import MethodInputs, create_method, method_info

    assert method_info("eft").family == "optimisation"
    crops, kp = make_data(body, B=1)
    image = np.full((260, 260, 3), 120, np.uint8)
    inputs = MethodInputs.from_image(image, np.array([130.0, 130.0]), 1.3)
    inputs.keypoints = kp[0].numpy().astype(np.float64)
    trace = create_method("eft", model=make_tiny(body), lr=1e-3, max_iters=2).run(inputs)
    assert trace.method == "eft" and len(trace) == 3 and trace.crop.shape == (224, 224, 3)
    assert "bbox_center" in trace.camera and trace.meta["weights_trained"] is False


@pytest.mark.slow
def test_eft_on_a_resnet18_hmr(body):
    from core.models import create_model

    model = create_model("hmr_resnet18", body=body)
    model.eval()
    crops, kp = make_data(body, B=1)
    res = run_eft(model, crops, kp, EFTConfig(lr=1e-5, max_iters=3), record=False)
    assert res.loss_2d_final[0] < res.loss_2d_init[0]

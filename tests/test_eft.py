"""core.fitting.eft: EFT on a small regressor — the 2D loss falls, the caller's model and
the BatchNorm statistics are untouched, each sample starts from the same weights, the
stopping rule, the loss terms, bad input, the registry."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.fitting import losses as L
from core.fitting.eft import EFTConfig, eft_loss, eft_targets, run_eft
from core.fitting.tto import bn_running_stats, set_exemplar_mode
from tests.helpers.synthetic import make_data, make_method_inputs, make_tiny

pytestmark = pytest.mark.usefixtures("one_thread")    # body: the open body (tests/conftest.py)

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
    from core.methods import create_method, method_info

    assert method_info("eft").family == "optimisation"
    trace = create_method("eft", model=make_tiny(body), lr=1e-3, max_iters=2).run(make_method_inputs(body))
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

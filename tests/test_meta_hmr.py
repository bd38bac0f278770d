"""core.fitting.meta_hmr: Meta-HMR's test-time optimisation on a small regressor — the 2D
loss falls, step 0 adapts only the head, BatchNorm statistics stay, the stopping rule,
per-sample vs per-batch, the pseudo-SMPL terms, bad input, the registry."""
from __future__ import annotations

import pytest
import torch

from core.fitting.meta_hmr import MetaHMRConfig, meta_test_loss, run_meta_hmr
from core.fitting.tto import HEAD_PREFIXES, as_network_input, bn_running_stats, evaluate_regressor_state
from tests.helpers.synthetic import make_data, make_method_inputs, make_tiny

pytestmark = pytest.mark.usefixtures("one_thread")    # body: the open body (tests/conftest.py)

FAST = dict(inner_lr=1e-3, after_innerlr=1e-3)       # random tiny nets need larger steps


def test_tto_loss_falls_and_models_are_untouched(body):
    model, aux = make_tiny(body, 0), make_tiny(body, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    aux_before = {k: v.clone() for k, v in aux.state_dict().items()}
    crops, kp = make_data(body)
    res = run_meta_hmr(model, crops, kp, aux_model=aux, config=MetaHMRConfig(test_val_step=8, **FAST),
                       return_adapted=True)
    assert (res.loss_2d_final < 0.7 * res.loss_2d_init).all()
    for t in res.traces:
        curve = [s.losses["keypoints_2d"] for s in t.steps]
        assert curve[-1] < curve[0]
        assert t.step_labels[0] == "TTO 0 (network)" and t.step_labels[-1] == f"TTO {len(t) - 1}"
        s0 = t.steps[0]
        assert {"pseudo_vertices", "pseudo_joints_3d", "pseudo_pose", "pseudo_betas"} <= set(s0.losses)
        assert s0.maps["aux_vertices"].shape == (body.num_vertices, 3) and s0.maps["aux_joints2d"].shape == (49, 2)
        assert t.meta["weights_trained"] is False and t.meta["per_sample"] is True
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    for k, v in aux.state_dict().items():
        assert torch.equal(v, aux_before[k]), k
    stats = bn_running_stats(model)
    for sd in res.adapted_state_dicts:
        for k, v in stats.items():
            assert torch.equal(sd[k], v), k                   # eval mode: statistics untouched
        assert not torch.equal(sd["bn1.weight"], before["bn1.weight"])   # ... but the affine is trained
        assert not torch.equal(sd["conv1.weight"], before["conv1.weight"])


def test_step_zero_is_one_sgd_step_on_the_head(body):
    model, aux = make_tiny(body, 0), make_tiny(body, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    crops, kp = make_data(body, B=1)
    cfg = MetaHMRConfig(test_val_step=0, **FAST)
    res = run_meta_hmr(model, crops, kp, aux_model=aux, config=cfg, return_adapted=True)
    assert res.updates.tolist() == [1]
    sd = res.adapted_state_dicts[0]
    changed = {k for k in before if not torch.equal(sd[k], before[k])}
    assert changed and all(k.startswith(HEAD_PREFIXES) for k in changed)
    # the update is w − lr·∇L_test-u (plain SGD): check one head weight against autograd
    images = as_network_input(crops, model)
    with torch.no_grad():
        a = aux(images).final
        a_ev = evaluate_regressor_state(body, a, full_mesh=True)
    m = make_tiny(body, 0)
    m.eval()
    st = m(images).final
    ev = evaluate_regressor_state(body, st, full_mesh=True)
    from core.fitting.losses import normalize_keypoints
    terms = meta_test_loss(st, ev.vertices, ev.joints3d, ev.joints2d_norm, normalize_keypoints(kp), a,
                           a_ev.vertices, a_ev.joints3d, cfg)
    (g,) = torch.autograd.grad(terms["total"].mean(), [m.decpose.weight])
    torch.testing.assert_close(sd["decpose.weight"], before["decpose.weight"] - cfg.inner_lr * g)


def test_step_counts_and_early_stop(body):
    model = make_tiny(body)
    crops, kp = make_data(body, B=1)
    full = run_meta_hmr(model, crops, kp, config=MetaHMRConfig(adapt_val_step=False, test_val_step=4, **FAST),
                        record=False)
    assert full.updates.tolist() == [5] and full.stop_reason == ["max_steps"]
    early = run_meta_hmr(model, crops, kp, config=MetaHMRConfig(stop_threshold=1e9, **FAST))
    # the first comparison (step 1 against step 0's full loss) already passes a huge threshold
    assert early.updates.tolist() == [2] and early.stop_reason == ["converged"]
    assert len(early.traces[0]) == 3


def test_per_sample_vs_per_batch(body):
    model = make_tiny(body)
    crops, kp = make_data(body, B=2)
    cfg = dict(test_val_step=3, adapt_val_step=False, **FAST)
    aux = make_tiny(body, 1)
    # per sample: every sample starts from the same weights and a fresh optimiser, so the
    # same sample twice gives the same result whatever came before it. (A distinct
    # auxiliary network: against an exact copy the L1 vertex term's gradient is the sign of
    # rounding noise.)
    twice = run_meta_hmr(model, crops[[1, 1]], kp[[1, 1]], aux_model=aux, config=MetaHMRConfig(**cfg), record=False)
    torch.testing.assert_close(twice.rotmats[0], twice.rotmats[1])
    per_sample = run_meta_hmr(model, crops, kp, aux_model=aux, config=MetaHMRConfig(**cfg), record=False)
    batch = run_meta_hmr(model, crops, kp, aux_model=aux, config=MetaHMRConfig(per_sample=False, **cfg))
    assert (batch.rotmats - per_sample.rotmats).abs().max() > 1e-2
    assert batch.traces[1].meta["per_sample"] is False


def test_pseudo_terms_vanish_against_oneself(body):
    model = make_tiny(body)
    crops, kp = make_data(body, B=1)
    res = run_meta_hmr(model, crops, kp, config=MetaHMRConfig(test_val_step=1, **FAST))   # aux = copy of main
    s0 = res.traces[0].steps[0].losses
    assert s0["pseudo_vertices"] < 1e-6 and s0["pseudo_pose"] < 1e-10
    other = run_meta_hmr(model, crops, kp, aux_model=make_tiny(body, 5), config=MetaHMRConfig(test_val_step=1, **FAST))
    assert other.traces[0].steps[0].losses["pseudo_vertices"] > 1e-4
    off = run_meta_hmr(model, crops, kp, aux_model=make_tiny(body, 5),
                       config=MetaHMRConfig(test_val_step=1, use_pseudo=False, **FAST))
    assert "pseudo_vertices" not in off.traces[0].steps[0].losses


@pytest.mark.parametrize("per_sample", [True, False])
def test_samples_without_keypoints_keep_the_network_prediction(body, per_sample):
    model = make_tiny(body)
    crops, kp = make_data(body, B=2)
    kp = kp.clone()
    kp[1, :, 2] = 0
    res = run_meta_hmr(model, crops, kp, config=MetaHMRConfig(per_sample=per_sample, test_val_step=3, **FAST))
    assert res.stop_reason[1] == "not_fitted" and torch.isfinite(res.vertices).all()
    with torch.no_grad():
        st = model(as_network_input(crops, model)).final
    torch.testing.assert_close(res.rotmats[1], st.rotmat[1])
    assert "too few" in res.traces[1].meta["input_warning"]
    assert not torch.allclose(res.rotmats[0], st.rotmat[0])


def test_registered_meta_hmr_method(body):
    from core.methods import create_method, method_info

    assert method_info("meta-hmr").family == "optimisation"
    method = create_method("meta-hmr", model=make_tiny(body), aux_model=make_tiny(body, 3), test_val_step=2, **FAST)
    trace = method.run(make_method_inputs(body))
    assert trace.method == "meta-hmr" and trace.step_labels[0] == "TTO 0 (network)"
    assert trace.meta["aux_weights_trained"] is False and "aux_vertices" in trace.steps[0].maps

"""Meta-HMR's inner step: the functional head, per-sample gradients against a per-sample
loop, per-sample vs per-batch agreement, and where first/second-order gradients flow."""
import pytest
import torch

torch.set_num_threads(1)
pytest.importorskip("pytorch_lightning")

from training.config import load_config  # noqa: E402
from training.meta_hmr import INNER_WEIGHTS, MetaHMRModule, hmr_features, ief_functional, inner_terms  # noqa: E402
from training.losses import reduce_terms  # noqa: E402


def make_module(**options):
    sets = ["model.name=hmr_resnet18", "img_res=64", "method_options.main_iters=2"]
    sets += [f"method_options.{k}={v}" for k, v in options.items()]
    return MetaHMRModule(load_config("meta-hmr", None, sets, "synthetic:unused"))


def make_batch(B, seed=0):
    g = torch.Generator().manual_seed(seed)
    kp = torch.cat([torch.rand(B, 49, 2, generator=g) * 1.6 - 0.8, torch.ones(B, 49, 1)], -1)
    return {"img": torch.randn(B, 3, 64, 64, generator=g), "keypoints": kp,
            "has_smpl": torch.ones(B), "has_pose_3d": torch.ones(B)}


@pytest.fixture(scope="module")
def module():
    m = make_module()
    m.eval()
    return m


def test_functional_head_matches_the_module(module):
    feats = torch.randn(3, module.model.feat_dim)
    from core.fitting.tto import head_parameters

    head = head_parameters(module.model)
    init = module.model.initial_state(3)
    ref = module.model.iterate(feats, 2, init)[-1]
    shared = ief_functional(feats, init, dict(head), 2)[-1]
    per = ief_functional(feats, init, {k: v.unsqueeze(0).expand(3, *v.shape) for k, v in head.items()}, 2)[-1]
    torch.testing.assert_close(shared.pose6d, ref.pose6d)
    torch.testing.assert_close(per.pose6d, ref.pose6d, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(per.cam, ref.cam, rtol=1e-5, atol=1e-6)


def _aux(module, batch):
    with torch.no_grad():
        st = module.aux(batch["img"]).final
        return st, module._mesh(st, module.aux.body)


def test_per_sample_gradients_match_a_loop(module):
    """One backward through per-sample weight copies = each sample's own gradient."""
    B = 3
    batch = make_batch(B)
    aux_state, aux_mesh = _aux(module, batch)
    feats = hmr_features(module.model, batch["img"]).detach()
    adapted, _ = module.inner_adapt(feats, batch, aux_state, aux_mesh)
    lr = module.options["inner_lr"]
    from core.fitting.tto import head_parameters

    head = head_parameters(module.model)
    for j in range(B):
        one = {k: v[j:j + 1] if torch.is_tensor(v) and v.shape[:1] == (B,) else v for k, v in batch.items()}
        st = module.run_head(feats[j:j + 1], None, per_sample=False)
        aux_j = (type(aux_state)(aux_state.pose6d[j:j + 1], aux_state.betas[j:j + 1], aux_state.cam[j:j + 1],
                                 aux_state.rotmat[j:j + 1]), None)
        aux_mesh_j = module._mesh(aux_j[0], module.aux.body)
        terms = inner_terms(st, module._mesh(st), aux_j[0], aux_mesh_j, one["keypoints"], one["has_smpl"] > 0.5,
                            one["has_pose_3d"] > 0.5)
        loss, _ = reduce_terms(terms, INNER_WEIGHTS)
        grads = torch.autograd.grad(loss, [head[k] for k in module.head_names])
        for k, gk in zip(module.head_names, grads):
            torch.testing.assert_close(adapted[k][j], head[k] - lr * gk, rtol=1e-4, atol=1e-9)


def test_per_sample_equals_per_batch_for_one_sample():
    batch = make_batch(1, seed=3)
    results = []
    for inner in ("per_sample", "per_batch"):
        torch.manual_seed(0)
        m = make_module(inner=inner, inner_lr=1e-2)
        m.eval()
        aux_state, aux_mesh = _aux(m, batch)
        feats = hmr_features(m.model, batch["img"])
        adapted, inner_loss = m.inner_adapt(feats, batch, aux_state, aux_mesh)
        st = m.run_head(feats, adapted, inner == "per_sample")
        results.append((st.pose6d.detach(), float(inner_loss)))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-5, atol=1e-6)
    assert results[0][1] == pytest.approx(results[1][1], rel=1e-6)
    # the adapted head differs from the unadapted one (the step did something)
    assert not torch.allclose(results[1][0], m.run_head(feats, None, False).pose6d.detach())


@pytest.fixture(scope="module")
def aux_file(tmp_path_factory):
    """A project checkpoint of the (tiny) auxiliary regressor."""
    from core.models import create_model, save_checkpoint

    torch.manual_seed(1)
    model = create_model("hmr_resnet18", body="open", n_iter=3)
    return save_checkpoint(model, tmp_path_factory.mktemp("aux") / "aux.safetensors", trained=True)


@pytest.mark.parametrize("first_order", [True, False])
def test_gradient_flow_first_vs_second_order(first_order, aux_file):
    torch.manual_seed(0)
    m = make_module(first_order=first_order, inner="per_batch", inner_lr=1e-2, aux_checkpoint=aux_file,
                    aux_supervised="false")
    batch = {**make_batch(2, seed=5), "pose": torch.zeros(2, 72), "betas": torch.zeros(2, 10),
             "pose_3d": torch.cat([torch.randn(2, 24, 3), torch.ones(2, 24, 1)], -1)}
    batch["pose"][:, 0] = 3.14159
    loss, logs, _ = m.compute(batch)
    loss.backward()
    aux_grad = sum(float(p.grad.abs().sum()) for p in m.aux.parameters() if p.grad is not None)
    main_grad = sum(float(p.grad.abs().sum()) for p in m.model.parameters() if p.grad is not None)
    assert main_grad > 0
    assert (aux_grad > 0) == (not first_order)      # only a second-order inner step reaches the aux net
    # a loaded aux network that gets no gradient is frozen and not optimised (DDP needs that)
    optimised = {id(p) for g in m.configure_optimizers().param_groups for p in g["params"]}
    aux_params = list(m.aux.parameters())
    assert all(p.requires_grad != first_order for p in aux_params)
    assert all((id(p) in optimised) == (not first_order) for p in aux_params)


def test_aux_network_is_trained_when_not_loaded():
    """Without aux_checkpoint the auxiliary network is supervised on the GT (at the main lr):
    a random one would give noise as pseudo-SMPL."""
    m = make_module()
    assert m.options["aux_supervised"] is True and m.aux_trainable
    groups = m.configure_optimizers().param_groups
    assert len(groups) == 2 and groups[1]["lr"] == groups[0]["lr"]
    batch = {**make_batch(2, seed=5), "pose": torch.zeros(2, 72), "betas": torch.zeros(2, 10),
             "pose_3d": torch.cat([torch.randn(2, 24, 3), torch.ones(2, 24, 1)], -1)}
    loss, logs, _ = m.compute(batch)
    assert any(k.startswith("aux/") for k in logs)
    loss.backward()
    assert sum(float(p.grad.abs().sum()) for p in m.aux.parameters() if p.grad is not None) > 0
    with pytest.raises(ValueError, match="aux_checkpoint"):
        make_module(aux_supervised="false")

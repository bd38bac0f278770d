"""Fast paths of the test-time loops against their references (issue 17)."""
import numpy as np
import torch

from core.body import load_body
from core.utils.fastpaths import fast_adam, reference_active, reference_paths


def test_fast_adam_is_fused_and_the_reference_switch_restores_plain_adam():
    p = [torch.zeros(3, requires_grad=True)]
    assert fast_adam(p, lr=1e-2).defaults["fused"] is True
    with reference_paths():
        assert reference_active()
        assert not fast_adam(p, lr=1e-2).defaults["fused"]
    assert not reference_active()


def test_fused_adam_takes_the_same_steps_as_plain_adam():
    g = torch.Generator().manual_seed(0)
    start = torch.randn(50, generator=g)
    target = torch.randn(50, generator=g)
    results = []
    for reference in (False, True):
        x = start.clone().requires_grad_(True)
        if reference:
            with reference_paths():
                opt = fast_adam([x], lr=1e-2)
        else:
            opt = fast_adam([x], lr=1e-2)
        for _ in range(30):
            opt.zero_grad()
            ((x - target) ** 2).sum().backward()
            opt.step()
        results.append(x.detach())
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=1e-6)


def test_eft_fast_and_reference_paths_agree():
    from core.fitting.eft import EFTConfig, run_eft
    from core.models import create_model

    torch.manual_seed(0)
    model = create_model("hmr_resnet18", body=load_body("open"))
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, (1, 224, 224, 3), dtype=np.uint8)
    kp = np.concatenate([rng.uniform(40, 180, (1, 49, 2)), np.ones((1, 49, 1))], -1).astype(np.float32)
    cfg = EFTConfig(max_iters=3, threshold=0.0, lr=1e-5)
    fast = run_eft(model, crops, kp, cfg, record=False)
    with reference_paths():
        ref = run_eft(model, crops, kp, cfg, record=False)
    assert int(fast.iterations[0]) == int(ref.iterations[0]) == 3
    assert float((fast.vertices - ref.vertices).abs().max()) < 1e-3          # metres
    assert abs(float(fast.loss_2d_final[0]) - float(ref.loss_2d_final[0])) <= 1e-4 * float(ref.loss_2d_final[0]) + 1e-7


def test_the_reference_switch_also_selects_the_first_gmm(monkeypatch):
    from core.fitting.priors import load_pose_prior

    gmm = load_pose_prior("open").gmm
    x = torch.randn(3, 69, generator=torch.Generator().manual_seed(0)) * 0.3
    calls = []
    first = gmm.reference
    monkeypatch.setattr(gmm, "reference", lambda p: calls.append(1) or first(p))
    fast = gmm(x)
    assert calls == []
    with reference_paths():
        ref = gmm(x)
    assert calls == [1]
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-4)

"""The inference path (issue 17): BatchNorm folded, channels-last — every model's outputs
equal the unfolded model's; methods use it, training and test-time optimisation do not;
PyMAF without maps skips its IUV head and keeps its meshes."""
import copy
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from core.body import load_body
from core.geometry import cliff_bbox_info
from core.models import create_model
from core.models.inference import fold_batchnorm, prepare_for_inference


@pytest.fixture(scope="module")
def body():
    return load_body("open")


def _tensors(out, prefix="out"):
    """Every tensor in a (nested) dataclass / list / dict output, by path."""
    if torch.is_tensor(out):
        return {prefix: out}
    found = {}
    if dataclasses.is_dataclass(out):
        items = [(f.name, getattr(out, f.name)) for f in dataclasses.fields(out)]
    elif isinstance(out, dict):
        items = list(out.items())
    elif isinstance(out, (list, tuple)):
        items = list(enumerate(out))
    else:
        return found
    for k, v in items:
        found.update(_tensors(v, f"{prefix}.{k}"))
    return found


def _randomise_batchnorm(model: nn.Module, seed: int = 0) -> None:
    """Running statistics and affine weights far from identity, so folding is not a no-op."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(0.2 * torch.randn(n, generator=g))
            m.running_var.copy_(0.5 + torch.rand(n, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(n, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(n, generator=g))


def _args(model, B=2):
    h, w = model.input_size if hasattr(model, "input_size") else (224, 224)
    x = torch.randn(B, 3, h, w, generator=torch.Generator().manual_seed(1))
    if type(model).__name__ == "CLIFF":
        info = cliff_bbox_info(torch.full((B, 2), 300.0), torch.full((B,), 2.0),
                               torch.tensor([[600.0, 800.0]]).expand(B, 2), torch.full((B,), 1000.0))
        return (x, info)
    return (x,)


FAST = ["hmr", "hmr_resnet18", "hmr_mobilenet_v2", "pymaf", "cliff_res50", "meshpose_s", "meshpose_xs"]
SLOW = ["cliff_hrnet48", "meshpose", "hmr_blazepose", "pymaf_blazepose", "meshpose_blazepose", "cliff_blazepose"]


@pytest.mark.parametrize("name", FAST + [pytest.param(n, marks=pytest.mark.slow) for n in SLOW])
def test_folded_model_outputs_equal_the_unfolded_model(body, name):
    if "blazepose" in name:
        pytest.importorskip("mediapipe")
    cfg = {"layout": "project"} if name == "pymaf" else {}
    torch.manual_seed(0)
    model = create_model(name, body=body, **cfg).eval()
    _randomise_batchnorm(model)
    fast = copy.deepcopy(model)
    prep = prepare_for_inference(fast)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    left = sum(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert prep.batchnorm_folded == n_bn - left
    if name in ("hmr", "hmr_resnet18", "cliff_res50", "cliff_hrnet48", "pymaf"):
        assert n_bn > 0 and left == 0, f"{left} of {n_bn} BatchNorm layers not folded"
    assert not any(p.requires_grad for p in fast.parameters())
    args = _args(model)
    exact = copy.deepcopy(model).double()             # the unfolded model in float64: its own rounding floor
    if getattr(exact, "body", None) is not None:
        exact.body = copy.deepcopy(body).double()
    with torch.inference_mode():
        ref, out = _tensors(model(*args)), _tensors(fast(*args))
        truth = _tensors(exact(*(a.double() for a in args)))
    assert ref.keys() == out.keys() and len(ref) > 0
    worst = 0.0
    for k in ref:
        a, b = ref[k].double(), out[k].double()
        scale = max(1.0, float(a.abs().max()))
        floor = float((a - truth[k]).abs().max())      # how far float32 itself is from exact
        diff = float((a - b).abs().max())
        # within 1e-5, or (deep random nets amplify rounding) within 3× the unfolded model's own float32 error
        assert diff <= max(1e-5 * scale, 3 * floor), f"{name} {k}: {diff:.2e} (float32 floor {floor:.2e})"
        worst = max(worst, diff / scale)
    print(f"{name}: {prep.batchnorm_folded} folded, largest difference {worst:.1e}")
    assert prepare_for_inference(fast).batchnorm_folded == prep.batchnorm_folded   # idempotent


def test_folding_refuses_training_mode_and_training_models_stay_unfolded(body):
    model = create_model("hmr_resnet18", body=body)
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(model.train())
    assert not hasattr(model, "inference_prep")
    from core.fitting.tto import build_regressor

    reg = build_regressor(None, None, body, None, "hmr", method="eft")   # EFT/Meta-HMR fine-tune BN-ful models
    assert not hasattr(reg, "inference_prep")


def test_methods_run_the_inference_path(body):
    from core.methods import create_method

    m = create_method("hmr", backbone="resnet18")
    assert m.inference_prep.batchnorm_folded > 0
    assert not any(isinstance(x, nn.BatchNorm2d) for x in m.model.modules())


def test_pymaf_without_maps_skips_the_iuv_head_with_the_same_meshes(body):
    from core.models.trace_adapters import pymaf_trace

    model = create_model("pymaf", body=body, layout="project").eval()
    crop = np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8)
    calls = []
    model.dp_head.register_forward_hook(lambda *a: calls.append(1))
    full = pymaf_trace(model, crop)
    assert calls == [1] and "iuv" in full.steps[-1].maps
    lean = pymaf_trace(model, crop, with_maps=False)
    assert calls == [1], "the IUV head ran although no maps were asked for"
    assert "iuv" not in lean.steps[-1].maps and "feature_pca" not in lean.steps[-1].maps
    assert "IUV head" in lean.meta["skipped_outputs"] and "skipped_outputs" not in full.meta
    for a, b in zip(full.steps, lean.steps):
        np.testing.assert_array_equal(a.vertices, b.vertices)

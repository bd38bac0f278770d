"""The open weights under assets/weights: each loads, is within the size limit, has a model
card, runs on a photo, beats the mean pose on held-out synthetic people, and is what the
methods use when no checkpoint is given."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from core.models.shipped import METHOD_WEIGHTS, WEIGHTS_DIR, load_shipped, shipped_weights

pytestmark = pytest.mark.usefixtures("one_thread")

FILES = sorted(WEIGHTS_DIR.glob("*.safetensors"))
NEEDS_DETECT = importlib.util.find_spec("mediapipe") is None or importlib.util.find_spec("tflite") is None


def test_weights_are_shipped_with_cards():
    assert {p.stem for p in FILES} >= {"hmr_blazepose"}
    assert {p.stem for p in FILES} <= set(METHOD_WEIGHTS.values())
    for path in FILES:
        assert path.stat().st_size <= 25 * 1024 * 1024, f"{path.name} is over 25 MB"
        card = json.loads(path.with_suffix(".json").read_text())
        assert card["weights_trained"] is True and card["body"] == "open"
        info = card["config"]
        assert info["metrics"]["pa_mpjpe_mm"] < info["metrics"]["mean_pose_pa_mpjpe_mm"]
        for key in ("data", "command", "commit", "licence", "training"):
            assert info[key], f"{path.name}: model card lacks {key}"
        assert "Apache-2.0" in info["licence"]


@pytest.mark.skipif(NEEDS_DETECT, reason="the BlazePose backbone needs the detect extra")
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_shipped_model_beats_the_mean_pose(path, body):
    """On synthetic people of a seed no shipped model was trained on, the model's joints
    are closer to the truth (after Procrustes alignment) than the mean pose's."""
    from core.data.synthetic import SyntheticConfig, SyntheticGenerator
    from core.eval.metrics import pa_mpjpe
    from core.geometry import normalize_image
    from core.models import evaluate_state

    model = load_shipped(path.stem, body=body).eval()
    assert model.weights_trained and shipped_weights(path.stem) is not None
    data = SyntheticGenerator(body, SyntheticConfig()).generate(np.random.default_rng([424242, 0]), 24)
    images = torch.stack([normalize_image(im) for im in data["image"]])
    with torch.no_grad():
        out = model(images)
        state = out.final.state if hasattr(out, "levels") else out.iterations[-1]     # PyMAF / HMR
        mean = (out.levels[0].state if hasattr(out, "levels") else model.initial_state(len(images)))
        pred, base = (evaluate_state(body, s).joints3d[:, 25:39] for s in (state, mean))
    with torch.no_grad():
        gt = body(betas=torch.as_tensor(data["betas"]), body_pose=torch.as_tensor(data["pose"][:, 3:]),
                  global_orient=torch.as_tensor(data["pose"][:, :3])).joints[:, 25:39]
    err = float(pa_mpjpe(pred, gt).mean())
    err_mean = float(pa_mpjpe(base, gt).mean())
    assert err < 0.95 * err_mean, (err, err_mean)     # an untrained network is no better than the mean


@pytest.mark.skipif(NEEDS_DETECT, reason="the BlazePose backbone needs the detect extra")
def test_methods_use_the_shipped_weights_by_default():
    from skimage import data

    from core.methods import MethodInputs, create_method, default_weights

    image = data.astronaut()
    rng = np.random.default_rng(0)
    kp = np.concatenate([rng.uniform(150, 350, (49, 2)), np.ones((49, 1))], 1)
    inputs = MethodInputs.from_image(image, (256, 240), 2.0, keypoints_full=kp)
    trace = create_method("hmr").run(inputs)
    assert trace.meta["weights_trained"] is True and "warning" not in trace.meta
    assert trace.meta["weights"].startswith("trained on synthetic open-body data")
    assert trace.meta["model"] == METHOD_WEIGHTS["hmr"]
    assert np.isfinite(trace.final.vertices).all() and (trace.final.vertices[:, 2] > 0).all()
    assert default_weights("hmr") == trace.meta["weights"]
    trace = create_method("eft", max_iters=2).run(inputs)
    assert trace.meta["weights_trained"] is True and "trained on synthetic" in trace.meta["weights"]
    # SPIN at test time: SMPLify from the shipped regressor's prediction
    trace = create_method("spin", num_iters=5).run(inputs)
    assert trace.meta["weights_trained"] is True and "HMR regressor" in trace.meta["weights"]
    assert len(trace) >= 2 and np.isfinite(trace.final.vertices).all()
    # an explicit backbone without shipped weights stays untrained, and says so
    trace = create_method("hmr", backbone="resnet18").run(inputs)
    assert trace.meta["weights_trained"] is False and "untrained" in trace.meta["warning"]


@pytest.mark.skipif(NEEDS_DETECT, reason="the BlazePose backbone needs the detect extra")
def test_frozen_backbone_tensors_come_from_the_same_wheel_file(monkeypatch):
    """Shipped files leave the frozen BlazePose tensors out (rebuilt from the mediapipe
    wheel) and refuse to load against another version of that file."""
    import core.models.backbones.blazepose as bp
    from core.models import CheckpointError, load_project_checkpoint

    for path in FILES:
        card = json.loads(path.with_suffix(".json").read_text())
        if not card.get("omitted_keys"):
            continue
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            stored = set(f.keys())
        assert not stored & set(card["omitted_keys"])
        assert card["omitted_source"]["sha256"] == bp.blazepose_model_sha256()
        monkeypatch.setattr(bp, "blazepose_model_sha256", lambda: "0" * 64)
        with pytest.raises(CheckpointError, match="mediapipe==0.10.21"):
            load_project_checkpoint(path)
        monkeypatch.undo()

"""Model registry, Trace adapters and the "hmr"/"pymaf"/"cliff" methods."""
import numpy as np
import pytest
import torch

from core.methods import MethodInputs, available_methods, create_method, method_info
from core.models import create_model, list_models
from core.models.trace_adapters import hmr_trace, keypoint_error_px, pymaf_trace
from core.trace import Trace
from tests.helpers.trace_checks import body_at_step

RNG = np.random.default_rng(0)

# body: the open body (tests/conftest.py)


@pytest.fixture(scope="module")
def crop():
    return RNG.integers(0, 256, size=(224, 224, 3), dtype=np.uint8)


def test_registry_names_and_errors():
    names = list_models()
    for name in ("hmr", "pymaf", "cliff_res50", "cliff_hrnet48"):
        assert name in names
    with pytest.raises(ValueError, match="unknown model 'spin2'.*hmr"):
        create_model("spin2")
    with pytest.raises(TypeError, match="bad option"):
        create_model("hmr", n_layers=3)


def test_created_models_are_marked_untrained(body):
    model = create_model("hmr_resnet18", body, n_iter=2)
    assert model.weights_trained is False
    assert model.model_config == {"name": "hmr_resnet18", "backbone": "resnet18", "n_iter": 2}
    assert model.body is body and model.n_iter == 2
    assert create_model("hmr_resnet18", "open").body is body  # a body name is loaded


def test_keypoint_error_px():
    pred = np.zeros((49, 2))
    target = np.zeros((49, 3))
    target[25:27] = [[3.0, 4.0, 1.0], [0.0, 1.0, 1.0]]
    assert keypoint_error_px(pred, target) == pytest.approx(3.0)
    assert keypoint_error_px(pred, target[25:]) == pytest.approx(3.0)  # 24 GT joints
    assert np.isnan(keypoint_error_px(pred, np.zeros((49, 3))))


def test_hmr_trace(body, crop, tmp_path):
    torch.manual_seed(0)
    model = create_model("hmr_resnet18", body)
    target = np.concatenate([RNG.uniform(0, 224, (49, 2)), np.ones((49, 1))], 1)
    trace = hmr_trace(model, crop, target_keypoints=target)
    assert trace.step_labels == ["mean", "IEF 1", "IEF 2", "IEF 3"]
    assert trace.meta["weights_trained"] is False and "untrained" in trace.meta["warning"]
    trace.save(tmp_path / "t.npz")
    loaded = Trace.load(tmp_path / "t.npz")
    for step in loaded.steps:
        assert step.vertices.shape == (body.num_vertices, 3)
        assert step.params["body_pose"].shape == (23, 3, 3) and step.params["global_orient"].shape == (1, 3, 3)
        # camera-frame joints projected with f = 5000, c = 112 land on joints2d
        out = body_at_step(body, step)
        j = out.joints[0].numpy()
        np.testing.assert_allclose(j[:, :2] / j[:, 2:] * 5000 + 112, step.joints2d, atol=1e-2)
        np.testing.assert_allclose(out.vertices[0].numpy(), step.vertices, atol=1e-4)
        assert step.losses["keypoints_2d_px"] == pytest.approx(keypoint_error_px(step.joints2d, target), rel=1e-5)
    assert model.training  # the trace leaves the model's mode alone
    with pytest.raises(ValueError, match=r"\(224, 224, 3\) uint8"):
        hmr_trace(model, crop.astype(np.float32))


def test_pymaf_trace_maps(body, crop):
    torch.manual_seed(0)
    model = create_model("pymaf", body, layout="project", backbone="resnet18").eval()
    trace = pymaf_trace(model, crop)
    assert trace.step_labels == ["mean", "PyMAF level 0", "PyMAF level 1", "PyMAF level 2"]
    n = len(body.sampling_vertex_ids)
    assert "sampling_points" not in trace.steps[0].maps
    for step, (points, size) in zip(trace.steps[1:], [(441, 14), (n, 28), (n, 56)]):
        assert step.vertices.shape == (body.num_vertices, 3)  # full meshes for drawing
        assert step.maps["sampling_points"].shape == (points, 2)
        assert step.maps["feature_sum"].shape == (size, size)
        assert step.maps["feature_pca"].shape == (size, size, 3)
    assert trace.steps[2].maps["sampled_vertex_ids"].tolist() == list(body.sampling_vertex_ids)
    iuv = trace.final.maps["iuv"]
    assert iuv.shape == (56, 56, 3) and set(np.unique(iuv[..., 0])) <= set(range(25))
    assert iuv[..., 1:].min() >= 0 and iuv[..., 1:].max() <= 1
    # level 2 samples the vertices of the level-1 mesh, projected into the crop
    prev = trace.steps[2]
    v = prev.vertices[body.sampling_vertex_ids]
    np.testing.assert_allclose(v[:, :2] / v[:, 2:] * 5000 + 112, trace.steps[3].maps["sampling_points"], atol=1e-2)


def test_methods_are_registered_and_run():
    assert {"hmr", "pymaf", "cliff"} <= set(available_methods())
    assert method_info("pymaf").family == "pymaf"
    image = RNG.integers(0, 256, size=(300, 400, 3), dtype=np.uint8)
    kp = np.concatenate([RNG.uniform(100, 250, (49, 2)), np.ones((49, 1))], 1)
    inputs = MethodInputs.from_image(image, (200, 150), 1.2, keypoints_full=kp)
    trace = create_method("hmr").run(inputs)
    assert trace.method == "hmr" and trace.body == "open" and len(trace) == 4
    assert trace.camera["bbox_scale"] == pytest.approx(1.2) and "keypoints_2d_px" in trace.final.losses
    progress = []
    trace = create_method("cliff", backbone="resnet50").run(inputs, progress=lambda f, m: progress.append(f))
    assert trace.crop.shape == (256, 192, 3) and progress == [0.0, 1.0]
    assert trace.meta["model"] == "cliff_res50"

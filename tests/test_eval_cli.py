"""``python -m training.eval`` on a tiny synthetic set: metrics, report files, TTO curves."""
import json

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from core.body import load_body
    from core.data.synthetic import write_dataset
    from core.models import create_model, save_checkpoint

    root = tmp_path_factory.mktemp("evalcli")
    write_dataset(root / "val", num=3, shard_size=3, seed=9, progress=False)
    torch.manual_seed(0)
    model = create_model("hmr_resnet18", body=load_body("open"))
    save_checkpoint(model, root / "m.safetensors", config={"img_res": 32})
    return root


def test_eval_metrics_and_curves(setup, tmp_path):
    from training.eval import main

    assert main(["--checkpoint", str(setup / "m.safetensors"), "--data", f"synthetic:{setup / 'val'}",
                 "--out", str(tmp_path), "--batch-size", "2", "--tto", "eft", "--tto-steps", "2"]) == 0
    res = json.loads((tmp_path / "metrics.json").read_text())
    m = res["metrics"]
    assert res["img_res"] == 32 and m["num_samples"] == 3
    for k in ("mpjpe_mm", "pa_mpjpe_mm", "pve_mm", "pck2d@0.05", "keypoint_AP", "fgbg_f1", "parts_f1",
              "iuv/part_accuracy", "iuv/uv_error", "iuv/ps", "iuv/psm"):
        assert k in m and np.isfinite(m[k]), k
    assert m["pa_mpjpe_mm"] <= m["mpjpe_mm"] + 1e-6
    assert "| mpjpe_mm |" in (tmp_path / "metrics.md").read_text()
    curves = json.loads((tmp_path / "curves.json").read_text())
    assert curves["steps"] == [0, 1, 2] and len(curves["curves"]["mpjpe_mm"]) == 3
    # step 0 of the curve is the network's own prediction
    assert curves["curves"]["mpjpe_mm"][0] == pytest.approx(m["mpjpe_mm"], rel=1e-4)
    assert (tmp_path / "curves.png").is_file()


def test_gt_prediction_scores_perfectly(setup):
    """Feeding the GT parameters as the 'prediction' gives zero 3D error and perfect maps."""
    from core.body import load_body
    from core.data import SyntheticShards
    from core.eval.metrics import SurfaceLookup
    from training.eval import Evaluator

    body = load_body("open")
    ds = SyntheticShards(setup / "val")
    batch = torch.utils.data.default_collate([ds.get(i, np.random.default_rng(0)) for i in range(3)])
    ev = Evaluator(body, surface=SurfaceLookup.from_body(body, subdivisions=2))
    with torch.no_grad():
        out = body(betas=batch["betas"], body_pose=batch["pose"][:, 3:], global_orient=batch["pose"][:, :3])
    ev.add_3d("", out.vertices, batch)
    ev.add_maps("iuv/", (out.vertices + batch["transl"][:, None]).numpy(), batch)
    s = ev.summary()
    assert s["mpjpe_mm"] < 1e-3 and s["pve_mm"] < 1e-3
    assert s["fgbg_accuracy"] == pytest.approx(1.0) and s["iuv/part_accuracy"] == pytest.approx(1.0)
    assert s["iuv/ps"] > 0.99 and s["iuv/uv_error"] < 0.01


def test_cliff_eval_on_synthetic(setup, tmp_path):
    """CLIFF: bbox info from the box and image size, full-frame camera; untrained weights give
    finite metrics and the report files."""
    from core.body import load_body
    from core.models import create_model, save_checkpoint
    from training.eval import main

    torch.manual_seed(0)
    model = create_model("cliff_res50", body=load_body("open"))
    save_checkpoint(model, tmp_path / "cliff.safetensors", config={"img_res": 32})
    assert main(["--checkpoint", str(tmp_path / "cliff.safetensors"), "--data", f"synthetic:{setup / 'val'}",
                 "--out", str(tmp_path / "out"), "--batch-size", "3"]) == 0
    res = json.loads((tmp_path / "out" / "metrics.json").read_text())
    m = res["metrics"]
    assert res["model"] == "CLIFF" and m["num_samples"] == 3
    for k in ("mpjpe_mm", "pa_mpjpe_mm", "pve_mm", "pck2d@0.05", "fgbg_accuracy", "parts_accuracy",
              "iuv/part_accuracy"):
        assert k in m and np.isfinite(m[k]), k
    assert m["pa_mpjpe_mm"] <= m["mpjpe_mm"] + 1e-6
    assert "| mpjpe_mm |" in (tmp_path / "out" / "metrics.md").read_text()


def test_cliff_full_frame_matches_crop_camera_on_synthetic(setup):
    """On a synthetic sample (full image = the crop) the CLIFF full-frame placement of the GT
    parameters, with the crop camera converted to CLIFF's, renders the GT masks: the
    full-frame K path of Evaluator.add_maps scores ≈ 1."""
    from core.body import load_body
    from core.data import SyntheticShards
    from training.eval import Evaluator, _Indexed, cliff_inputs, full_frame_intrinsics

    body = load_body("open")
    ds = _Indexed(SyntheticShards(setup / "val"))
    batch = torch.utils.data.default_collate([ds[i] for i in range(2)])
    center, scale, size, focal = cliff_inputs(batch)
    assert size.tolist() == [[224.0, 224.0]] * 2 and torch.allclose(focal, torch.full((2,), 224 * 2 ** 0.5))
    K = full_frame_intrinsics(size, focal)
    with torch.no_grad():
        out = body(betas=batch["betas"], body_pose=batch["pose"][:, 3:], global_orient=batch["pose"][:, :3])
    v = (out.vertices + batch["transl"][:, None]).double().numpy()
    # same image under K (f' = diagonal, c' = 112 = SPIN's c): scale depth by f'/5000
    v = np.concatenate([v[..., :2], v[..., 2:] * K[:, None, :1, 0] / 5000.0], -1)
    ev = Evaluator(body)
    ev.add_maps("iuv/", v, batch, K)
    s = ev.summary()
    assert s["fgbg_accuracy"] > 0.999 and s["iuv/part_accuracy"] > 0.99


def test_meshpose_eval_on_synthetic(setup, tmp_path):
    """MeshPose: Procrustes-aligned 3D metrics and 2D keypoints from the upsampled mesh."""
    from core.body import load_body
    from core.models import create_model, save_checkpoint
    from training.eval import main

    torch.manual_seed(0)
    model = create_model("meshpose_xs", body=load_body("open"))
    save_checkpoint(model, tmp_path / "mp.safetensors", config={"img_res": 32})
    assert main(["--checkpoint", str(tmp_path / "mp.safetensors"), "--data", f"synthetic:{setup / 'val'}",
                 "--out", str(tmp_path / "out"), "--batch-size", "3"]) == 0
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())["metrics"]
    assert m["num_samples"] == 3 and "mpjpe_mm" not in m and "pve_mm" not in m
    for k in ("pa_mpjpe_mm", "pa_pve_mm", "pck2d@0.05", "keypoint_AP"):
        assert k in m and np.isfinite(m[k]), k


def test_aligned_metrics_of_scaled_gt_are_zero(setup):
    """add_3d_aligned: the GT mesh in other units (×250, shifted) scores PA errors ≈ 0."""
    from core.body import load_body
    from core.data import SyntheticShards
    from training.eval import Evaluator

    body = load_body("open")
    ds = SyntheticShards(setup / "val")
    batch = torch.utils.data.default_collate([ds.get(i, np.random.default_rng(0)) for i in range(2)])
    with torch.no_grad():
        v = body(betas=batch["betas"], body_pose=batch["pose"][:, 3:], global_orient=batch["pose"][:, :3]).vertices
    ev = Evaluator(body, render=False)
    ev.add_3d_aligned("", v * 250.0 + 7.0, batch)
    s = ev.summary()
    assert s["pa_mpjpe_mm"] < 1e-2 and s["pa_pve_mm"] < 1e-2

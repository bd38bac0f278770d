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

"""PyMAF's error at every level (mean → level 0 → level 1 → level 2) on a held-out synthetic
set: does the mesh-alignment feedback improve the estimate level by level (PyMAF Table 6)?

    python benchmarks/pymaf_levels.py WEIGHTS.safetensors --data data/syn_test [--max-samples 500]

PA-MPJPE (mm) of the 14 LSP joints regressed from each level's mesh (H36M regressor, as
``python -m training.eval``), and the mean 2D error (crop px) of the projected GT joints.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights")
    ap.add_argument("--data", required=True)
    ap.add_argument("--max-samples", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=25)
    args = ap.parse_args(argv)
    from core.body.joint_names import H36M_TO_J14
    from core.data.synthetic import SyntheticShards
    from core.eval.metrics import pa_mpjpe
    from core.models import evaluate_state, load_project_checkpoint

    model = load_project_checkpoint(args.weights).eval()
    body = model.body
    reg = torch.as_tensor(body.regressor("h36m"), dtype=torch.float32)
    data = SyntheticShards(args.data, img_res=224)
    n = min(args.max_samples, len(data))
    rng = np.random.default_rng(0)
    errors: dict[str, list] = {}
    px: dict[str, list] = {}
    for start in range(0, n, args.batch_size):
        items = [data.get(i, rng) for i in range(start, min(n, start + args.batch_size))]
        img = torch.stack([it["img"] for it in items])
        pose = torch.stack([torch.as_tensor(it["pose"]) for it in items]).float()
        betas = torch.stack([torch.as_tensor(it["betas"]) for it in items]).float()
        kp = torch.stack([torch.as_tensor(it["keypoints"]) for it in items]).float()
        with torch.no_grad():
            gt_v = body(betas=betas, body_pose=pose[:, 3:], global_orient=pose[:, :3]).vertices
            gt = torch.einsum("jv,bvc->bjc", reg, gt_v)[:, H36M_TO_J14]
            out = model(img)
            for level in out.levels:
                mesh = evaluate_state(body, level.state)
                pred = torch.einsum("jv,bvc->bjc", reg, mesh.vertices)[:, H36M_TO_J14]
                errors.setdefault(level.label, []).append(pa_mpjpe(pred, gt).numpy())
                kp_px = (kp[:, 25:, :2] + 1.0) * 112.0
                vis = kp[:, 25:, 2] > 0
                d = (mesh.joints2d[:, 25:] - kp_px).norm(dim=-1)
                px.setdefault(level.label, []).append((d * vis).sum(1).numpy() / vis.sum(1).clamp_min(1).numpy())
    print(f"{Path(args.weights).name} on {args.data} ({n} samples)")
    for label in errors:
        e = np.concatenate(errors[label]).mean() * 1000.0      # metres → mm
        print(f"  {label:>8s}: PA-MPJPE {e:6.1f} mm   2D {np.concatenate(px[label]).mean():6.1f} px")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

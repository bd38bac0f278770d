"""Learned methods on real photos: are their projected keypoints closer to the detected
keypoints than the mean pose's (with a least-squares camera)?

For each photo of a folder (``../shared/images`` here; photos are not part of the
repository): MediaPipe finds the largest person, SPIN's crop is cut around its keypoints,
each method runs, and the mean distance (crop pixels, 224 crop) between the method's final
projected joints and the detected keypoints (confidence > 0.3, the OpenPose BODY_25 joints)
is compared with the same distance for the body's mean pose placed by a least-squares camera
fitted to those keypoints — a baseline that knows nothing of the image but where the person
is.

    python benchmarks/real_photos.py --photos ../shared/images [--methods hmr eft]
        [--weights LABEL=METHOD:FILE ...]   # e.g. old=hmr:runs/old.safetensors, compared side by side
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
MIN_CONF = 0.3


def _error(joints2d: np.ndarray, keypoints: np.ndarray) -> float:
    kp = keypoints[:25]
    use = kp[:, 2] > MIN_CONF
    return float(np.linalg.norm(joints2d[:25][use] - kp[use, :2], axis=1).mean()) if use.sum() >= 4 else float("nan")


def mean_pose_error(body, keypoints: np.ndarray) -> float:
    """The mean pose (mean shape) with the camera translation fitted to the keypoints."""
    from core.fitting.losses import project_crop
    from core.geometry import FOCAL_LENGTH, IMG_RES, estimate_translation
    from core.models import RegressorState
    from core.models.prediction import run_body

    pose, shape, _ = body.mean_params["pose"], body.mean_params["shape"], body.mean_params["cam"]
    state = RegressorState.from_params(torch.as_tensor(pose, dtype=torch.float32)[None],
                                       torch.as_tensor(shape, dtype=torch.float32)[None], torch.ones(1, 3))
    with torch.no_grad():
        joints = run_body(body, state).joints
    kp = torch.as_tensor(keypoints, dtype=torch.float32)[None].clone()
    kp[..., 2] = (kp[..., 2] > MIN_CONF).float()
    kp[:, 25:, 2] = 0          # fit on the detected BODY_25 joints only
    transl = estimate_translation(joints.double(), kp.double(), FOCAL_LENGTH, IMG_RES).float()
    j2d = project_crop(joints, transl, FOCAL_LENGTH, IMG_RES)[0].numpy()
    return _error(j2d, keypoints)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=Path, required=True)
    ap.add_argument("--methods", nargs="+", default=["hmr"])
    ap.add_argument("--weights", nargs="*", default=[], metavar="LABEL=METHOD:FILE",
                    help="also run METHOD with the weights FILE, reported as LABEL")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from PIL import Image

    from core.body import load_body
    from core.detect import crop_person, detect_people
    from core.methods import MethodInputs, create_method, default_weights

    print(f"uptime: {os.popen('uptime').read().strip()}")
    body = load_body("open")
    methods = {m: create_method(m) for m in args.methods}
    for m in methods:
        print(f"{m}: {default_weights(m) or 'untrained / as configured'}")
    for spec in args.weights:
        label, _, rest = spec.partition("=")
        name, _, file = rest.partition(":")
        if not (label and name and file):
            ap.error(f"--weights {spec!r}: expected LABEL=METHOD:FILE")
        import json

        from safetensors import safe_open

        with safe_open(file, "pt") as f:
            arch = json.loads(f.metadata()["hmr_studio"])["architecture"]
        extra = {"backbone": "blazepose"} if arch.endswith("_blazepose") else {}
        methods[label] = create_method(name, checkpoint=file, **extra)
        print(f"{label}: {name} with {file}")
    rows = []
    for path in sorted(p for p in args.photos.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES):
        image = np.asarray(Image.open(path).convert("RGB"))
        people = detect_people(image, max_people=1)
        if not people:
            print(f"{path.name}: nobody found")
            continue
        pc = crop_person(image, people[0])
        inputs = MethodInputs(image=image, crop=pc.image, center=pc.center, scale=pc.scale,
                              keypoints=pc.keypoints, keypoints_full=pc.keypoints_image)
        base = mean_pose_error(body, pc.keypoints)
        errs = {m: _error(method.run(inputs).final.joints2d, pc.keypoints) for m, method in methods.items()}
        rows.append((path.name, base, errs))
        print(f"{path.name:>36s}: mean pose {base:6.1f} px | " +
              " | ".join(f"{m} {e:6.1f} px ({e / base:.2f}×)" for m, e in errs.items()))
    if rows:
        base = np.array([r[1] for r in rows])
        for m in methods:
            e = np.array([r[2][m] for r in rows])
            print(f"{m}: median {np.nanmedian(e):.1f} px vs mean pose {np.nanmedian(base):.1f} px "
                  f"(ratio of medians {np.nanmedian(e) / np.nanmedian(base):.2f}; better on "
                  f"{int((e < base).sum())}/{len(rows)} photos)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Fit the body to a photo: detection → SPIN crop → SMPLify → overlay PNG + Trace ``.npz``.

    python -m core.fitting photo.jpg --out outdir [--openpose photo_keypoints.json]
        [--body open|smpl --smpl-dir DIR] [--schedule smplify|spin] [--iters N]
        [--person K] [--record-every K] [--threads N]

Keypoints come from MediaPipe (``core.detect.detect_people``) unless an OpenPose JSON is
given. Writes ``<out>/<stem>_smplify.png`` (left: the photo with the fitted mesh; right: the
224 crop, enlarged, with the mesh, the target keypoints as discs coloured by confidence and
the fitted joints as cyan circles joined to their targets) and ``<out>/<stem>_smplify.npz``
(the Trace, reopenable in the studio). Meshes are drawn with ``core.render.render_overlay``
(ray casting).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main", "fit_photo"]


def _read_rgb(path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"error: cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _panel(image: np.ndarray, height: int) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA
                      if h > height else cv2.INTER_LINEAR)


def fit_photo(image: np.ndarray, out_dir: Path, stem: str, openpose=None, body_name: str = "open",
              smpl_dir=None, schedule: str = "smplify", iters=None, person_index: int = 0,
              record_every: int = 5, verbose: bool = True, camera_torso: str = "trainer") -> dict:
    """Run detection + SMPLify on one RGB image and write the PNG and the Trace.

    Returns a dict with the paths written, the SMPLify result and the crop.
    """
    import cv2

    from core.body import load_body
    from core.detect import crop_person, detect_people, people_from_openpose
    from core.geometry import points_from_crop
    from core.render import draw_keypoints, render_overlay, rescale_intrinsics, spin_intrinsics

    from .priors import load_pose_prior
    from .smplify import CAMERA_TORSO, run_smplify

    t0 = time.time()
    people = people_from_openpose(openpose, image.shape) if openpose else detect_people(image)
    if not people:
        raise SystemExit("error: no person found in the image" + ("" if openpose else
                         " (MediaPipe); try --openpose with an OpenPose JSON"))
    if not 0 <= person_index < len(people):
        raise SystemExit(f"error: --person {person_index} but {len(people)} people were found")
    person = people[person_index]
    crop = crop_person(image, person)
    t_detect = time.time() - t0
    body = load_body(body_name, data_dir=smpl_dir)
    prior = load_pose_prior(body.name, smpl_dir=smpl_dir)
    t1 = time.time()
    res = run_smplify(body, crop.keypoints, prior=prior, schedule=schedule, num_iters=iters,
                      record_every=record_every, camera_gt_torso_first=CAMERA_TORSO[camera_torso])
    t_fit = time.time() - t1
    trace = res.to_trace(0, crop=crop.image, faces=body.faces, body_name=body.name,
                         camera_extra={"bbox_center": crop.center.astype(np.float32),
                                       "bbox_scale": np.float32(crop.scale),
                                       "img_size": np.asarray(image.shape[:2], np.float32)},
                         meta={"keypoints_source": person.source, "people_found": len(people),
                               "person_index": person_index, "detect_seconds": round(t_detect, 3),
                               "fit_seconds": round(t_fit, 3)})
    out_dir.mkdir(parents=True, exist_ok=True)
    trace_path = out_dir / f"{stem}_smplify.npz"
    trace.save(trace_path)

    verts = res.vertices[0].detach().cpu().numpy()
    f, res_px = res.config["focal_length"], res.config["img_res"]
    # the crop is a scaled, shifted window of the photo: full = a · crop_px + b
    corners = np.asarray(points_from_crop(np.array([[0.0, 0.0], [res_px, res_px]]), crop.center, crop.scale, res_px))
    a = (corners[1] - corners[0]) / res_px
    b = corners[0]
    K_full = np.array([[a[0] * f, 0.0, a[0] * res_px / 2 + b[0]], [0.0, a[1] * f, a[1] * res_px / 2 + b[1]],
                       [0.0, 0.0, 1.0]])
    full = render_overlay(image, verts, body.faces, K_full)
    full = draw_keypoints(full, crop.keypoints_image)
    big = 448
    crop_big = cv2.resize(crop.image, (big, big), interpolation=cv2.INTER_LINEAR)
    k = big / res_px
    crop_ov = render_overlay(crop_big, verts, body.faces, rescale_intrinsics(spin_intrinsics(f, res_px), res_px, big))
    crop_ov = draw_keypoints(crop_ov, np.c_[crop.keypoints[:, :2] * k, crop.keypoints[:, 2]],
                             projected=res.joints2d[0].detach().cpu().numpy() * k, radius=4)
    panel = np.concatenate([_panel(full, big), crop_ov], axis=1)
    png_path = out_dir / f"{stem}_smplify.png"
    cv2.imwrite(str(png_path), cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
    if verbose:
        print(f"{stem}: {len(people)} people ({person.source}), fitted person {person_index}: "
              f"{res.keypoints_2d_px[0]:.1f} px mean keypoint error, fit score {res.fit_score[0]:.1f}, "
              f"{t_fit:.1f} s SMPLify ({res.config['stages']}), prior: {res.config['prior']}")
        for w in res.warnings[0]:
            print(f"  warning: {w}")
        print(f"  wrote {png_path} and {trace_path}")
    return {"png": png_path, "trace": trace_path, "result": res, "crop": crop, "trace_obj": trace}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core.fitting", description=__doc__.split("\n\n")[0])
    ap.add_argument("photo", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--openpose", type=Path, default=None, help="OpenPose --write_json file for the photo")
    ap.add_argument("--body", choices=("open", "smpl"), default="open")
    ap.add_argument("--smpl-dir", type=Path, default=None, help="SPIN/PyMAF-style data folder (for --body smpl)")
    ap.add_argument("--schedule", choices=("smplify", "spin"), default="smplify",
                    help="smplify: original multi-stage schedule from the mean pose (default); "
                         "spin: SPIN's camera + body stages")
    ap.add_argument("--camera-torso", choices=("trainer", "direct"), default="trainer",
                    help="camera-stage joints: trainer = the GT torso, as SPIN's trainer runs SMPLify (it zeroes "
                         "the OpenPose hips; default); direct = the OpenPose torso when all 4 are visible, as a "
                         "direct call of SPIN's SMPLify does")
    ap.add_argument("--iters", type=int, default=None,
                    help="iterations (spin: per stage, default 100; smplify: last stage, default 200)")
    ap.add_argument("--person", type=int, default=0, help="which person (0 = largest)")
    ap.add_argument("--record-every", type=int, default=5, help="record every k-th iteration in the Trace")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (SMPLify's tensors are tiny: 1 is often fastest on a busy machine)")
    args = ap.parse_args(argv)
    if args.threads is not None:
        import torch
        torch.set_num_threads(max(1, args.threads))
    if args.body == "smpl" and args.smpl_dir is None:
        ap.error("--body smpl needs --smpl-dir")
    if args.out.exists() and not args.out.is_dir():
        ap.error(f"--out {args.out} is a file; give a folder (it is created if missing)")
    image = _read_rgb(args.photo)
    try:
        fit_photo(image, args.out, args.photo.stem, openpose=args.openpose, body_name=args.body,
                  smpl_dir=args.smpl_dir, schedule=args.schedule, iters=args.iters, person_index=args.person,
                  record_every=args.record_every, camera_torso=args.camera_torso)
    except (ValueError, FileNotFoundError, ImportError) as e:   # bad JSON/keypoints, missing files or extras
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:                                         # unwritable output folder, full disk …
        print(f"error: could not write the results to {args.out}: {e.strerror or e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

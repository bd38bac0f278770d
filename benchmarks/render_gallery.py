"""Render a gallery of the open body through core.render, for looking at.

    python benchmarks/render_gallery.py OUT_DIR [--size 224]

For several poses of the open body seen by SPIN's crop camera (f = 5000, 224 crop, mean
camera), writes ``OUT_DIR/<pose>_<view>.png`` (front overlay, side and top views, part
colours, IUV maps, LSP 6-part map, visibility, soft silhouette, keypoints) and one
``OUT_DIR/<pose>_sheet.png`` with all of them side by side.
"""
from __future__ import annotations

import argparse
import math
import os
import sys

import cv2
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core.render import (LSP6_PALETTE, colorize_labels, draw_keypoints, iuv_to_rgb, part_face_colors,  # noqa: E402
                         project_points, render_maps, render_overlay, render_view, render_visibility,
                         rescale_intrinsics, soft_silhouette, spin_intrinsics, apply_colormap,
                         visibility_colors)
from core.geometry.camera import weak_perspective_to_translation  # noqa: E402


def axis_angle(axis, degrees):
    a = np.asarray(axis, dtype=np.float64)
    return a / np.linalg.norm(a) * math.radians(degrees)


def poses(body):
    """name → {"rotmats": (24,3,3)} or (global_orient (3,), body_pose (69,)) axis-angle, camera convention."""
    from core.geometry.rotations import rot6d_to_rotmat

    flip = axis_angle([1, 0, 0], 180)  # SMPL's y-up body → camera frame (y down)
    rot = rot6d_to_rotmat(torch.as_tensor(body.mean_params["pose"], dtype=torch.float32).reshape(24, 6))
    mean = {"rotmats": rot}
    zero = np.zeros(69)

    def bp(**joints):
        p = zero.copy()
        for j, aa in joints.items():
            idx = int(j[1:]) - 1  # "j17" → SMPL joint 17 → body_pose slot 16
            p[3 * idx:3 * idx + 3] = aa
        return p

    return {
        "mean": mean,
        "tpose": (flip, zero),
        # the zero pose is a T-pose; joint 17 = right shoulder, 19 = right elbow (SMPL order)
        "wave": (flip, bp(j17=axis_angle([0, 0, 1], -45), j19=axis_angle([0, 0, 1], -60),
                          j16=axis_angle([0, 0, 1], -70))),
        "stride": (flip, bp(j1=axis_angle([1, 0, 0], -40), j4=axis_angle([1, 0, 0], 60),
                            j2=axis_angle([1, 0, 0], 25), j16=axis_angle([0, 0, 1], -60),
                            j17=axis_angle([0, 0, 1], 60))),
        "sit": (flip, bp(j1=axis_angle([1, 0, 0], -90), j2=axis_angle([1, 0, 0], -90),
                         j4=axis_angle([1, 0, 0], 90), j5=axis_angle([1, 0, 0], 90))),
    }


def pose_body(body, spec, yaw_degrees=0.0):
    """Vertices (V,3) and 49 joints (49,3) in the camera frame with SPIN's mean camera."""
    mp = body.mean_params
    betas = torch.as_tensor(mp["shape"], dtype=torch.float32)[None]
    transl = weak_perspective_to_translation(torch.as_tensor(mp["cam"], dtype=torch.float32)[None])
    yaw = torch.as_tensor(cv2.Rodrigues(axis_angle([0, 1, 0], yaw_degrees))[0], dtype=torch.float32)
    if isinstance(spec, dict):
        rot = spec["rotmats"]
        go = (yaw @ rot[0])[None, None]
        out = body(betas=betas, global_orient=go, body_pose=rot[None, 1:], transl=transl)
    else:
        go_aa, body_pose = spec
        go = yaw @ torch.as_tensor(cv2.Rodrigues(np.asarray(go_aa))[0], dtype=torch.float32)
        out = body(betas=betas, global_orient=go[None, None],
                   body_pose=torch.as_tensor(body_pose, dtype=torch.float32)[None], transl=transl)
    return out.vertices[0].detach().numpy(), out.joints[0].detach().numpy()


def label(img, text):
    out = img.copy()
    cv2.putText(out, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def background(size):
    """A soft vertical gradient standing in for a photo."""
    ramp = np.linspace(0.25, 0.6, size)[:, None, None]
    return np.round(np.broadcast_to(ramp * np.array([[[200, 210, 230]]]), (size, size, 3))).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--size", type=int, default=224, help="output image side (the crop is 224)")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)

    from core.body import load_body

    body = load_body("open")
    faces = body.faces
    face_part, face_uv = body.face_part, body.face_uv
    size = args.size
    K = rescale_intrinsics(spin_intrinsics(), 224, size)
    part_colors = part_face_colors(face_part)
    specs = poses(body)
    specs["turned"] = specs["mean"]  # the mean pose turned 45° about the vertical axis
    for name, spec in specs.items():
        verts, joints = pose_body(body, spec, yaw_degrees=45.0 if name == "turned" else 0.0)
        maps = render_maps(verts[None], faces, K, size, face_part, face_uv, cull_back_faces=True)
        iuv, vis = maps.iuv, maps.visibility
        bg = background(size)
        views = {
            "front": render_overlay(bg, verts, faces, K, supersample=2),
            "parts": render_overlay(bg, verts, faces, K, face_colors=part_colors, alpha=1.0, supersample=2),
            "side": render_view(verts, faces, K, size, "side", supersample=2),
            "top": render_view(verts, faces, K, size, "top", supersample=2),
            "iuv_I": iuv_to_rgb(iuv.part[0], mode="part"),
            "iuv_U": iuv_to_rgb(iuv.part[0], iuv.u[0], iuv.v[0], mode="u"),
            "iuv_V": iuv_to_rgb(iuv.part[0], iuv.u[0], iuv.v[0], mode="v"),
            "iuv_rgb": iuv_to_rgb(iuv.part[0], iuv.u[0], iuv.v[0], mode="iuv"),
            "lsp6": colorize_labels(iuv.lsp6()[0], LSP6_PALETTE),
            "visibility": render_visibility(bg, verts, faces, K, vis.weight[0], mode="mesh", alpha=1.0,
                                            supersample=2),
            # the front camera's visibility painted on the mesh, seen from the side and from above
            "visibility_side": render_view(verts, faces, K, size, "side",
                                           vertex_colors=visibility_colors(vis.weight[0])),
            "visibility_top": render_view(verts, faces, K, size, "top",
                                          vertex_colors=visibility_colors(vis.weight[0])),
            "depth": np.where(maps.mask[0][..., None], apply_colormap(
                np.where(maps.mask[0], maps.depth[0], np.nan), "magma"), 0).astype(np.uint8),
        }
        # soft silhouette with the visibility weights (MeshPose), 56x56 upscaled for viewing
        pts = torch.tensor(project_points(verts[None], K) * (56 / size), dtype=torch.float32)
        sil = soft_silhouette(pts, torch.as_tensor(faces), 56, sigma=0.3,
                              vertex_weights=torch.tensor(vis.weight, dtype=torch.float32))[0].numpy()
        views["soft_sil_56_weighted"] = cv2.resize(apply_colormap(sil, "gray", 0, 1), (size, size),
                                                   interpolation=cv2.INTER_NEAREST)
        # keypoints: projected 24 SMPL-set joints vs noisy "targets" with random confidences
        rng = np.random.default_rng(0)
        proj = project_points(joints[None], K)[0][25:]
        target = proj + rng.normal(0, size / 60, proj.shape)
        conf = rng.uniform(0, 1, len(proj))
        views["keypoints"] = draw_keypoints(views["front"], target, conf, projected=proj)
        for view, img in views.items():
            cv2.imwrite(os.path.join(args.out_dir, f"{name}_{view}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        tiles = [label(img, v) for v, img in views.items()]
        while len(tiles) % 7:
            tiles.append(np.zeros_like(tiles[0]))
        rows = [np.concatenate(tiles[i:i + 7], axis=1) for i in range(0, len(tiles), 7)]
        sheet = np.concatenate(rows, axis=0)
        cv2.imwrite(os.path.join(args.out_dir, f"{name}_sheet.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        print(f"{name}: visible {100 * vis.visible.mean():.0f}%, out of crop {100 * vis.out_of_crop.mean():.0f}%, "
              f"silhouette {100 * maps.mask.mean():.0f}% of the crop")
    print(f"wrote {len(specs)} poses to {args.out_dir}")


if __name__ == "__main__":
    main()

"""SPIN's LSP segmentation protocol in ``training.eval`` on a tiny LSP-like ``.npz`` set whose
mask/part annotations are rendered from known parameters at the full image resolution."""
import json

import cv2
import numpy as np
import pytest
import torch

torch.set_num_threads(1)

H, W = 240, 320
PERM = [0, 2, 1, 4, 3, 6, 5]


def _full_intrinsics(center, scale):
    """The crop camera (f = 5000 at the 224 crop) expressed in original-image pixels
    (renderer convention: pixel centres at +0.5; crop affine: pixel i centred at i)."""
    k = 224.0 / (200.0 * scale)
    return np.array([[5000.0 / k, 0, center[0] + 0.5 - 0.5 / k],
                     [0, 5000.0 / k, center[1] + 0.5 - 0.5 / k],
                     [0, 0, 1.0]])


@pytest.fixture(scope="module")
def lsp(tmp_path_factory):
    from core.body import load_body
    from core.eval.lsp import render_label_maps
    from core.geometry import weak_perspective_to_translation

    body = load_body("open")
    root = tmp_path_factory.mktemp("lsp")
    rng = np.random.default_rng(3)
    n = 2
    centers = np.array([[160.0, 120.0], [150.0, 126.0]])
    scales = np.array([1.05, 1.1])
    pose = np.zeros((n, 72))
    pose[:, 0] = np.pi
    pose[:, 3:] = rng.normal(0, 0.15, (n, 69))
    betas = rng.normal(0, 0.5, (n, 10))
    cam = torch.tensor([[0.9, 0.02, 0.05], [0.85, -0.03, 0.0]])
    with torch.no_grad():
        t = torch.tensor(pose, dtype=torch.float32)
        out = body(betas=torch.tensor(betas, dtype=torch.float32), body_pose=t[:, 3:], global_orient=t[:, :3])
    verts_cam = (out.vertices + weak_perspective_to_translation(cam)[:, None]).double().numpy()
    names = {"imgname": [], "maskname": [], "partname": []}
    for i in range(n):
        fg, parts = render_label_maps(verts_cam[i:i + 1], body.faces, body.face_part, body.face_uv,
                                      _full_intrinsics(centers[i], scales[i]), (H, W))
        gt_parts = parts[0].copy()
        gt_parts[100:104] = 255                                   # ignored band across the body
        cv2.imwrite(str(root / f"im{i}.png"), rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
        cv2.imwrite(str(root / f"im{i}_mask.png"), fg[0].astype(np.uint8) * 255)
        cv2.imwrite(str(root / f"im{i}_part.png"), gt_parts)
        perm = np.where(gt_parts == 255, 255, np.asarray(PERM)[np.minimum(gt_parts, 6)]).astype(np.uint8)
        cv2.imwrite(str(root / f"im{i}_part_perm.png"), perm)
        for k, suffix in (("imgname", ""), ("maskname", "_mask"), ("partname", "_part")):
            names[k].append(f"im{i}{suffix}.png")
    np.savez(root / "lsp_test.npz", center=centers, scale=scales, pose=pose, shape=betas,
             **{k: np.array(v) for k, v in names.items()})
    return {"root": root, "body": body, "verts_cam": verts_cam}


def _batch(lsp, partname_suffix="_part"):
    from core.data.spin_npz import SpinNpzDataset
    from training.eval import _Indexed

    ds = _Indexed(SpinNpzDataset(lsp["root"] / "lsp_test.npz", lsp["root"], img_res=32), lsp["root"])
    batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
    batch["partname"] = [p.replace("_part.png", f"{partname_suffix}.png") for p in batch["partname"]]
    return batch


def _scores(lsp, verts, batch=None, **kw):
    from training.eval import Evaluator

    ev = Evaluator(lsp["body"], **kw)
    ev.add_lsp(verts, batch if batch is not None else _batch(lsp))
    return ev.summary()


def test_loader_adds_image_size_and_annotation_paths(lsp):
    b = _batch(lsp)
    assert b["img_size"].tolist() == [[H, W], [H, W]]
    assert b["maskname"][1] == str(lsp["root"] / "im1_mask.png")


def test_gt_prediction_scores_about_one(lsp):
    s = _scores(lsp, lsp["verts_cam"])
    assert s["fgbg_accuracy"] > 0.99 and s["fgbg_f1"] > 0.97
    assert s["parts_accuracy"] > 0.98 and s["parts_f1"] > 0.9


def test_wrong_prediction_scores_lower(lsp):
    good = _scores(lsp, lsp["verts_cam"])
    shifted = lsp["verts_cam"].copy()
    shifted[..., 0] += 0.25                                        # 25 cm sideways
    bad = _scores(lsp, shifted)
    assert bad["fgbg_f1"] < good["fgbg_f1"] - 0.1
    assert bad["parts_f1"] < good["parts_f1"] - 0.2


def test_part_order_remap(lsp):
    batch = _batch(lsp, "_part_perm")
    remapped = _scores(lsp, lsp["verts_cam"], batch, lsp_part_order=",".join(map(str, PERM)))
    plain = _scores(lsp, lsp["verts_cam"], batch)
    assert remapped["parts_f1"] > 0.9
    assert plain["parts_f1"] < remapped["parts_f1"] - 0.3
    assert remapped["fgbg_f1"] == pytest.approx(plain["fgbg_f1"])


def test_full_frame_camera_path(lsp):
    """CLIFF's path: the same mesh expressed for a full-image camera (f = diagonal, principal
    point at the image centre) and rendered at the image size — a projective shear of
    the scene that leaves the image unchanged, so the scores stay ≈ 1 (no un-crop)."""
    from training.eval import full_frame_intrinsics

    batch = _batch(lsp)
    size = batch["img_size"]
    f = size.norm(dim=-1)
    K = full_frame_intrinsics(size, f)
    verts = []
    for i, v in enumerate(lsp["verts_cam"]):
        Kg = _full_intrinsics(batch["center"][i].double().numpy(), float(batch["scale"][i]))
        z = v[:, 2:3] * K[i, 0, 0] / Kg[0, 0]
        xy = (Kg[0, 0] * v[:, :2] / v[:, 2:3] + Kg[:2, 2] - K[i, :2, 2]) * z / K[i, 0, 0]
        verts.append(np.concatenate([xy, z], 1))
    from training.eval import Evaluator

    ev = Evaluator(lsp["body"])
    ev.add_lsp(np.stack(verts), batch, K)
    s = ev.summary()
    assert s["fgbg_accuracy"] > 0.999 and s["parts_accuracy"] > 0.999


def test_uncrop_labels_matches_reference():
    from core.eval.lsp import uncrop_labels
    from core.geometry import get_crop_transform

    rng = np.random.default_rng(0)
    crop = rng.integers(0, 7, (24, 24)).astype(np.uint8)
    center, scale, shape = np.array([20.3, 17.8]), 0.13, (30, 40)
    out = uncrop_labels(crop, center, scale, shape)
    M = get_crop_transform(center, scale, 24)
    ref = np.zeros(shape, np.uint8)
    for y in range(shape[0]):
        for x in range(shape[1]):
            cx, cy = M @ np.array([x, y, 1.0])
            i, j = int(np.floor(cy + 0.5)), int(np.floor(cx + 0.5))
            if 0 <= i < 24 and 0 <= j < 24:
                ref[y, x] = crop[i, j]
    # nearest-neighbour ties (exact .5) may round either way: allow a handful of pixels
    assert (out != ref).sum() <= 3


def test_part_order_parsing_and_bad_labels():
    from core.eval.lsp import lsp_confusions, parse_part_order

    assert parse_part_order(None).tolist() == list(range(7))
    assert parse_part_order("2,1,4,3,6,5").tolist() == PERM
    with pytest.raises(ValueError, match="permutation"):
        parse_part_order("1,1,2,3,4,5")
    with pytest.raises(ValueError, match="outside"):
        lsp_confusions(np.zeros((2, 2), bool), np.zeros((2, 2)), None, np.full((2, 2), 9))


def test_cli_on_lsp_npz(lsp, tmp_path):
    from core.models import create_model, save_checkpoint
    from training.eval import main

    torch.manual_seed(0)
    model = create_model("hmr_resnet18", body=lsp["body"])
    save_checkpoint(model, tmp_path / "m.safetensors", config={"img_res": 32})
    root = lsp["root"]
    assert main(["--checkpoint", str(tmp_path / "m.safetensors"), "--data", f"npz:{root / 'lsp_test.npz'}={root}",
                 "--out", str(tmp_path / "out"), "--lsp-part-order", "0,1,2,3,4,5,6"]) == 0
    res = json.loads((tmp_path / "out" / "metrics.json").read_text())
    m = res["metrics"]
    for k in ("fgbg_accuracy", "fgbg_f1", "parts_accuracy", "parts_f1", "mpjpe_mm", "pa_mpjpe_mm"):
        assert np.isfinite(m[k]), k
    assert res["lsp_part_order"] == list(range(7))
    assert "| parts_f1 |" in (tmp_path / "out" / "metrics.md").read_text()

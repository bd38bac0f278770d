"""Tests for core.geometry: rotations vs SciPy, cameras vs hand formulas, crops vs a slow
bilinear sampler, Procrustes vs a per-sample NumPy reference."""
import math

import cv2
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from core import geometry as G

RNG = np.random.default_rng(0)


def _random_aa(n, rng=RNG):
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angles = np.concatenate([
        rng.uniform(0, math.pi, size=n - 8),
        [0.0, 1e-9, 1e-5, 3e-3, math.pi - 1e-3, math.pi - 1e-6, math.pi - 1e-9, math.pi],
    ])
    return axis * angles[:, None]


def _wxyz(q_xyzw):
    q = np.concatenate([q_xyzw[:, 3:], q_xyzw[:, :3]], axis=1)
    return q * np.where(q[:, :1] < 0, -1.0, 1.0)


# ------------------------------------------------------------------ rotations
def test_rot6d_layout_and_spin_mean_root():
    R = torch.tensor(Rotation.random(5, random_state=1).as_matrix())
    six = G.rotmat_to_rot6d(R)
    expected = torch.stack([R[:, 0, 0], R[:, 0, 1], R[:, 1, 0], R[:, 1, 1], R[:, 2, 0], R[:, 2, 1]], 1)
    assert torch.equal(six, expected)
    assert torch.allclose(G.rot6d_to_rotmat(six), R, atol=1e-12)
    # SPIN's mean root rotation (1,0,0,-1,0,0) is diag(1,-1,-1).
    root = G.rot6d_to_rotmat(torch.tensor([[1.0, 0, 0, -1, 0, 0]]))
    assert torch.allclose(root[0], torch.diag(torch.tensor([1.0, -1, -1])))


def test_rot6d_to_rotmat_matches_slow_gram_schmidt():
    x = RNG.normal(size=(7, 24, 6))
    out = G.rot6d_to_rotmat(torch.tensor(x)).numpy()
    assert out.shape == (7, 24, 3, 3)
    for i in range(7):
        for j in range(24):
            a1 = np.array([x[i, j, 0], x[i, j, 2], x[i, j, 4]])
            a2 = np.array([x[i, j, 1], x[i, j, 3], x[i, j, 5]])
            b1 = a1 / np.linalg.norm(a1)
            b2 = a2 - b1.dot(a2) * b1
            b2 /= np.linalg.norm(b2)
            ref = np.stack([b1, b2, np.cross(b1, b2)], axis=1)
            np.testing.assert_allclose(out[i, j], ref, atol=1e-12)
    with pytest.raises(ValueError, match="reshape"):
        G.rot6d_to_rotmat(torch.zeros(2, 144))


def test_axis_angle_to_rotmat_vs_scipy():
    aa = _random_aa(64)
    ref = Rotation.from_rotvec(aa).as_matrix()
    np.testing.assert_allclose(G.axis_angle_to_rotmat(torch.tensor(aa)).numpy(), ref, atol=1e-12)
    out32 = G.axis_angle_to_rotmat(torch.tensor(aa, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(out32, ref, atol=2e-6)


def test_rotmat_to_axis_angle_vs_scipy_incl_near_pi():
    aa = _random_aa(64)
    R = Rotation.from_rotvec(aa).as_matrix()
    out = G.rotmat_to_axis_angle(torch.tensor(R)).numpy()
    ref = Rotation.from_matrix(R).as_rotvec()
    angle = np.linalg.norm(aa, axis=1)
    generic = angle < math.pi - 1e-3
    np.testing.assert_allclose(out[generic], ref[generic], atol=1e-10)
    # At pi, +axis and -axis are the same rotation: compare angle and rotation.
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), angle, atol=1e-7)
    np.testing.assert_allclose(Rotation.from_rotvec(out).as_matrix(), R, atol=1e-10)
    # float32 near pi keeps full accuracy (no division by sin theta).
    out32 = G.rotmat_to_axis_angle(torch.tensor(R, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(Rotation.from_rotvec(out32).as_matrix(), R, atol=5e-6)


def test_quaternion_conversions_vs_scipy():
    aa = _random_aa(64)
    rot = Rotation.from_rotvec(aa)
    q_ref = _wxyz(rot.as_quat())
    q = G.axis_angle_to_quaternion(torch.tensor(aa)).numpy()
    q = q * np.where(q[:, :1] < 0, -1.0, 1.0)  # |aa| may exceed pi by rounding
    np.testing.assert_allclose(q, q_ref, atol=1e-12)
    q_from_R = G.rotmat_to_quaternion(torch.tensor(rot.as_matrix())).numpy()
    generic = np.abs(q_ref[:, 0]) > 1e-6  # w = 0 at pi: q and -q both valid
    np.testing.assert_allclose(q_from_R[generic], q_ref[generic], atol=1e-12)
    np.testing.assert_allclose(np.abs(np.sum(q_from_R * q_ref, 1)), 1.0, atol=1e-12)
    np.testing.assert_allclose(G.quaternion_to_rotmat(torch.tensor(q_ref)).numpy(), rot.as_matrix(), atol=1e-12)
    aa_back = G.quaternion_to_axis_angle(torch.tensor(q_ref)).numpy()
    np.testing.assert_allclose(Rotation.from_rotvec(aa_back).as_matrix(), rot.as_matrix(), atol=1e-12)
    # -q is the same rotation; non-unit quaternions are normalised.
    np.testing.assert_allclose(G.quaternion_to_axis_angle(torch.tensor(-3.0 * q_ref)).numpy(), aa_back, atol=1e-12)
    np.testing.assert_allclose(G.quaternion_to_rotmat(torch.tensor(2.0 * q_ref)).numpy(), rot.as_matrix(), atol=1e-12)


def test_rotations_batch_shapes():
    aa = torch.zeros(2, 5, 24, 3)
    assert G.axis_angle_to_rotmat(aa).shape == (2, 5, 24, 3, 3)
    assert G.rotmat_to_axis_angle(G.axis_angle_to_rotmat(aa)).shape == (2, 5, 24, 3)
    assert G.rotmat_to_quaternion(torch.eye(3).expand(4, 3, 3)).shape == (4, 4)


@pytest.mark.parametrize("fn,make", [
    (G.axis_angle_to_rotmat, lambda: torch.tensor([[0.3, -1.2, 0.5], [0.0, 0.0, 0.0], [1e-4, 0, 2e-4]])),
    (G.axis_angle_to_quaternion, lambda: torch.tensor([[0.3, -1.2, 0.5], [0.0, 0.0, 0.0]])),
    (G.quaternion_to_axis_angle, lambda: torch.tensor([[0.9, 0.1, -0.3, 0.2], [1.0, 0.0, 0.0, 0.0],
                                                       [0.01, 0.7, 0.7, 0.1]])),
    (G.quaternion_to_rotmat, lambda: torch.tensor([[0.9, 0.1, -0.3, 0.2]])),
    (G.rot6d_to_rotmat, lambda: torch.tensor([[1.0, 0.2, 0.1, -0.9, 0.3, 0.1]])),
    (G.rotmat_to_quaternion, lambda: torch.tensor(Rotation.from_rotvec([[0.4, 0.2, -0.1], [0, 3.0, 0]]).as_matrix())),
    (G.rotmat_to_axis_angle, lambda: torch.tensor(Rotation.from_rotvec([[0.4, 0.2, -0.1], [0, 0, 0],
                                                                         [0, 0, 3.1]]).as_matrix())),
])
def test_gradcheck_float64(fn, make):
    x = make().to(torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-7, atol=1e-5)


@pytest.mark.parametrize("fn,x", [
    (G.axis_angle_to_rotmat, torch.zeros(2, 3)),
    (G.axis_angle_to_quaternion, torch.zeros(2, 3)),
    (G.quaternion_to_axis_angle, torch.tensor([[1.0, 0, 0, 0]])),
    (G.rotmat_to_axis_angle, torch.eye(3)[None]),
    (G.rotmat_to_axis_angle, torch.diag(torch.tensor([1.0, -1.0, -1.0]))[None]),
])
def test_no_nan_gradient_at_identity_and_pi(fn, x):
    x = x.clone().requires_grad_(True)
    (fn(x) * torch.arange(1, fn(x).numel() + 1).reshape(fn(x).shape)).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_axis_angle_gradient_at_zero_is_identity_map():
    # d(rotvec(R(aa)))/d(aa) = I at aa = 0.
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    J = torch.autograd.functional.jacobian(lambda v: G.rotmat_to_axis_angle(G.axis_angle_to_rotmat(v)), x)
    assert torch.allclose(J, torch.eye(3, dtype=torch.float64), atol=1e-9)


# ------------------------------------------------------------------ cameras
def test_weak_perspective_roundtrip_and_value():
    cam = torch.tensor([[0.9, 0.1, -0.2], [1.3, 0.0, 0.05]], dtype=torch.float64)
    t = G.weak_perspective_to_translation(cam)
    assert torch.allclose(t[0], torch.tensor([0.1, -0.2, 2 * 5000 / (224 * 0.9)], dtype=torch.float64))
    assert torch.allclose(G.translation_to_weak_perspective(t), cam, atol=1e-9)


def test_perspective_projection_vs_loop():
    B, N = 3, 5
    pts = torch.tensor(RNG.normal(size=(B, N, 3)))
    R = torch.tensor(Rotation.random(B, random_state=2).as_matrix())
    t = torch.tensor([[0.1, 0.2, 10.0], [0.0, -0.3, 12.0], [0.5, 0.5, 20.0]], dtype=torch.float64)
    f = torch.tensor([[1000.0, 1100.0], [500.0, 500.0], [5000.0, 4000.0]], dtype=torch.float64)
    c = torch.tensor([[112.0, 112.0], [320.0, 240.0], [0.0, 10.0]], dtype=torch.float64)
    out = G.perspective_projection(pts, R, t, f, c).numpy()
    for b in range(B):
        for n in range(N):
            Xc = R[b].numpy() @ pts[b, n].numpy() + t[b].numpy()
            ref = f[b].numpy() * Xc[:2] / Xc[2] + c[b].numpy()
            np.testing.assert_allclose(out[b, n], ref, rtol=1e-12)
    # scalar focal/center and no rotation
    out2 = G.perspective_projection(pts, None, t, 5000.0, 112.0)
    ref2 = 5000.0 * (pts + t[:, None])[..., :2] / (pts + t[:, None])[..., 2:] + 112.0
    assert torch.allclose(out2, ref2)
    with pytest.raises(ValueError, match="focal"):
        G.perspective_projection(pts, None, t, torch.ones(B, 3), 112.0)


def test_weak_perspective_equals_perspective_on_z0_plane():
    cam = torch.tensor([[0.8, 0.1, -0.1]], dtype=torch.float64)
    pts = torch.tensor([[[0.3, -0.5, 0.0], [-0.2, 0.4, 0.0]]], dtype=torch.float64)
    pix = G.perspective_projection(pts, None, G.weak_perspective_to_translation(cam), 5000.0, 112.0)
    s, tx, ty = cam[0]
    weak = 112.0 * s * (pts[0, :, :2] + torch.stack([tx, ty])) + 112.0
    assert torch.allclose(pix[0], weak, atol=1e-6)


def test_cliff_bbox_info_and_full_camera():
    center = torch.tensor([[700.0, 300.0]], dtype=torch.float64)
    scale = torch.tensor([1.5], dtype=torch.float64)
    img_size = torch.tensor([[720.0, 1280.0]], dtype=torch.float64)  # (H, W)
    f = G.default_focal(img_size[:, 0], img_size[:, 1])
    assert torch.allclose(f, torch.tensor([math.hypot(720, 1280)], dtype=torch.float64))
    info = G.cliff_bbox_info(center, scale, img_size, f)[0]
    fv = math.hypot(720, 1280)
    ref = [(700 - 640) / fv * 2.8, (300 - 360) / fv * 2.8, (300 - 0.24 * fv) / (0.06 * fv)]
    assert torch.allclose(info, torch.tensor(ref, dtype=torch.float64))
    # Z = 0 points projected with the full camera land where the crop camera puts them.
    cam = torch.tensor([[0.9, 0.05, -0.1]], dtype=torch.float64)
    t_full = G.cliff_cam_to_full(cam, center, scale, img_size, f)
    pts = torch.tensor([[[0.2, -0.3, 0.0], [-0.4, 0.1, 0.0]]], dtype=torch.float64)
    full = G.perspective_projection(pts, None, t_full, f, torch.tensor([[640.0, 360.0]], dtype=torch.float64))
    in_crop = G.points_to_crop(full[0], center[0].numpy(), 1.5, res=224)
    s, tx, ty = cam[0]
    expected = 112.0 * s * (pts[0, :, :2] + torch.stack([tx, ty])) + 112.0
    assert torch.allclose(in_crop, expected, atol=1e-6)
    assert G.default_focal(480, 640) == pytest.approx(800.0)


def _slow_estimate_translation(j3d, j2d, f, center):
    out = []
    for b in range(j3d.shape[0]):
        rows, rhs, w = [], [], []
        for j in range(j3d.shape[1]):
            X, Y, Z = j3d[b, j]
            u, v, c = j2d[b, j]
            rows += [[f, 0, center - u], [0, f, center - v]]
            rhs += [(u - center) * Z - f * X, (v - center) * Z - f * Y]
            w += [math.sqrt(c)] * 2
        w = np.array(w)
        sol, *_ = np.linalg.lstsq(np.array(rows) * w[:, None], np.array(rhs) * w, rcond=None)
        out.append(sol)
    return np.array(out)


def test_estimate_translation_exact_and_vs_slow_reference():
    B, J = 4, 24
    j3d = torch.tensor(RNG.normal(scale=0.4, size=(B, J, 3)))
    t_true = torch.tensor([[0.1, 0.2, 40.0], [-0.2, 0.1, 55.0], [0.0, 0.0, 30.0], [0.3, -0.1, 70.0]],
                          dtype=torch.float64)
    pix = G.perspective_projection(j3d, None, t_true, 5000.0, 112.0)
    conf = torch.ones(B, J, 1, dtype=torch.float64)
    t = G.estimate_translation(j3d, torch.cat([pix, conf], -1))
    assert torch.allclose(t, t_true, rtol=1e-8, atol=1e-8)
    # noisy keypoints, random confidences (some zero) vs per-sample lstsq
    noisy = pix + torch.tensor(RNG.normal(scale=3.0, size=pix.shape))
    conf = torch.tensor(RNG.uniform(0, 1, size=(B, J, 1))) * torch.tensor(RNG.uniform(size=(B, J, 1)) > 0.3)
    j2d = torch.cat([noisy, conf], -1)
    t = G.estimate_translation(j3d, j2d).numpy()
    np.testing.assert_allclose(t, _slow_estimate_translation(j3d.numpy(), j2d.numpy(), 5000.0, 112.0), rtol=1e-6)


def test_estimate_translation_undetermined_samples():
    j3d = torch.tensor(RNG.normal(size=(2, 5, 3)))
    j2d = torch.cat([torch.tensor(RNG.uniform(50, 150, size=(2, 5, 2))),
                     torch.tensor([[1.0, 1, 1, 1, 1], [0, 0, 0, 1, 0]], dtype=torch.float64)[..., None]], -1)
    with pytest.raises(ValueError, match=r"samples \[1\]"):
        G.estimate_translation(j3d, j2d)
    fb = torch.tensor([[0, 0, 50.0], [1.0, 2.0, 3.0]], dtype=torch.float64)
    t = G.estimate_translation(j3d, j2d, fallback=fb)
    assert torch.equal(t[1], fb[1]) and torch.isfinite(t).all()
    same_pixel = j2d.clone()
    same_pixel[..., :2] = 100.0
    with pytest.raises(ValueError, match="singular"):
        G.estimate_translation(j3d[:1], same_pixel[:1])


# ------------------------------------------------------------------ crops
def test_crop_transform_geometry():
    M = G.get_crop_transform([300.0, 200.0], 1.5, 224)
    corners = G.apply_affine(np.array([[300.0, 200.0], [150.0, 50.0], [450.0, 350.0]]), M)
    np.testing.assert_allclose(corners, [[112, 112], [0, 0], [224, 224]], atol=1e-12)
    # rot > 0 turns content counter-clockwise: a point right of the centre moves up.
    p = G.points_to_crop(np.array([[350.0, 200.0]]), [300.0, 200.0], 1.5, 224, rot=90)
    np.testing.assert_allclose(p, [[112, 112 - 50 * 224 / 300]], atol=1e-9)
    # batched boxes
    Mb = G.get_crop_transform(np.array([[300.0, 200.0], [10.0, 20.0]]), np.array([1.5, 2.0]), 224, rot=[0, 30])
    assert Mb.shape == (2, 2, 3)
    np.testing.assert_allclose(Mb[0], M)
    # rectangular crop (256 high, 192 wide): box height 200*scale, centre -> (96, 128)
    Mr = G.get_crop_transform([300.0, 200.0], 1.0, (256, 192))
    np.testing.assert_allclose(G.apply_affine(np.array([[300.0, 100.0]]), Mr), [[96, 0]], atol=1e-12)


def test_points_roundtrip_numpy_and_torch():
    pts = RNG.uniform(0, 500, size=(49, 2))
    for rot in (0.0, 27.0):
        c = G.points_to_crop(pts, [250.0, 260.0], 1.7, 224, rot)
        np.testing.assert_allclose(G.points_from_crop(c, [250.0, 260.0], 1.7, 224, rot), pts, atol=1e-9)
    pt = torch.tensor(pts, requires_grad=True)
    ct = G.points_to_crop(pt, [250.0, 260.0], 1.7, 224, 27.0)
    np.testing.assert_allclose(ct.detach().numpy(), G.points_to_crop(pts, [250.0, 260.0], 1.7, 224, 27.0))
    ct.sum().backward()
    assert pt.grad is not None and torch.isfinite(pt.grad).all()
    # batched boxes with (B, N, 2) points
    cb = G.points_to_crop(np.stack([pts, pts]), np.array([[250.0, 260.0], [100.0, 100.0]]), np.array([1.7, 1.0]))
    np.testing.assert_allclose(cb[0], G.points_to_crop(pts, [250.0, 260.0], 1.7))


def _slow_bilinear_crop(img, M, res):
    Minv = G.invert_affine(M)
    H, W = img.shape[:2]
    out = np.zeros((res, res) + img.shape[2:], dtype=np.float64)
    for yc in range(res):
        for xc in range(res):
            x, y = Minv[:, :2] @ np.array([xc, yc], float) + Minv[:, 2]
            x0, y0 = math.floor(x), math.floor(y)
            ax, ay = x - x0, y - y0
            acc = 0.0
            for dy, wy in ((0, 1 - ay), (1, ay)):
                for dx, wx in ((0, 1 - ax), (1, ax)):
                    xi, yi = x0 + dx, y0 + dy
                    if 0 <= xi < W and 0 <= yi < H:
                        acc = acc + wx * wy * img[yi, xi]
            out[yc, xc] = acc
    return out


def test_crop_image_matches_slow_bilinear_reference():
    H, W = 60, 80
    yy, xx = np.mgrid[0:H, 0:W]
    img = np.stack([np.sin(xx / 7.0) + yy / 30.0, np.cos(yy / 5.0), xx / 80.0], -1).astype(np.float64)
    center, scale, res, rot = [30.0, 35.0], 0.4, 24, 20.0  # box partly outside the image
    out = G.crop_image(img, center, scale, res, rot)
    assert out.shape == (24, 24, 3) and out.dtype == np.float64
    ref = _slow_bilinear_crop(img, G.get_crop_transform(center, scale, res, rot), res)
    # OpenCV quantises sample positions to 1/32 px: small errors in the smooth interior,
    # up to ~1/32 of the step at the zero-padded image border.
    np.testing.assert_allclose(out, ref, atol=0.1)
    assert np.abs(out - ref).mean() < 0.005
    assert np.abs(out).mean() > 0.3  # the crop is not empty


def test_crop_image_points_consistency_and_padding():
    img = np.zeros((300, 400, 3), np.uint8)
    x, y = 250, 120
    cv2.circle(img, (x, y), 3, (255, 255, 255), -1)
    for rot in (0.0, 35.0):
        crop = G.crop_image(img, [220.0, 150.0], 1.2, 224, rot)
        assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8
        ys, xs = np.nonzero(crop[..., 0] > 128)
        expected = G.points_to_crop(np.array([x, y], float), [220.0, 150.0], 1.2, 224, rot)
        assert abs(xs.mean() - expected[0]) < 0.75 and abs(ys.mean() - expected[1]) < 0.75
    # box sticking out of the image: padding is zero
    crop = G.crop_image(np.full((100, 100, 3), 200, np.uint8), [10.0, 10.0], 0.5, 64)
    assert crop[0, 0].tolist() == [0, 0, 0] and crop[-1, -1].tolist() == [200, 200, 200]
    back = G.uncrop_image(G.crop_image(img, [220.0, 150.0], 1.2, 224), [220.0, 150.0], 1.2, img.shape)
    assert back.shape == img.shape
    assert np.abs(back[100:140, 230:270].astype(int) - img[100:140, 230:270]).mean() < 20


def test_bbox_helpers():
    kp = np.array([[10.0, 20.0, 0.9], [110.0, 60.0, 0.5], [40.0, 220.0, 0.3], [900.0, 900.0, 0.1]])
    c, s = G.bbox_from_keypoints(kp)
    np.testing.assert_allclose(c, [60.0, 120.0])
    assert s == pytest.approx(200 / 200 * 1.2)
    c, s = G.bbox_from_keypoints(kp, center_mode="mean", rescale=1.0)
    np.testing.assert_allclose(c, [160 / 3, 100.0])
    assert s == pytest.approx(1.0)
    c, s = G.bbox_from_keypoints(kp[:2], rescale=1.0, aspect_ratio=0.75)
    assert s == pytest.approx(100 / 0.75 / 200)
    with pytest.raises(ValueError, match="confidence"):
        G.bbox_from_keypoints(kp, conf_thresh=0.95)
    c, s = G.bbox_from_xywh(10, 20, 100, 50, rescale=1.2)
    np.testing.assert_allclose(c, [60.0, 45.0])
    assert s == pytest.approx(0.6)


def test_normalize_roundtrip():
    img = RNG.integers(0, 256, size=(2, 8, 6, 3), dtype=np.uint8)
    t = G.normalize_image(img)
    assert t.shape == (2, 3, 8, 6) and t.dtype == torch.float32
    expected = (img[0, 3, 2, 1] / 255.0 - 0.456) / 0.224
    assert float(t[0, 1, 3, 2]) == pytest.approx(expected, abs=1e-6)
    assert np.array_equal(G.denormalize_image(t), img)
    assert np.array_equal(G.denormalize_image(G.normalize_image(img[0])), img[0])


# ------------------------------------------------------------------ procrustes
def _slow_procrustes(S1, S2):
    out = []
    for a, b in zip(S1, S2):
        X1, X2 = (a - a.mean(0)).T, (b - b.mean(0)).T
        K = X1 @ X2.T
        U, _, Vt = np.linalg.svd(K)
        Z = np.eye(3)
        Z[2, 2] = np.sign(np.linalg.det(Vt.T @ U.T))
        R = Vt.T @ Z @ U.T
        s = np.trace(R @ K) / np.sum(X1 ** 2)
        t = b.mean(0) - s * R @ a.mean(0)
        out.append((s * R @ a.T).T + t)
    return np.array(out)


def test_procrustes_known_transform_and_reference():
    B, N = 5, 14
    S1 = RNG.normal(size=(B, N, 3))
    R = Rotation.random(B, random_state=3).as_matrix()
    s = RNG.uniform(0.5, 2.0, size=B)
    t = RNG.normal(size=(B, 3))
    S2 = s[:, None, None] * np.einsum("bij,bnj->bni", R, S1) + t[:, None]
    tr = G.compute_similarity_transform(torch.tensor(S1), torch.tensor(S2))
    np.testing.assert_allclose(tr.scale.numpy(), s, rtol=1e-10)
    np.testing.assert_allclose(tr.rotation.numpy(), R, atol=1e-10)
    np.testing.assert_allclose(tr.translation.numpy(), t, atol=1e-10)
    np.testing.assert_allclose(G.procrustes_align(torch.tensor(S1), torch.tensor(S2)).numpy(), S2, atol=1e-10)
    noisy = S2 + RNG.normal(scale=0.3, size=S2.shape)
    np.testing.assert_allclose(G.procrustes_align(torch.tensor(S1), torch.tensor(noisy)).numpy(),
                               _slow_procrustes(S1, noisy), atol=1e-10)


def test_procrustes_never_reflects():
    S1 = RNG.normal(size=(1, 10, 3))
    mirrored = S1 * np.array([-1.0, 1.0, 1.0])
    tr = G.compute_similarity_transform(torch.tensor(S1), torch.tensor(mirrored))
    assert torch.linalg.det(tr.rotation)[0] == pytest.approx(1.0)
    np.testing.assert_allclose(G.procrustes_align(torch.tensor(S1), torch.tensor(mirrored)).numpy(),
                               _slow_procrustes(S1, mirrored), atol=1e-10)

"""SPIN augmentation: flips are involutions, pose (un)augmentation is exact, and the image,
2D keypoints, 3D joints and pose move together."""
import numpy as np
import pytest
import torch

from core.data.augment import (AugmentConfig, AugmentParams, augment_joints_3d, augment_pose, flip_joints_3d,
                               flip_keypoints_2d, flip_pose, rot_z, sample_augmentation, unaugment_pose)
from core.geometry import points_to_crop

torch.set_num_threads(1)


def test_flips_are_involutions():
    rng = np.random.default_rng(0)
    kp = rng.normal(size=(49, 3))
    j3 = rng.normal(size=(24, 4))
    pose = rng.normal(size=72)
    np.testing.assert_array_equal(flip_keypoints_2d(flip_keypoints_2d(kp)), kp)
    np.testing.assert_array_equal(flip_joints_3d(flip_joints_3d(j3)), j3)
    np.testing.assert_allclose(flip_pose(flip_pose(pose)), pose)
    # a flip really moves things: left/right wrists swap and x changes sign
    f = flip_keypoints_2d(kp)
    assert f[4, 0] == -kp[7, 0] and f[4, 1] == kp[7, 1]
    with pytest.raises(ValueError, match="49"):
        flip_keypoints_2d(kp[:24])


def test_unaugment_inverts_augment():
    rng = np.random.default_rng(1)
    for _ in range(20):
        p = sample_augmentation(rng, AugmentConfig(rot_zero_prob=0.0))
        pose = rng.normal(scale=0.5, size=72)
        np.testing.assert_allclose(unaugment_pose(augment_pose(pose, p), p), pose, atol=1e-9)


def test_sample_augmentation_ranges():
    rng = np.random.default_rng(2)
    ps = [sample_augmentation(rng) for _ in range(2000)]
    rots = np.array([p.rot for p in ps])
    assert 0.5 < np.mean(rots == 0) < 0.7                  # zeroed with p = 0.6
    assert np.abs(rots).max() <= 60.0
    assert all(0.75 <= p.scale <= 1.25 for p in ps)
    assert all(0.6 <= c <= 1.4 for p in ps for c in p.pixel)
    assert 0.45 < np.mean([p.flip for p in ps]) < 0.55
    assert sample_augmentation(rng, AugmentConfig(enabled=False)).is_identity


def _posed_body(body, pose, betas):
    out = body(betas=torch.as_tensor(betas[None], dtype=torch.float32),
               body_pose=torch.as_tensor(pose[None, 3:], dtype=torch.float32),
               global_orient=torch.as_tensor(pose[None, :3], dtype=torch.float32))
    return out.joints[0].numpy().astype(np.float64)


def test_pose_augmentation_matches_joint_augmentation():
    """Posing the body with the augmented pose gives the augmented 3D joints (rotation about
    the camera z axis, then the mirror); checks the flip permutation/sign conventions
    against the body model itself."""
    from core.body import load_body

    body = load_body("open")
    rng = np.random.default_rng(3)
    pose = np.zeros(72)
    pose[:3] = [np.pi, 0, 0]
    pose[3:] = rng.normal(scale=0.3, size=69)
    betas = np.zeros(10)
    j = _posed_body(body, pose, betas)
    for params in (AugmentParams(rot=25.0), AugmentParams(flip=True), AugmentParams(flip=True, rot=-40.0)):
        j_aug = _posed_body(body, augment_pose(pose, params), betas)[25:]
        expected = augment_joints_3d(j[25:], params)
        # compare root-relative (the mirror of the open body is not exactly the identity at the root)
        pel = lambda x: x - x[[2, 3]].mean(0)  # noqa: E731
        err = np.abs(pel(j_aug) - pel(expected)).max()
        assert err < 0.01, (params, err)


def test_rotation_moves_projection_like_the_crop():
    """Rotating 3D points by Rz(−rot) rotates their projection the way the crop affine with
    ``rot`` rotates image points (sign and axis check; 1 px tolerance for the half-pixel
    convention of the crop)."""
    rng = np.random.default_rng(4)
    X = rng.normal(scale=0.5, size=(30, 3)) + np.array([0.0, 0.0, 50.0])
    f, c = 5000.0, 112.0
    proj = lambda P: f * P[:, :2] / P[:, 2:] + c  # noqa: E731
    for rot in (30.0, -55.0):
        p_crop = points_to_crop(proj(X) - 0.5, (112.0, 112.0), 224 / 200.0, 224, rot) + 0.5
        p_3d = proj(X @ rot_z(-rot).T)
        assert np.abs(p_crop - p_3d).max() < 1.0

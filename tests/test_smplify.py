"""core.fitting: priors (vs slow references), range-of-motion sampling, keypoint inputs,
SMPLify losses, SMPLify on synthetic keypoints of the open body (acceptance: ≤ 2 px,
PA-MPJPE falls), bad input, Trace output and the method registry."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from core.fitting import keypoints as K
from core.fitting import losses as L
from core.fitting import priors as P
from core.fitting import rom as R
from core.fitting.gmm_em import fit_gmm, gmm_log_likelihood
from core.fitting.smplify import (
    FitInit,
    Stage,
    body_stage_losses,
    run_smplify,
    smplify_schedule,
    spin_schedule,
)
from core.geometry import axis_angle_to_rotmat, procrustes_align
from core.trace import Trace
from tests.helpers.synthetic import project_body_keypoints

pytestmark = pytest.mark.usefixtures("one_thread")    # body: the open body (tests/conftest.py)


@pytest.fixture(scope="module")
def prior():
    return P.load_pose_prior("open")


# ----------------------------------------------------------------------------- priors
def _slow_max_mixture(theta, means, covars, weights):
    D = means.shape[1]
    half_logdets = [0.5 * np.linalg.slogdet(c)[1] for c in covars]
    m = min(half_logdets)
    vals = []
    for mu, cov, w, hl in zip(means, covars, weights, half_logdets):
        d = theta - mu
        quad = d @ np.linalg.inv(cov) @ d
        vals.append(0.5 * quad - np.log(w / ((2 * np.pi) ** (D / 2) * np.exp(hl - m))))
    return min(vals)


def _random_gmm(K_=3, D=69, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 0.3, (K_, D))
    A = rng.normal(0, 0.1, (K_, D, D))
    covars = A @ A.transpose(0, 2, 1) + 0.05 * np.eye(D)
    weights = rng.dirichlet(np.ones(K_))
    return means, covars, weights


def test_max_mixture_prior_matches_slow_reference():
    means, covars, weights = _random_gmm()
    gmm = P.MaxMixturePrior(means, covars, weights)
    theta = np.random.default_rng(1).normal(0, 0.4, (5, 69))
    ref = np.array([_slow_max_mixture(t, means, covars, weights) for t in theta])
    for fn in (gmm, gmm.reference):          # the fast two-operand form and the first one
        np.testing.assert_allclose(fn(torch.tensor(theta, dtype=torch.float32)).numpy(), ref, rtol=2e-4)


def test_gmm_pkl_loads_through_restricted_unpickler(tmp_path):
    means, covars, weights = _random_gmm(8)
    path = tmp_path / "gmm_08.pkl"
    with open(path, "wb") as f:
        pickle.dump({"means": means, "covars": covars, "weights": weights}, f, protocol=2)
    gmm = P.load_gmm_pkl(path)
    x = torch.tensor(np.random.default_rng(2).normal(0, 0.3, (3, 69)), dtype=torch.float32)
    np.testing.assert_allclose(gmm(x).numpy(), P.MaxMixturePrior(means, covars, weights)(x).numpy(), rtol=1e-6)
    prior = P.load_pose_prior("smpl", smpl_dir=tmp_path)
    assert not prior.is_open and prior.limits is None and "gmm_08.pkl" in prior.source
    with open(tmp_path / "bad.pkl", "wb") as f:
        pickle.dump({"means": means}, f, protocol=2)
    with pytest.raises(P.PriorFileError, match="missing keys"):
        P.load_gmm_pkl(tmp_path / "bad.pkl")
    with pytest.raises(P.PriorFileError, match="fetch_data"):
        P.load_gmm_pkl(tmp_path / "nope.pkl")


def test_smpl_without_gmm_falls_back_to_open_prior(tmp_path):
    with pytest.warns(UserWarning, match="open range-of-motion"):
        prior = P.load_pose_prior("smpl", smpl_dir=tmp_path)
    assert prior.is_open


def test_angle_and_shape_prior_formulas():
    pose = torch.randn(4, 69)
    ref = sum(torch.exp(pose[:, i] * s) ** 2 for i, s in zip((52, 55, 9, 12), (1, -1, -1, -1)))
    torch.testing.assert_close(P.angle_prior(pose), ref)
    betas = torch.randn(4, 10)
    torch.testing.assert_close(P.shape_prior(betas), (betas ** 2).sum(1))


def test_open_prior_file_prefers_plausible_poses(prior):
    """Bending a joint the wrong way raises the prior energy (as SMPLify weights it) of
    every plausible pose, and the joint-limit hinge is zero inside the ranges."""
    assert prior.is_open and prior.gmm.means.shape == (8, 69) and prior.limits is not None
    rng = np.random.default_rng(123)
    good = R.sample_euler_poses("standing", 20, rng)
    energy = lambda e: (4.78 ** 2 * prior.gmm(_aa(e)) + 10.0 ** 2 * prior.limits(_aa(e)))  # noqa: E731
    base = energy(good)
    assert float(prior.limits(_aa(good)).max()) == 0.0
    for joint, axis, deg in ((4, "x", -50.0),      # left knee bent backwards
                             (18, "y", 60.0),      # left elbow bent backwards
                             (1, "x", 70.0),       # left leg far behind the body
                             (16, "x", 170.0)):    # left upper arm twisted beyond its range
        bad = good.copy()
        bad[:, joint - 1, "xyz".index(axis)] = deg
        assert (energy(bad) > base + 50.0).all(), (joint, axis)
    knee_back = good.copy()
    knee_back[:, 3, 0] = -50.0
    assert (prior.limits(_aa(knee_back)) > 0).all()


def _aa(euler_deg):
    return torch.tensor(R.euler_pose_to_axis_angle(euler_deg), dtype=torch.float32)


def test_joint_limit_prior_is_a_squared_hinge():
    lim = P.JointLimitPrior(-torch.ones(69), torch.ones(69))
    x = torch.zeros(2, 69)
    x[1, 0], x[1, 5] = 1.5, -3.0
    torch.testing.assert_close(lim(x), torch.tensor([0.0, 0.25 + 4.0]))


def test_fit_gmm_recovers_two_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal([0, 0], [1.0, 0.5], (600, 2))
    b = rng.normal([8, 3], [0.5, 1.0], (400, 2))
    g = fit_gmm(np.concatenate([a, b]), n_components=2, seed=0)
    order = np.argsort(g.means[:, 0])
    np.testing.assert_allclose(g.weights[order], [0.6, 0.4], atol=0.02)
    np.testing.assert_allclose(g.means[order], [[0, 0], [8, 3]], atol=0.15)
    np.testing.assert_allclose(np.sqrt(np.diagonal(g.covars[order], axis1=1, axis2=2)), [[1, 0.5], [0.5, 1]], atol=0.1)
    g2 = fit_gmm(np.concatenate([a, b]), n_components=2, seed=0)
    np.testing.assert_array_equal(g.means, g2.means)
    assert np.isfinite(gmm_log_likelihood(a[:5], g)).all()


# ----------------------------------------------------------------------------- range of motion
def test_euler_pose_to_axis_angle_matches_rotation_composition():
    rng = np.random.default_rng(0)
    e = rng.uniform(-60, 60, (3, 23, 3))
    aa = torch.tensor(R.euler_pose_to_axis_angle(e)).reshape(3, 23, 3)
    got = axis_angle_to_rotmat(aa).numpy()
    for j in range(23):
        ref = R.euler_to_rotmat(np.deg2rad(e[:, j]), R.ORDERS[j])
        np.testing.assert_allclose(got[:, j], ref, atol=1e-9)


def test_rom_conventions_on_the_body(body):
    """Flexion signs of the ROM table act as anatomy says on the body (x left, y up, z front)."""
    def joints(j, axis, deg):
        e = np.zeros((1, 23, 3))
        e[0, j - 1, "xyz".index(axis)] = deg
        pose = torch.tensor(R.euler_pose_to_axis_angle(e), dtype=torch.float32)
        return body(body_pose=pose, vertex_ids=torch.arange(0)).smpl_joints[0]
    s = joints(4, "x", 60)            # left knee flexion → ankle behind the knee
    assert s[7, 2] < s[4, 2] - 0.1
    s = joints(1, "x", -60)           # left hip flexion is −x → knee in front
    assert s[4, 2] > s[1, 2] + 0.1
    s = joints(18, "y", -60)          # left elbow flexion is −y → wrist in front
    assert s[20, 2] > s[18, 2] + 0.1
    s = joints(16, "z", -90)          # left arm down
    assert s[18, 1] < s[16, 1] - 0.2


def test_mirror_is_an_involution_and_samples_stay_in_rom():
    p = R.sample_poses(30, seed=4)
    np.testing.assert_allclose(R.mirror_axis_angle_pose(R.mirror_axis_angle_pose(p)), p)
    rng = np.random.default_rng(0)
    table = R.rom_table()
    for fam in R.POSTURE_FAMILIES:
        e = R.sample_euler_poses(fam, 50, rng)
        assert (e >= table[..., 0] - 1e-9).all() and (e <= table[..., 1] + 1e-9).all(), fam
    np.testing.assert_array_equal(R.sample_poses(5, seed=9), R.sample_poses(5, seed=9))


# ----------------------------------------------------------------------------- keypoints
def test_keypoint_layouts_map_into_spin49():
    rng = np.random.default_rng(0)
    coco = np.c_[rng.uniform(0, 224, (17, 2)), np.ones(17)]
    s = K.to_spin49(coco)
    assert s.shape == (49, 3) and (s[:25, 2] == 0).all()
    np.testing.assert_allclose(s[25 + 9], coco[5])          # Left Shoulder ← COCO left_shoulder
    np.testing.assert_allclose(s[25 + 0], coco[16])         # Right Ankle ← COCO right_ankle
    assert (s[25:, 2] > 0).sum() == 17
    b25 = np.c_[rng.uniform(0, 224, (25, 2)), np.ones(25)]
    s = K.to_spin49(b25)
    np.testing.assert_allclose(s[:25], b25)
    mp = np.c_[rng.uniform(0, 224, (33, 2)), np.ones(33)]
    s = K.to_spin49(mp)
    np.testing.assert_allclose(s[2, :2], mp[12, :2])         # OP RShoulder ← right_shoulder
    with pytest.raises(ValueError, match="no known layout"):
        K.to_spin49(np.ones((18, 3)))
    with pytest.raises(ValueError, match="without confidences"):
        K.to_spin49(np.ones((49, 2)))


def test_detected_person_input_uses_its_spin49():
    from core.detect import DetectedPerson

    spin49 = np.c_[np.random.default_rng(0).uniform(0, 224, (49, 2)), np.ones(49)]
    person = DetectedPerson(box=np.array([0, 0, 224, 224.0]), score=1.0, body25=spin49[:25], spin49=spin49,
                            coco17=np.zeros((17, 3)), source="mediapipe")
    out = K.to_spin49(person)
    np.testing.assert_allclose(out, spin49)
    assert out is not person.spin49


def test_fit_init_from_a_regressor_output():
    rot = axis_angle_to_rotmat(torch.tensor(R.sample_poses(1, seed=0)[:2].reshape(2, 23, 3), dtype=torch.float32))
    go = axis_angle_to_rotmat(torch.tensor([[np.pi - 0.1, 0.0, 0.0]] * 2))[:, None]
    rotmats = torch.cat([go, rot], 1)
    rotmats[1, 5] = float("nan")                             # a broken joint becomes the identity
    init = FitInit.from_rotmats(rotmats, torch.zeros(2, 10), cam=torch.tensor([[0.9, 0.1, -0.2]] * 2))
    torch.testing.assert_close(axis_angle_to_rotmat(init.body_pose[0].reshape(23, 3)), rotmats[0, 1:],
                               atol=1e-5, rtol=0)
    assert torch.equal(init.body_pose[1, 12:15], torch.zeros(3)) and torch.isfinite(init.body_pose).all()
    torch.testing.assert_close(init.transl[0], torch.tensor([0.1, -0.2, 2 * 5000 / (224 * 0.9)]))


def test_prepare_keypoints_flags_bad_input():
    kp = np.zeros((3, 49, 3))
    kp[:, :, :2] = np.random.default_rng(0).uniform(20, 200, (3, 49, 2))
    kp[:, :, 2] = 1.0
    kp[0, 4, 0] = np.nan
    kp[0, 7, 0] = 5000.0               # one joint far outside: dropped
    kp[1, :, 2] = 0.0
    kp[1, 3, 2] = 1.0                  # a single visible joint
    kp[2, :, 2] = 0.0                  # nothing visible
    p = K.prepare_keypoints(kp)
    assert torch.isfinite(p.keypoints).all()
    assert p.keypoints[0, 4, 2] == 0 and p.keypoints[0, 7, 2] == 0
    assert p.fittable.tolist() == [True, False, False]
    assert any("NaN" in w for w in p.warnings[0]) and any("outside" in w for w in p.warnings[0])
    assert any("too few" in w for w in p.warnings[1])
    full_image = np.c_[np.random.default_rng(1).uniform(900, 1800, (49, 2)), np.ones(49)]
    with pytest.raises(ValueError, match="full-image pixels"):
        K.prepare_keypoints(full_image)


# ----------------------------------------------------------------------------- losses
def test_gmof_and_reprojection_terms():
    x = torch.tensor([0.0, 1.0, 100.0, -1000.0])
    torch.testing.assert_close(L.gmof(x, 100.0), 1e4 * x ** 2 / (1e4 + x ** 2))
    j2d = torch.zeros(1, 49, 2)
    kp = torch.zeros(1, 49, 3)
    kp[..., :2] = 3.0
    kp[..., 2] = 0.5
    per = L.reprojection_terms(j2d, kp, 100.0)
    expect = 0.25 * 2 * float(L.gmof(torch.tensor(3.0), 100.0))
    assert torch.allclose(per[0, 0], torch.tensor(expect))
    assert (per[0, list(L.SMPLIFY_IGNORED)] == 0).all()


def test_camera_torso_mask_rules():
    conf = torch.ones(3, 49)
    conf[1, 27] = 0.0                  # a GT hip missing → the OpenPose torso
    conf[2, [27, 9]] = 0.0             # neither complete → the visible torso joints
    m = L.camera_torso_mask(conf)
    assert m[0].nonzero().flatten().tolist() == sorted(L.TORSO_GT)
    assert m[1].nonzero().flatten().tolist() == sorted(L.TORSO_OP)
    assert set(m[2].nonzero().flatten().tolist()) == (set(L.TORSO_GT) | set(L.TORSO_OP)) - {27, 9}


def test_joints_only_subset_and_full_mesh_give_the_same_loss(body, prior):
    g = torch.Generator().manual_seed(0)
    B = 3
    pose = torch.tensor(R.sample_poses(1, seed=2)[:B], dtype=torch.float32)
    go = torch.tensor([[np.pi, 0.0, 0.0]]).repeat(B, 1)
    betas = 0.5 * torch.randn(B, 10, generator=g)
    transl = torch.tensor([[0.0, 0.1, 45.0]]).repeat(B, 1)
    kp = torch.cat([torch.rand(B, 49, 2, generator=g) * 150 + 37, torch.ones(B, 49, 1)], -1)
    st = Stage("body", "body", 1)
    b, pb, jb, out = body_stage_losses(body, kp, go, pose, betas, transl, prior, st, evaluation="full")
    assert out.vertices.shape == (B, body.num_vertices, 3)
    for evaluation in ("subset", "joints"):      # the reference subset and the fast joints-only path
        a, pa, ja, _ = body_stage_losses(body, kp, go, pose, betas, transl, prior, st, evaluation=evaluation)
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ja, jb, rtol=1e-6, atol=1e-5)   # crop pixels ≈ 100: float32 rounding


# ----------------------------------------------------------------------------- synthetic fits
def _synthetic(body, B=4, seed=3):
    """Known bodies (standing/walking poses, betas N(0, 0.5²)) projected on the 224 crop,
    σ = 1 px noise, 4 missing joints each."""
    rng = np.random.default_rng(seed)
    pose = torch.tensor(R.sample_poses(20, seed=int(rng.integers(1000)), families=("standing", "walking")),
                        dtype=torch.float32)[:B]
    betas = torch.tensor(rng.normal(0, 0.5, (B, 10)), dtype=torch.float32)
    go = torch.tensor([[np.pi, 0, 0]] * B, dtype=torch.float32) + torch.tensor(rng.normal(0, 0.15, (B, 3)),
                                                                               dtype=torch.float32)
    transl = torch.tensor(np.c_[rng.normal(0, 0.1, (B, 2)), rng.uniform(35, 50, B)], dtype=torch.float32)
    joints, kp = project_body_keypoints(body, pose, go, transl, betas)
    kp[..., :2] += torch.tensor(rng.normal(0, 1, (B, 49, 2)), dtype=torch.float32)
    for b in range(B):
        kp[b, rng.choice(49, 4, replace=False), 2] = 0.0
    return dict(pose=pose, betas=betas, go=go, transl=transl, joints=joints, kp=kp)


def _pa_mm(pred, gt):
    return ((procrustes_align(pred[:, 25:], gt[:, 25:]) - gt[:, 25:]).norm(dim=-1).mean(-1) * 1000).numpy()


@pytest.fixture(scope="module")
def synth(body):
    return _synthetic(body)


@pytest.mark.slow
def test_smplify_from_mean_pose_fits_synthetic_keypoints(body, prior, synth):
    start = run_smplify(body, synth["kp"], prior=prior, schedule="spin", num_iters=0)
    res = run_smplify(body, synth["kp"], prior=prior, schedule="smplify")
    px = res.keypoints_2d_px.numpy()
    pa0, pa1 = _pa_mm(start.joints3d, synth["joints"]), _pa_mm(res.joints3d, synth["joints"])
    print(f"\nSMPLify (smplify schedule) from the mean pose: 2D {np.round(px, 2)} px (mean {px.mean():.2f}); "
          f"PA-MPJPE {np.round(pa0, 1)} → {np.round(pa1, 1)} mm")
    assert res.fitted.all() and torch.isfinite(res.vertices).all()
    assert px.mean() <= 2.0
    assert pa1.mean() < 0.6 * pa0.mean()


@pytest.mark.slow
def test_smplify_from_perturbed_start(body, prior, synth):
    g = torch.Generator().manual_seed(1)
    B = synth["kp"].shape[0]
    init = FitInit(synth["go"] + 0.1 * torch.randn(B, 3, generator=g),
                   synth["pose"] + 0.1 * torch.randn(B, 69, generator=g),
                   synth["betas"] + 0.3 * torch.randn(B, 10, generator=g),
                   synth["transl"] + torch.tensor([0.02, -0.02, 0.0]))
    start = run_smplify(body, synth["kp"], init=init, prior=prior, schedule="spin", num_iters=0)
    pa0 = _pa_mm(start.joints3d, synth["joints"])
    spin = run_smplify(body, synth["kp"], init=init, prior=prior, schedule="spin")
    refined = run_smplify(body, synth["kp"], init=init, prior=prior, schedule="spin", body_translation=True)
    px_s, px_r = spin.keypoints_2d_px.numpy(), refined.keypoints_2d_px.numpy()
    print(f"\nperturbed start: 2D {start.keypoints_2d_px.numpy().round(1)} px, PA {pa0.round(1)} mm; "
          f"SPIN SMPLify → {px_s.round(2)} px, PA {_pa_mm(spin.joints3d, synth['joints']).round(1)} mm; "
          f"+ translation in the body stage → {px_r.round(2)} px, "
          f"PA {_pa_mm(refined.joints3d, synth['joints']).round(1)} mm")
    assert px_r.mean() <= 2.0
    assert px_s.mean() <= 2.5 and (px_s < 0.5 * start.keypoints_2d_px.numpy()).all()
    assert _pa_mm(refined.joints3d, synth["joints"]).mean() < pa0.mean()


def test_short_fit_reduces_the_loss_and_records_a_trace(body, prior, synth):
    kp = synth["kp"][:1]
    res = run_smplify(body, kp, prior=prior, schedule=spin_schedule(12), record_every=4)
    labels = [s.label for s in res.steps]
    assert labels == ["SMPLify init", "SMPLify camera 4/12", "SMPLify camera 8/12", "SMPLify camera 12/12",
                      "SMPLify body 4/12", "SMPLify body 8/12", "SMPLify body 12/12"]
    cam = [float(s.losses["camera_reprojection"][0]) for s in res.steps if "camera" in s.stage]
    body_loss = [float(s.losses["total"][0]) for s in res.steps if s.stage == "body"]
    assert cam[-1] < cam[0] and body_loss[-1] < body_loss[0]
    # recorded steps do not alias the live parameters
    assert not np.allclose(res.steps[1].transl, res.steps[3].transl)
    trace = res.to_trace(0, faces=body.faces)
    assert trace.method == "smplify" and len(trace) == len(labels)
    fin = trace.final
    assert fin.vertices.shape == (body.num_vertices, 3) and fin.joints2d.shape == (49, 2)
    assert set(fin.params) == {"global_orient", "body_pose", "betas", "transl", "cam"}
    assert fin.params["body_pose"].shape == (23, 3, 3)
    np.testing.assert_allclose(fin.vertices, res.vertices[0].numpy(), atol=1e-4)
    np.testing.assert_allclose(fin.losses["keypoints_2d_px"], float(res.keypoints_2d_px[0]), rtol=1e-4)
    # camera frame: the result's 3D joints project (f = 5000, centre 112) onto its 2D joints
    J = res.joints3d[0].numpy()
    np.testing.assert_allclose(5000 * J[:, :2] / J[:, 2:] + 112, fin.joints2d, atol=1e-2)


def test_trace_round_trip(body, prior, synth, tmp_path):
    res = run_smplify(body, synth["kp"][:1], prior=prior, schedule=spin_schedule(3), record_every=1)
    crop = np.zeros((224, 224, 3), np.uint8)
    t = res.to_trace(0, crop=crop, faces=body.faces)
    t.save(tmp_path / "fit.npz")
    t2 = Trace.load(tmp_path / "fit.npz")
    assert t2.step_labels == t.step_labels and t2.meta["prior_is_open"] is True
    np.testing.assert_allclose(t2.final.vertices, t.final.vertices)


def test_batched_fit_equals_separate_fits(body, prior, synth):
    kp = synth["kp"][:2]
    both = run_smplify(body, kp, prior=prior, schedule=spin_schedule(8))
    one = run_smplify(body, kp[1:2], prior=prior, schedule=spin_schedule(8))
    torch.testing.assert_close(both.body_pose[1:], one.body_pose, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(both.transl[1:], one.transl, rtol=1e-5, atol=1e-5)


def test_facing_away_is_detected_from_the_mean_pose(body, prior):
    B = 1
    go = torch.tensor([[0.0, 0.0, np.pi]])          # R_x(π)·R_y(π) = R_z(π): the back to the camera
    pose = torch.tensor(R.sample_poses(2, seed=5, families=("standing",))[:B], dtype=torch.float32)
    _, kp = project_body_keypoints(body, pose, go, torch.tensor([[0.0, 0.0, 45.0]]))
    res = run_smplify(body, kp, prior=prior, schedule=smplify_schedule(30, 10))
    assert any("faces away" in w for w in res.warnings[0])
    R_fit = axis_angle_to_rotmat(res.global_orient)[0]
    R_true = axis_angle_to_rotmat(go)[0]
    assert float(torch.trace(R_fit.T @ R_true)) > 1 + 2 * np.cos(np.deg2rad(45))   # within 45°


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("case", ["all_zero", "nan", "single", "outside_some"])
def test_bad_keypoints_never_give_nan(body, prior, synth, case):
    kp = synth["kp"][:1].clone()
    if case == "all_zero":
        kp[..., 2] = 0
    elif case == "nan":
        kp[0, :10, :2] = float("nan")
    elif case == "single":
        kp[..., 2] = 0
        kp[0, 5, 2] = 1
    else:
        kp[0, :6, 0] = -1000.0
    res = run_smplify(body, kp, prior=prior, schedule=spin_schedule(5), record_every=5)
    assert torch.isfinite(res.vertices).all() and torch.isfinite(res.joints2d).all()
    trace = res.to_trace(0, faces=body.faces)
    assert all(np.isfinite(s.vertices).all() for s in trace.steps if s.vertices is not None)
    if case in ("all_zero", "single"):
        assert not bool(res.fitted[0])
        assert "too few" in trace.meta["warning"] and trace.meta["fitted"] is False
        start = run_smplify(body, kp, prior=prior, schedule=spin_schedule(0))
        torch.testing.assert_close(res.vertices, start.vertices)
    else:
        assert bool(res.fitted[0]) and trace.meta["warning"]


def test_mixed_batch_fits_the_good_sample(body, prior, synth):
    kp = synth["kp"][:2].clone()
    kp[1, :, 2] = 0
    res = run_smplify(body, kp, prior=prior, schedule=spin_schedule(10))
    assert res.fitted.tolist() == [True, False]
    assert res.warnings[0] == [] and res.warnings[1]


# ----------------------------------------------------------------------------- registry
def test_registered_method_runs_on_method_inputs(body, synth):
    from core.methods import MethodInputs, create_method, method_info

    info = method_info("smplify")
    assert info.family == "optimisation" and "keypoints" in info.needs
    image = np.full((300, 300, 3), 90, np.uint8)
    kp_crop = synth["kp"][0].numpy().astype(np.float64)
    center, scale = np.array([150.0, 150.0]), 300 / 200
    inputs = MethodInputs.from_image(image, center, scale)
    inputs.keypoints = kp_crop
    method = create_method("smplify", schedule="spin", num_iters=6, record_every=3)
    trace = method.run(inputs)
    assert isinstance(trace, Trace) and trace.method == "smplify"
    assert trace.step_labels[0] == "SMPLify init" and trace.step_labels[-1] == "SMPLify body 6/6"
    assert trace.crop.shape == (224, 224, 3) and "bbox_center" in trace.camera
    with pytest.raises(ValueError, match="needs 2D keypoints"):
        method.run(MethodInputs.from_image(image, center, scale))


def test_fitting_cli_refuses_an_existing_file_as_the_output_folder(tmp_path, capsys):
    """``python -m core.fitting photo --out <a file>``: one line naming the problem, exit 2
    (a FileExistsError traceback before)."""
    from core.fitting.__main__ import main

    out = tmp_path / "results.txt"
    out.write_text("keep me")
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "photo.jpg"), "--out", str(out)])
    assert e.value.code == 2
    assert "is a file; give a folder" in capsys.readouterr().err
    assert out.read_text() == "keep me"

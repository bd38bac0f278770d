"""Metrics against slow, obvious references and hand-computed cases."""
import numpy as np
import pytest
import torch

from core.eval.metrics import (COCO_SIGMAS, SurfaceLookup, auc, confusion_matrix, iuv_scores, keypoint_ap, mpjpe, oks,
                               pa_mpjpe, pck, pve, segmentation_scores)

torch.set_num_threads(1)


def _random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _umeyama_pa_error(X, Y):
    """Slow reference: per-sample similarity alignment of X onto Y (NumPy, one sample)."""
    mx, my = X.mean(0), Y.mean(0)
    A, B = X - mx, Y - my
    U, S, Vt = np.linalg.svd(A.T @ B)
    D = np.eye(3)
    D[2, 2] = np.sign(np.linalg.det(Vt.T @ U.T))
    R = Vt.T @ D @ U.T
    s = np.trace(np.diag(S) @ D) / (A ** 2).sum()
    aligned = s * A @ R.T + my
    return np.linalg.norm(aligned - Y, axis=1).mean()


def test_mpjpe_pa_mpjpe_pve_against_references():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(5, 14, 3))
    pred = gt + rng.normal(scale=0.05, size=gt.shape)
    # a similarity-transformed copy has PA error ~0 but a large MPJPE
    R = _random_rotation(rng)
    moved = 1.3 * gt[:1] @ R.T + np.array([0.2, -0.1, 0.4])
    assert float(mpjpe(moved, gt[:1])[0]) > 0.1
    assert float(pa_mpjpe(moved, gt[:1])[0]) < 1e-9
    ref = np.array([_umeyama_pa_error(pred[b], gt[b]) for b in range(5)])
    np.testing.assert_allclose(pa_mpjpe(pred, gt).numpy(), ref, rtol=1e-8)
    loop = np.array([np.mean([np.linalg.norm(pred[b, j] - gt[b, j]) for j in range(14)]) for b in range(5)])
    np.testing.assert_allclose(mpjpe(pred, gt).numpy(), loop, rtol=1e-10)
    np.testing.assert_allclose(pve(pred, gt).numpy(), loop, rtol=1e-10)
    # masks: only the counted joints enter (and the alignment is fitted on them)
    mask = np.ones((5, 14), bool)
    mask[:, :4] = False
    pred2 = pred.copy()
    pred2[:, :4] += 10.0
    np.testing.assert_allclose(mpjpe(pred2, gt, mask).numpy(), mpjpe(pred[:, 4:], gt[:, 4:]).numpy())
    ref_m = np.array([_umeyama_pa_error(pred[b, 4:], gt[b, 4:]) for b in range(5)])
    np.testing.assert_allclose(pa_mpjpe(pred2, gt, mask).numpy(), ref_m, rtol=1e-8)
    with pytest.raises(ValueError, match="pred and gt"):
        mpjpe(pred[:, :3], gt)


def test_pck_auc():
    gt = np.zeros((1, 4, 3))
    pred = np.zeros((1, 4, 3))
    pred[0, :, 0] = [0.01, 0.05, 0.10, 0.20]                    # errors 10, 50, 100, 200 mm
    assert float(pck(pred, gt, 0.15)[0]) == 0.75
    t = np.linspace(0, 0.15, 31)
    expected = np.mean([np.mean(np.array([0.01, 0.05, 0.10, 0.20]) < x) for x in t])
    assert float(auc(pred, gt)[0]) == pytest.approx(expected)


def test_oks_hand_case():
    area = 100.0
    k = 2 * COCO_SIGMAS[0]
    d = np.sqrt(2 * area * k ** 2 * np.log(2))                    # exp(−d²/(2 s² k²)) = 1/2
    gt = np.zeros((1, 17, 3))
    gt[0, 0] = [50, 50, 2]
    pred = np.zeros((1, 17, 2))
    pred[0, 0] = [50 + d, 50]
    assert oks(pred, gt, [area])[0] == pytest.approx(0.5, abs=1e-9)
    gt[0, 1] = [10, 10, 1]
    pred[0, 1] = [10, 10]
    assert oks(pred, gt, [area])[0] == pytest.approx(0.75, abs=1e-9)   # mean over the 2 labelled
    gt[0, :, 2] = 0
    assert np.isnan(oks(pred, gt, [area])[0])


def test_keypoint_ap_hand_cases():
    o = np.array([0.97, 0.82, 0.62, 0.30])
    # confident predictions are the good ones: AP_t = (recall reached) · 101-point coverage
    r = keypoint_ap(o, scores=[0.9, 0.8, 0.7, 0.6])
    assert r["AP50"] == pytest.approx(76 / 101)
    assert r["AP75"] == pytest.approx(51 / 101)
    assert r["AP"] == pytest.approx((3 * 76 + 4 * 51 + 3 * 26) / 1010)
    # the worst prediction has the highest score: at OKS 0.5 precision is 0, ½, ⅔, ¾ →
    # monotone envelope ¾ up to recall ¾
    r2 = keypoint_ap(o, scores=[0.6, 0.7, 0.8, 0.9])
    assert r2["AP50"] == pytest.approx(0.75 * 76 / 101)
    # people without labelled keypoints are ignored
    assert keypoint_ap([1.0, np.nan])["AP"] == pytest.approx(1.0)


def test_segmentation_scores_hand_case():
    gt = np.array([[0, 0, 1, 1], [0, 255, 1, 1]])
    pred = np.array([[0, 1, 1, 1], [0, 0, 1, 0]])
    conf = confusion_matrix(pred, gt, 2)
    np.testing.assert_array_equal(conf, [[2, 1], [1, 3]])
    s = segmentation_scores(conf)
    assert s["accuracy"] == pytest.approx(5 / 7)
    assert s["f1"] == pytest.approx([4 / 6, 6 / 8])
    assert s["mean_f1"] == pytest.approx((4 / 6 + 6 / 8) / 2)


@pytest.fixture(scope="module")
def surface():
    from core.body import load_body

    return SurfaceLookup.from_body(load_body("open"), subdivisions=2)


def test_iuv_scores(surface):
    rng = np.random.default_rng(1)
    gt_part = np.zeros((2, 8, 8), np.int64)
    gt_part[:, 2:6, 2:6] = rng.integers(1, 25, size=(2, 4, 4))
    gt_uv = rng.uniform(0.2, 0.8, size=(2, 2, 8, 8)) * (gt_part > 0)[:, None]
    perfect = iuv_scores(gt_part, gt_uv, gt_part, gt_uv, surface)
    np.testing.assert_allclose(perfect["part_accuracy"], 1.0)
    np.testing.assert_allclose(perfect["uv_error"], 0.0)
    np.testing.assert_allclose(perfect["ps"], 1.0)
    np.testing.assert_allclose(perfect["mask_iou"], 1.0)
    # background everywhere: nothing right, similarity 0
    empty = iuv_scores(np.zeros_like(gt_part), np.zeros_like(gt_uv), gt_part, gt_uv, surface)
    np.testing.assert_allclose(empty["ps"], 0.0)
    np.testing.assert_allclose(empty["part_accuracy"], 0.0)
    # a small UV shift costs little similarity, a wrong part a lot (points far apart)
    shifted = iuv_scores(gt_part, np.clip(gt_uv + 0.01, 0, 1) * (gt_part > 0)[:, None], gt_part, gt_uv, surface)
    assert np.all(shifted["ps"] > 0.9)
    wrong = gt_part.copy()
    wrong[wrong > 0] = np.where(wrong[wrong > 0] == 23, 5, 23)   # head ↔ foot
    assert np.all(iuv_scores(wrong, gt_uv, gt_part, gt_uv, surface)["ps"] < 0.1)
    # surface lookup: querying the UV of a surface sample returns that sample
    p = next(iter(surface.trees))
    uv0 = surface.trees[p].data[7]
    np.testing.assert_allclose(surface.query(np.array([p]), uv0[None])[0], surface.points[p][7])

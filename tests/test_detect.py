"""core.detect: layout maps (by construction, against name-based references), OpenPose JSON,
image conversion, detection windows, crops, the missing-mediapipe error, and the real
MediaPipe detector on scikit-image's astronaut photo."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from core.body import joint_names as jn
from core.detect import (
    DetectedPerson,
    MediapipeUnavailable,
    OpenPoseJSONError,
    body25_to_spin49,
    coco18_to_body25,
    crop_from_box,
    crop_from_keypoints,
    crop_person,
    detection_windows,
    mediapipe33_to_body25,
    mediapipe33_to_coco17,
    people_from_openpose,
    read_openpose_body25,
    spin49_to_coco17,
    to_rgb_uint8,
)
from core.detect import mediapipe_pose
from core.detect.openpose_json import read_openpose_spin49
from core.geometry.crop import points_to_crop

REAL_OPENPOSE = Path("/work/shared/images/spin_im1010_openpose.json")


def canon(name: str) -> str:
    """Same normalisation as tests/test_joint_names.py (left/right + part, lower case)."""
    import re
    s = re.sub(r"^OP ", "", name)
    s = re.sub(r"^([LR])(?=[A-Z])", lambda m: {"L": "left ", "R": "right "}[m.group(1)], s)
    s = s.replace("_", " ").replace("(", "").replace(")", "")
    s = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", s)
    return " ".join(s.lower().split())


# MediaPipe landmark name → BODY_25 name it provides (the documented choices).
MP_ALIASES = {"left foot index": "left big toe", "right foot index": "right big toe"}


def coded(n_joints: int, batch=()):
    """Keypoints whose x encodes the joint index: (…, J, 3) with x = 10 + j, y = 500 + 2j."""
    j = np.arange(n_joints, dtype=np.float64)
    kp = np.stack([10 + j, 500 + 2 * j, 0.5 + 0.01 * j], axis=-1)
    return np.broadcast_to(kp, tuple(batch) + kp.shape).copy()


# ------------------------------------------------------------------------ maps

def test_mediapipe33_to_body25_by_name():
    mp = coded(33)
    out = mediapipe33_to_body25(mp)
    assert out.shape == (25, 3)
    mp_by_name = {MP_ALIASES.get(canon(n), canon(n)): i
                  for i, n in enumerate(jn.MEDIAPIPE_33_NAMES)}
    for k, name in enumerate(jn.OPENPOSE_BODY25_NAMES):
        c = canon(name)
        if c in mp_by_name:
            np.testing.assert_array_equal(out[k], mp[mp_by_name[c]], err_msg=name)
        elif c == "neck":
            np.testing.assert_allclose(out[k, :2], (mp[11, :2] + mp[12, :2]) / 2)
            assert out[k, 2] == min(mp[11, 2], mp[12, 2])
        elif c == "mid hip":
            np.testing.assert_allclose(out[k, :2], (mp[23, :2] + mp[24, :2]) / 2)
            assert out[k, 2] == min(mp[23, 2], mp[24, 2])
        else:
            assert c in ("left small toe", "right small toe"), name
            assert (out[k] == 0).all()


def test_midpoint_missing_side_and_nan():
    mp = coded(33)
    mp[12, 2] = 0.0           # right shoulder missing → neck missing
    mp[24] = np.nan           # right hip NaN → hip and MidHip missing
    out = mediapipe33_to_body25(mp)
    assert (out[1] == 0).all() and (out[8] == 0).all() and (out[9] == 0).all()
    assert (out[2] == 0).all()
    assert np.isfinite(out).all()


def test_maps_batched():
    mp = coded(33, batch=(2, 3))
    mp[1, 2, 0, 2] = 0.0
    b25 = mediapipe33_to_body25(mp)
    assert b25.shape == (2, 3, 25, 3)
    np.testing.assert_array_equal(b25[0, 0], mediapipe33_to_body25(mp[0, 0]))
    assert (b25[1, 2, 0] == 0).all() and b25[1, 1, 0, 2] > 0
    assert body25_to_spin49(b25).shape == (2, 3, 49, 3)
    assert mediapipe33_to_coco17(mp).shape == (2, 3, 17, 3)
    assert spin49_to_coco17(body25_to_spin49(b25)).shape == (2, 3, 17, 3)


def test_mediapipe33_to_coco17_by_name():
    mp = coded(33)
    out = mediapipe33_to_coco17(mp)
    idx = {canon(n): i for i, n in enumerate(jn.MEDIAPIPE_33_NAMES)}
    for k, name in enumerate(jn.COCO_17_NAMES):
        np.testing.assert_array_equal(out[k], mp[idx[canon(name)]])


def test_body25_to_spin49_by_name():
    b25 = coded(25)
    out = body25_to_spin49(b25)
    assert out.shape == (49, 3)
    np.testing.assert_array_equal(out[:25], b25)
    by_name = {canon(n): i for i, n in enumerate(jn.OPENPOSE_BODY25_NAMES)}
    filled = 0
    for k, name in enumerate(jn.J24_NAMES):
        c = canon(name)
        if c in by_name:
            np.testing.assert_array_equal(out[25 + k], b25[by_name[c]], err_msg=name)
            filled += 1
        else:   # LSP neck/head top, MPII pelvis/thorax, H36M spine/jaw/head
            assert (out[25 + k] == 0).all(), name
    assert filled == 17
    assert (body25_to_spin49(b25, fill_gt=False)[25:] == 0).all()


def test_spin49_to_coco17_prefers_gt_then_openpose():
    kp = np.zeros((49, 3))
    kp[:25] = coded(25)
    kp[25:] = coded(24) + [1000, 0, 0]
    out = spin49_to_coco17(kp)
    np.testing.assert_array_equal(out, kp[[25 + i for i in jn.J24_TO_JCOCO]])
    kp[25 + jn.J24_TO_JCOCO[0], 2] = 0.0     # GT nose missing → OpenPose nose
    out = spin49_to_coco17(kp)
    np.testing.assert_array_equal(out[0], kp[0])
    only_op = spin49_to_coco17(body25_to_spin49(coded(25), fill_gt=False))
    np.testing.assert_array_equal(only_op, coded(25)[list(jn.BODY25_TO_COCO17)])


def test_coco18_to_body25():
    c18 = coded(18)
    out = coco18_to_body25(c18)
    for k, name in enumerate(jn.OPENPOSE_COCO18_NAMES):
        np.testing.assert_array_equal(out[jn.OPENPOSE_BODY25_NAMES.index(name)], c18[k])
    np.testing.assert_allclose(out[8, :2], (c18[8, :2] + c18[11, :2]) / 2)
    assert (out[19:] == 0).all()


@pytest.mark.parametrize("fn,bad", [
    (mediapipe33_to_body25, np.zeros((25, 3))), (body25_to_spin49, np.zeros((25, 2))),
    (spin49_to_coco17, np.zeros((24, 3))), (mediapipe33_to_coco17, np.zeros(33)),
])
def test_maps_reject_wrong_shapes(fn, bad):
    with pytest.raises(ValueError, match="expected keypoints of shape"):
        fn(bad)


# ---------------------------------------------------------------- OpenPose JSON

def _write(tmp_path, obj, name="kp.json"):
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


def test_openpose_body25_and_coco18(tmp_path):
    a = coded(25)
    b = coded(25) + [100, 0, 0]
    b[3] = 0.0
    path = _write(tmp_path, {"version": 1.3, "people": [
        {"pose_keypoints_2d": a.ravel().tolist()},
        {"pose_keypoints_2d": b.ravel().tolist(), "face_keypoints_2d": []}]})
    out = read_openpose_body25(path)
    assert out.shape == (2, 25, 3)
    np.testing.assert_allclose(out[0], a)
    np.testing.assert_allclose(out[1], b)
    assert read_openpose_spin49(str(path)).shape == (2, 49, 3)
    c18 = coded(18)
    out18 = read_openpose_body25({"people": [{"pose_keypoints_2d": c18.ravel().tolist()}]})
    np.testing.assert_allclose(out18[0], coco18_to_body25(c18))
    assert read_openpose_body25({"people": []}).shape == (0, 25, 3)


@pytest.mark.parametrize("content,match", [
    ("not json {", "not a valid JSON"),
    ([1, 2, 3], "top level is a list"),
    ({"version": 1.3}, "no 'people' key"),
    ({"people": {"a": 1}}, "'people' must be a list"),
    ({"people": [{"face_keypoints_2d": []}]}, r"people\[0\] has no 'pose_keypoints_2d'"),
    ({"people": [{"pose_keypoints_2d": [0.0] * 60}]}, "has 60 values; expected 75"),
    ({"people": [{"pose_keypoints_2d": ["a"] * 75}]}, "not a flat list of numbers"),
    ({"people": [{"pose_keypoints_2d": [[0.0] * 3] * 25}]}, "must be a flat list"),
    ({"people": [{"pose_keypoints_2d": [100.0, 100.0, 300.0] * 25}]}, "joint 0 has confidence 300; OpenPose"),
    ({"people": [{"pose_keypoints_2d": [100.0, 100.0, 0.5] * 24 + [1.0, 1.0, -0.2]}]}, "joint 24 has confidence -0.2"),
    ({"people": [{"pose_keypoints_2d": [100.0, 100.0, 0.5] * 17 + [1e9, 5.0, 0.9]}]}, "joint 17 is at .* far outside"),
])
def test_openpose_malformed(tmp_path, content, match):
    path = _write(tmp_path, content)
    with pytest.raises(OpenPoseJSONError, match=match):
        read_openpose_body25(path)


def test_openpose_missing_file(tmp_path):
    with pytest.raises(OpenPoseJSONError, match="not found"):
        read_openpose_body25(tmp_path / "nope.json")


def test_people_from_openpose(tmp_path):
    small = np.zeros((25, 3))
    small[[0, 2, 5]] = [[50, 50, 0.9], [40, 60, 0.8], [60, 60, 0.7]]
    big = np.zeros((25, 3))
    big[[0, 11, 14]] = [[100, 10, 0.9], [80, 190, 0.6], [120, 190, 0.3]]
    empty = np.zeros((25, 3))
    data = {"people": [{"pose_keypoints_2d": x.ravel().tolist()} for x in (small, empty, big)]}
    people = people_from_openpose(data, (200, 150, 3))
    assert len(people) == 2
    assert all(isinstance(p, DetectedPerson) and p.source == "openpose" for p in people)
    np.testing.assert_allclose(people[0].box, [80, 10, 120, 190])
    np.testing.assert_allclose(people[1].box, [40, 50, 60, 60])
    assert people[0].spin49.shape == (49, 3) and people[0].coco17.shape == (17, 3)
    np.testing.assert_allclose(people[1].score, 0.8)
    # GT right ankle (J24 0) filled from OP RAnkle (BODY_25 11)
    np.testing.assert_allclose(people[0].spin49[25], big[11])
    with pytest.raises(ValueError, match="outside an image"):
        people_from_openpose(data, (100, 100))


@pytest.mark.skipif(not REAL_OPENPOSE.is_file(), reason="shared example not available")
def test_real_openpose_file():
    people = people_from_openpose(REAL_OPENPOSE, (192, 153))
    assert len(people) == 1
    p = people[0]
    assert (p.body25[[0, 1, 2, 5, 8], 2] > 0.5).all()
    assert p.body25[0, 1] < p.body25[1, 1] < p.body25[8, 1]   # nose above neck above hips
    crop = crop_person(np.zeros((192, 153, 3), np.uint8), p)
    assert crop.image.shape == (224, 224, 3)


# ---------------------------------------------------------------- image input

def test_to_rgb_uint8_conversions():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert to_rgb_uint8(rgb) is not None and (to_rgb_uint8(rgb) == rgb).all()
    gray = rgb[..., 0]
    g3 = to_rgb_uint8(gray)
    assert g3.shape == (5, 7, 3) and (g3 == gray[..., None]).all()
    assert (to_rgb_uint8(gray[..., None]) == g3).all()
    rgba = np.concatenate([rgb, np.full((5, 7, 1), 7, np.uint8)], axis=-1)
    assert (to_rgb_uint8(rgba) == rgb).all()
    assert (to_rgb_uint8(rgb.astype(np.uint16) * 257) == rgb).all()
    assert (to_rgb_uint8(rgb / 255.0) == rgb).all()
    assert (to_rgb_uint8(rgb.astype(np.float32)) == rgb).all()
    assert (to_rgb_uint8(rgb.astype(np.int64)) == rgb).all()
    assert to_rgb_uint8(np.ones((2, 2), bool)).max() == 255
    assert to_rgb_uint8(rgb[:, ::-1]).flags.c_contiguous


@pytest.mark.parametrize("bad,match", [
    (np.zeros((4, 4, 2)), "expected an image of shape"),
    (np.zeros((4,)), "expected an image of shape"),
    (np.zeros((0, 4, 3)), "empty image"),
    (np.full((2, 2, 3), np.nan), "NaN"),
    (np.full((2, 2, 3), 300, np.int32), r"expected \[0, 255\]"),
])
def test_to_rgb_uint8_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        to_rgb_uint8(bad)


def test_detection_windows():
    assert detection_windows(480, 500) == [(0, 0, 500, 480)]
    wins = detection_windows(512, 1024)
    assert wins == [(0, 0, 1024, 512), (0, 0, 512, 512), (256, 0, 768, 512),
                    (512, 0, 1024, 512)]
    tall = detection_windows(1000, 300)
    assert tall[0] == (0, 0, 300, 1000)
    assert all(x1 - x0 == 300 and y1 - y0 == 300 for x0, y0, x1, y1 in tall[1:])
    assert tall[-1][3] == 1000            # flush with the end
    covered = np.zeros(1000, bool)
    for _, y0, _, y1 in tall[1:]:
        covered[y0:y1] = True
    assert covered.all()


# ------------------------------------------------------------------------ crops

def test_crop_from_box_and_keypoints_rule():
    img = np.zeros((300, 400, 3), np.uint8)
    c = crop_from_box(img, [100, 50, 80, 160])
    np.testing.assert_allclose(c.center, [140, 130])
    assert c.scale == pytest.approx(160 / 200)
    np.testing.assert_allclose(c.box, [60, 50, 220, 210])
    kp = np.zeros((49, 3))
    kp[[0, 2, 11, 14]] = [[100, 40, 0.9], [80, 80, 0.8], [90, 200, 0.5], [140, 210, 0.15]]
    kp[30] = [500, 500, 0.9]          # GT part is ignored when BODY_25 has >= 2 joints
    c = crop_from_keypoints(img, kp)
    used = kp[[0, 2, 11], :2]
    np.testing.assert_allclose(c.center, used.mean(axis=0))
    extent = (used.max(axis=0) - used.min(axis=0)).max()
    assert c.scale == pytest.approx(extent / 200 * 1.2)
    np.testing.assert_allclose(c.keypoints_image, kp)
    valid = kp[:, 2] > 0
    np.testing.assert_allclose(c.keypoints[valid, :2],
                               points_to_crop(kp[valid, :2], c.center, c.scale, 224))
    assert (c.keypoints[~valid] == 0).all()
    np.testing.assert_allclose(c.keypoints[valid, 2], kp[valid, 2])


def test_crop_keypoint_lands_on_marked_pixel():
    img = np.zeros((300, 400, 3), np.uint8)
    img[118:123, 198:203] = 255             # 5×5 white square centred at (200, 120)
    kp = np.zeros((49, 3))
    kp[:4] = [[200, 120, 1], [150, 60, 1], [260, 250, 1], [170, 200, 1]]
    c = crop_from_keypoints(img, kp)
    u, v = np.round(c.keypoints[0, :2]).astype(int)
    assert c.image[v, u].min() > 200
    assert c.image.shape == (224, 224, 3) and c.image.dtype == np.uint8


# ------------------------------------------------------------ missing mediapipe

def test_missing_mediapipe_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    mediapipe_pose.pose_landmarker_bundle.cache_clear()
    try:
        with pytest.raises(MediapipeUnavailable, match=r"hmr-studio\[detect\]") as err:
            mediapipe_pose.MediapipePoseDetector()
        assert "OpenPose JSON" in str(err.value)
        from core.detect import detect_people
        with pytest.raises(MediapipeUnavailable):
            detect_people(np.zeros((64, 64, 3), np.uint8), max_people=3, min_confidence=0.41)
    finally:
        mediapipe_pose.pose_landmarker_bundle.cache_clear()


# ------------------------------------------------------------ the real detector

@pytest.fixture(scope="module")
def detector():
    pytest.importorskip("mediapipe")
    det = mediapipe_pose.MediapipePoseDetector(max_people=4, min_confidence=0.5)
    yield det
    det.close()


@pytest.fixture(scope="module")
def astronaut():
    data = pytest.importorskip("skimage.data")
    return data.astronaut()


def _check_person(p: DetectedPerson, shape):
    H, W = shape[:2]
    assert p.landmarks.shape == (33, 3) and p.body25.shape == (25, 3)
    assert p.spin49.shape == (49, 3) and p.coco17.shape == (17, 3)
    for kp in (p.landmarks, p.body25, p.spin49, p.coco17):
        assert np.isfinite(kp).all()
        assert ((kp[:, 2] >= 0) & (kp[:, 2] <= 1)).all()
    assert 0 <= p.box[0] < p.box[2] <= W and 0 <= p.box[1] < p.box[3] <= H
    ok = p.spin49[:, 2] > 0.5
    xy = p.spin49[ok, :2]
    assert ((xy >= p.box[:2] - 1) & (xy <= p.box[2:] + 1)).all()
    assert p.mask.shape == (H, W) and p.mask.dtype == np.float32
    assert 0.0 <= p.mask.min() and p.mask.max() <= 1.0


def test_astronaut_one_person(detector, astronaut):
    people = detector.detect(astronaut)
    assert len(people) == 1
    p = people[0]
    _check_person(p, astronaut.shape)
    nose, lsh, rsh = p.landmarks[0], p.landmarks[11], p.landmarks[12]
    assert nose[2] > 0.5 and lsh[2] > 0.5 and rsh[2] > 0.5
    # Image facts: face near (225, 125), shoulders around y ≈ 250, hips at the bottom edge.
    assert 180 < nose[0] < 270 and 80 < nose[1] < 170
    assert nose[1] < min(lsh[1], rsh[1])
    hips_y = p.landmarks[[23, 24], 1]
    assert max(lsh[1], rsh[1]) < hips_y.min()
    assert rsh[0] < nose[0] < lsh[0]          # subject's right shoulder on image left
    assert p.mask[125, 225] > 0.5 and p.mask[250, 470] < 0.5
    assert p.body25[1, 1] > nose[1]           # neck below nose
    crop = crop_person(astronaut, p)
    assert crop.image.shape == (224, 224, 3)


def test_blank_image_no_people(detector):
    assert detector.detect(np.zeros((240, 320, 3), np.uint8)) == []
    assert detector.detect(np.full((200, 200), 255, np.uint8)) == []


def test_two_people_side_by_side(detector, astronaut):
    two = np.concatenate([astronaut, astronaut], axis=1)
    people = detector.detect(two)
    assert len(people) == 2
    for p in people:
        _check_person(p, two.shape)
    noses = sorted(p.landmarks[0, 0] for p in people)
    assert noses[0] < 512 < noses[1]
    assert abs(noses[1] - noses[0] - 512) < 40
    assert people[0].area >= people[1].area


def test_large_image_downscaled_and_mapped_back(detector, astronaut):
    import cv2
    big = cv2.resize(astronaut, (1536, 1536), interpolation=cv2.INTER_LINEAR)
    p = detector.detect(big)[0]
    small = detector.detect(astronaut)[0]
    assert p.mask.shape == (1536, 1536)
    both = (p.landmarks[:, 2] > 0.5) & (small.landmarks[:, 2] > 0.5)
    assert both.sum() >= 10
    err = np.linalg.norm(p.landmarks[both, :2] / 3 - small.landmarks[both, :2], axis=1)
    assert np.median(err) < 6.0


def test_detect_people_api(astronaut):
    pytest.importorskip("mediapipe")
    from core.detect import detect_people
    people = detect_people(astronaut.astype(np.uint16) * 257, with_masks=False)
    assert len(people) == 1 and people[0].mask is None
    assert detect_people(np.zeros((100, 100, 3), np.uint8), with_masks=False) == []


def test_merge_duplicates_keeps_best_and_distinct():
    from core.detect.mediapipe_pose import _make_person, _merge_duplicates
    lm = np.zeros((33, 3))
    lm[:, 0] = np.linspace(100, 200, 33)
    lm[:, 1] = np.linspace(50, 350, 33)
    lm[:, 2] = 0.9
    full = _make_person(lm, lm[:, 2], np.ones(33), None, None, (400, 800))
    cut_lm = lm.copy()
    cut_lm[20:, 2] = 0.0                       # the same person cut by a window edge
    cut_lm[:20, :2] += 3.0                     # slightly different estimate
    cut = _make_person(cut_lm, cut_lm[:, 2], np.ones(33), None, None, (400, 800))
    other_lm = lm + [400, 0, 0]                # a second person 400 px to the right
    other = _make_person(other_lm, other_lm[:, 2], np.ones(33), None, None, (400, 800))
    kept = _merge_duplicates([cut, other, full])
    assert len(kept) == 2
    assert any(k is full for k in kept) and any(k is other for k in kept)


def test_max_people_and_model_path(tmp_path, astronaut):
    pytest.importorskip("mediapipe")
    bundle = tmp_path / "pose.task"
    bundle.write_bytes(mediapipe_pose.pose_landmarker_bundle())
    two = np.concatenate([astronaut, astronaut], axis=1)
    with mediapipe_pose.MediapipePoseDetector(max_people=1, model_path=str(bundle)) as det:
        assert len(det.detect(two)) == 1
    with pytest.raises(RuntimeError, match="closed"):
        det.detect(two)
    with pytest.raises(FileNotFoundError):
        mediapipe_pose.MediapipePoseDetector(model_path=str(tmp_path / "none.task"))
    with pytest.raises(ValueError, match="max_people"):
        mediapipe_pose.MediapipePoseDetector(max_people=0)


@pytest.mark.skipif(not (REAL_OPENPOSE.is_file() and REAL_OPENPOSE.with_name("spin_im1010.jpg").is_file()),
                    reason="shared example not available")
def test_mediapipe_agrees_with_real_openpose(detector):
    import cv2
    img = cv2.imread(str(REAL_OPENPOSE.with_name("spin_im1010.jpg")))[:, :, ::-1]
    mp_person = detector.detect(img)[0]
    op_person = people_from_openpose(REAL_OPENPOSE, img.shape)[0]
    both = (mp_person.body25[:, 2] > 0.3) & (op_person.body25[:, 2] > 0.3)
    assert both.sum() >= 12
    dist = np.linalg.norm(mp_person.body25[both, :2] - op_person.body25[both, :2], axis=1)
    assert np.median(dist) < 6.0          # measured 2.3 px on a 118 px tall person
    assert dist.max() < 15.0              # no left/right swap

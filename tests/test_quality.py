"""core.quality: the good / doubtful / failed verdict on a trace's final step."""
import numpy as np
import pytest

from core.quality import FAILED_PX, GOOD_PX, QualityVerdict, assess_trace
from core.trace import Step, Trace


def _trace(err=3.0, z=3.0, side=224, conf=None, kp_xy=None, finite=True):
    v = np.random.default_rng(0).normal(size=(100, 3)) * 0.3 + np.array([0, 0, z])
    if not finite:
        v[5] = np.nan
    kp = np.zeros((49, 3))
    kp[:25, :2] = side / 2 if kp_xy is None else kp_xy
    kp[:25, 2] = 0.9 if conf is None else conf
    return Trace("m", np.zeros((side, side, 3), np.uint8), {}, [Step("s", vertices=v, losses={"keypoints_2d_px": err})],
                 target_keypoints=kp)


def test_good_doubtful_failed_by_keypoint_error():
    assert assess_trace(_trace(GOOD_PX - 1)).level == "good"
    q = assess_trace(_trace(GOOD_PX + 4))
    assert q.level == "doubtful" and "14.0 px on a 224 crop" in q.reasons[0]
    q = assess_trace(_trace(56.0))                 # the cut-off person, reported "Done" before
    assert q.level == "failed" and "does not match the keypoints" in q.reasons[0]
    q = assess_trace(_trace(300.0))
    assert q.level == "failed" and "larger than the crop" in q.reasons[0]
    # errors are judged on the 224 scale: 20 px on a 448 crop is 10 px on 224
    assert assess_trace(_trace(2 * GOOD_PX - 1, side=448)).level == "good"
    assert assess_trace(_trace(FAILED_PX + 1)).level == "failed"


def test_mesh_behind_the_camera_or_invalid_fails():
    assert assess_trace(_trace(z=-3.0)).reasons == ("the mesh is behind the camera",)
    assert "non-finite" in assess_trace(_trace(finite=False)).reasons[0]
    assert assess_trace(_trace(err=float("nan"))).level == "failed"


def test_keypoint_problems_make_a_result_doubtful():
    conf = np.full(25, 0.9)
    conf[[10, 11, 13, 14]] = 0.0                   # knees and ankles out of the frame
    q = assess_trace(_trace(conf=conf))
    assert q.level == "doubtful" and "4 of 12 limb joints are not visible" in q.reasons[0]
    assert "cut by the frame" in q.reasons[0]
    conf = np.full(25, 0.9)
    conf[3] = 300.0
    assert "implausible confidences (up to 300" in assess_trace(_trace(conf=conf)).reasons[0]
    xy = np.full((25, 2), 112.0)
    xy[:3] = 900.0
    assert "3 confident keypoints lie far outside the crop" in assess_trace(_trace(kp_xy=xy)).reasons[0]


def test_meta_round_trip_and_old_traces(tmp_path):
    q = assess_trace(_trace(15.0))
    t = _trace(15.0)
    t.meta["quality"] = q.to_meta()
    t.save(tmp_path / "t.npz")
    back = QualityVerdict.from_meta(Trace.load(tmp_path / "t.npz").meta["quality"])
    assert back == q and back.summary.startswith("doubtful: 2D keypoint error 15.0 px")
    assert QualityVerdict.from_meta(None) is None and QualityVerdict.from_meta({"level": "great"}) is None


@pytest.mark.parametrize("err,kind", [(2.0, "studio-ok"), (15.0, "studio-warn"), (80.0, "studio-err")])
def test_the_studio_status_shows_the_verdict(err, kind):
    from studio.app import _done_box

    t = _trace(err)
    t.meta["quality"] = assess_trace(t).to_meta()
    box = _done_box("<b>m</b>, 1 steps", t)
    assert f'class="{kind}"' in box
    assert ("failed the quality checks" in box) == (kind == "studio-err") and ("doubtful" in box) == (kind == "studio-warn")

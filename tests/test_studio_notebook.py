"""The Jupyter inspector (ipywidgets) driven from code: run selector, step slider, 3D yaw."""
from __future__ import annotations

import numpy as np
import pytest

from tests.test_studio_support import body_trace

pytest.importorskip("ipywidgets")


def _decode(png: bytes) -> np.ndarray:
    import cv2

    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)


def test_inspector_follows_the_slider_and_the_run_selector():
    from studio.notebook import TraceInspector

    a, b = body_trace(n_steps=4), body_trace(n_steps=2, with_maps=False, method="other")
    ins = TraceInspector([a, b], size=160, renderer="raycast", view3d="image")
    assert ins.renderer == "raycast" and ins.run.options == ("test_body", "other")
    assert ins.run.value == "other" and ins.step.max == 1  # the last run, at its last step
    ins.run.value = "test_body"
    assert ins.step.max == 3 and ins.play.max == 3
    ins.step.value = 3
    last = ins.overlay.value
    assert "Step 3 of 3: test step 3" in ins.info.value and len(ins.maps.children) >= 5
    ins.step.value = 0
    assert "Step 0 of 3" in ins.info.value and ins.overlay.value != last and len(ins.maps.children) == 0
    img = _decode(ins.overlay.value)
    assert img.shape == (160, 160, 3)
    before = ins.view3d.value
    ins.yaw.value = 0
    assert ins.view3d.value != before and _decode(ins.view3d.value).shape == (160, 160, 3)
    assert _decode(ins.plot.value).shape[1] > 300
    ins.close()


def test_inspector_input_checks():
    from studio.notebook import TraceInspector

    from core.trace import Trace

    with pytest.raises(TypeError):
        TraceInspector([1, 2])
    with pytest.raises(ValueError, match="no steps"):
        TraceInspector(Trace("empty"))
    with pytest.raises(ValueError, match="renderer"):
        TraceInspector(body_trace(), renderer="opengl")


def _silhouette(img: np.ndarray) -> np.ndarray:
    from studio.views import BACKGROUND_3D

    return np.abs(img.astype(int) - np.array(BACKGROUND_3D)).sum(-1) > 6


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_pyvista_frames_follow_the_step_and_yaw_and_match_the_ray_caster():
    """Every pyvista frame is rendered anew (its screenshot() only rendered the first frame:
    step 0 and step 3, yaw +90° and −90° gave one identical picture), with the ray
    caster's camera: the two silhouettes agree (IoU ≥ 0.85 at 160 px; mirrored, less)."""
    from studio.notebook import TraceInspector, pyvista_available

    if not pyvista_available():
        pytest.skip("pyvista cannot render off-screen on this machine (no OpenGL context); "
                    "the inspector falls back to the ray caster")
    tr = body_trace(n_steps=4)
    pv = TraceInspector(tr, size=160, renderer="auto", view3d="image")
    rc = TraceInspector(tr, size=160, renderer="raycast", view3d="image")
    assert pv.renderer == "pyvista"
    frames = {(s, y): pv.render_3d(s, y) for s, y in [(0, 90), (3, 90), (3, 0), (3, -90), (3, 45)]}
    keys = list(frames)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            assert not np.array_equal(frames[a], frames[b]), (a, b)
    for (s, y), img in frames.items():
        ref = _silhouette(rc.render_3d(s, y))
        got = _silhouette(img)
        assert _iou(got, ref) >= 0.85, ((s, y), _iou(got, ref))
        if y in (90, -90):
            assert _iou(got, ref[:, ::-1]) < _iou(got, ref)
    before = pv.view3d.value
    pv.step.value = 0
    mid = pv.view3d.value
    pv.yaw.value = -90
    assert len({before, mid, pv.view3d.value}) == 3       # the widget's image changes each time
    pv.close()
    rc.close()


def test_the_interactive_view_sends_a_new_scene_per_step_and_yaw():
    """The vtk.js view (pyvista's html backend) gets a new scene when the step, the yaw or
    the run changes; its title says it is interactive."""
    from studio.notebook import TraceInspector, interactive_available

    if not interactive_available():
        pytest.skip("the interactive view needs VTK off-screen rendering and pyvista[jupyter]")
    ins = TraceInspector([body_trace(n_steps=3), body_trace(n_steps=2, method="other")], size=160)
    assert ins.view3d_mode == "interactive" and "interactive" in ins.widget.children[2].children[2].children[0].value
    scenes = [ins.scene3d.scene]
    ins.step.value = 0
    scenes.append(ins.scene3d.scene)
    ins.yaw.value = 0
    scenes.append(ins.scene3d.scene)
    ins.run.value = "test_body"
    scenes.append(ins.scene3d.scene)
    assert len(set(scenes)) == 4 and all(len(s) > 10_000 for s in scenes)
    with pytest.raises(ValueError, match="view3d"):
        TraceInspector(body_trace(), view3d="webgl")
    ins.close()

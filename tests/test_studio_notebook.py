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
    ins = TraceInspector([a, b], size=160, renderer="raycast")
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


@pytest.mark.slow
def test_inspector_with_pyvista_when_it_renders_here():
    from studio.notebook import TraceInspector, pyvista_available

    if not pyvista_available():
        pytest.skip("pyvista cannot render off-screen on this machine (no OpenGL context); "
                    "the inspector falls back to the ray caster")
    ins = TraceInspector(body_trace(), size=128, renderer="auto")
    assert ins.renderer == "pyvista"
    img = _decode(ins.view3d.value)
    assert img.shape == (128, 128, 3) and img.std() > 5
    ins.close()

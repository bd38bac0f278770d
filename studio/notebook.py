"""A Jupyter inspector over traces (ipywidgets): step slider, method selector, images, 3D.

>>> from studio.notebook import TraceInspector
>>> TraceInspector({"smplify": trace, "pymaf": other})      # displays itself in a notebook

Widgets: a run selector (one entry per trace), a step slider with a ▶ play button, the
mesh over the crop, target vs projected keypoints, the step's maps (IUV, features …),
a loss plot with the current step marked, and a 3D view turned by a yaw slider.

3D view, the best the environment allows (``view3d_mode`` says which, and so does the
panel's title):

* ``"interactive"`` — the step's mesh as a vtk.js scene you orbit (drag) and zoom (wheel)
  in the notebook: pyvista's ``html`` Jupyter backend (trame-pyvista's ``EmbeddableWidget``
  and the viewer page bundled with trame-vtk). The scene is exported by a trame server that
  pyvista starts inside the kernel; the browser only receives the scene through the widget
  (it never connects to that server, so remote notebooks work), and nothing is downloaded. It
  needs ``pip install "pyvista[jupyter]"`` (trame, trame-vtk, trame-pyvista, anywidget)
  and VTK rendering off-screen; each step or yaw change sends a new scene, which restarts
  the view from that yaw;
* ``"image"`` — a picture rendered off-screen with pyvista (VTK), or, without an OpenGL
  context (headless servers), with the studio's CPU ray caster
  (:func:`studio.views.side_view`), the same picture without VTK; ``renderer`` says which.
"""
from __future__ import annotations

import base64
import contextlib
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from core.trace import Trace

from .maps import map_panels
from .plots import figure_to_image, loss_figure
from .shading import look_at_camera
from .views import (BACKGROUND_3D, ViewSettings, framing_radius, keypoints_image, overlay_image, side_view,
                    trace_vertex_colors)

__all__ = ["TraceInspector", "png_bytes", "pyvista_available", "interactive_available"]

TraceSet = Union[Trace, Sequence[Trace], Mapping[str, Trace]]


def png_bytes(rgb: np.ndarray) -> bytes:
    """(H, W, 3) uint8 → PNG bytes."""
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


_PYVISTA_OK: Optional[bool] = None


def pyvista_available() -> bool:
    """Whether pyvista can render off-screen here (checked once, with a tiny scene)."""
    global _PYVISTA_OK
    if _PYVISTA_OK is None:
        try:
            import pyvista as pv
            import vtk

            vtk.vtkObject.GlobalWarningDisplayOff()   # "bad X server connection" on headless machines
            p = pv.Plotter(off_screen=True, window_size=(32, 32))
            p.add_mesh(pv.Sphere())
            img = p.screenshot(return_img=True)
            p.close()
            _PYVISTA_OK = img is not None and img.shape[:2] == (32, 32) and float(img.std()) > 0
        except Exception:  # noqa: BLE001 - any VTK/driver failure means "fall back"
            _PYVISTA_OK = False
    return _PYVISTA_OK


def interactive_available() -> bool:
    """Whether the interactive 3D view can be used: pyvista renders here and the packages of
    pyvista's ``html`` Jupyter backend (trame-pyvista, anywidget) are installed."""
    try:
        import anywidget  # noqa: F401
        import trame_pyvista.jupyter  # noqa: F401
    except ImportError:
        return False
    return pyvista_available()


def _as_dict(traces: TraceSet) -> dict[str, Trace]:
    if isinstance(traces, Trace):
        out = {traces.method: traces}
    elif isinstance(traces, Mapping):
        out = dict(traces)
    else:
        out = {}
        for t in traces:
            if not isinstance(t, Trace):
                raise TypeError(f"TraceInspector needs Traces, got a {type(t).__name__} in the list")
            key, k = t.method, 2
            while key in out:
                key, k = f"{t.method} ({k})", k + 1
            out[key] = t
    if not out or not all(isinstance(t, Trace) for t in out.values()):
        raise TypeError("TraceInspector needs a Trace, a list of Traces or a dict name → Trace")
    for name, t in out.items():
        if not t.steps:
            raise ValueError(f"trace {name!r} has no steps")
    return out


@contextlib.contextmanager
def _offline_trame():
    """trame's exporter starts a local trame server whose ``trame-vtklocal`` module would try
    to download VTK's WebAssembly build from the internet (unused by the exported scene):
    point it at an empty folder instead, and keep its messages out of the notebook."""
    import io
    import os
    import tempfile

    key = "VTK_WASM_DIR_OVERRIDE"
    old = os.environ.get(key)
    if old is None:
        os.environ[key] = os.path.join(tempfile.gettempdir(), "hmr-studio-no-vtk-wasm")
        os.makedirs(os.environ[key], exist_ok=True)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        if old is None:
            os.environ.pop(key, None)


class _PyvistaView:
    """One off-screen pyvista plotter reused for every frame, with the camera of the ray
    caster's view (:func:`studio.shading.look_at_camera`: the mesh turned about its centre,
    framed by the trace's framing radius, 20° field of view), so both renderers show the
    same picture."""

    FOV_DEG = 20.0

    def __init__(self, size: int):
        import pyvista as pv

        self.pv = pv
        self.size = size
        self.plotter = pv.Plotter(off_screen=True, window_size=(size, size))
        self.plotter.set_background(tuple(c / 255.0 for c in BACKGROUND_3D))
        self.mesh = None
        self.key = None

    def show(self, trace: Trace, index: int, yaw: float) -> None:
        """Put step ``index`` turned by ``yaw`` in the plotter and render it (``screenshot()``
        renders only on its first call; without rendering every later picture repeated the
        first one: the frozen 3D panel)."""
        pv = self.pv
        moved, _ = look_at_camera(trace.steps[index].vertices, yaw, 0.0, self.size,
                                  half_extent=framing_radius(trace), fov_deg=self.FOV_DEG)
        pts = np.asarray(moved, np.float64)   # camera frame: x right, y down, z forward
        key = (id(trace), len(pts))
        if self.key != key:
            self.plotter.clear()
            faces = np.hstack([np.full((len(trace.faces), 1), 3), trace.faces]).astype(np.int64)
            self.mesh = pv.PolyData(pts, faces)
            colors = trace_vertex_colors(trace, True)
            if colors is not None:
                self.mesh.point_data["rgb"] = (colors * 255).astype(np.uint8)
                self.plotter.add_mesh(self.mesh, scalars="rgb", rgb=True, smooth_shading=True)
            else:
                self.plotter.add_mesh(self.mesh, color=(0.62, 0.74, 0.92), smooth_shading=True)
            self.key = key
        else:
            self.mesh.points = pts
        cam = self.plotter.camera
        cam.position, cam.focal_point, cam.up = (0.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, -1.0, 0.0)
        cam.view_angle = self.FOV_DEG
        self.plotter.reset_camera_clipping_range()
        self.plotter.render()

    def render(self, trace: Trace, index: int, yaw: float) -> np.ndarray:
        """(size, size, 3) uint8 picture of the step."""
        self.show(trace, index, yaw)
        return np.asarray(self.plotter.screenshot(return_img=True))[..., :3].copy()

    def scene(self, trace: Trace, index: int, yaw: float) -> bytes:
        """The step as a vtk.js scene (``.vtksz`` bytes) for the interactive view."""
        self.show(trace, index, yaw)
        with _offline_trame():
            return self.plotter.trame.export_vtksz(filename=None)

    def close(self) -> None:
        self.plotter.close()


class TraceInspector:
    """ipywidgets inspector over one or several traces.

    Args:
        traces: a Trace, a list of Traces, or a dict name → Trace.
        size: long side of the images (pixels).
        renderer: pictures by "auto" (pyvista if it renders here, else the ray caster),
            "pyvista" or "raycast".
        view3d: "auto" (interactive where :func:`interactive_available`, else images),
            "interactive" or "image".

    Attributes:
        widget: the root ipywidgets box (displayed by Jupyter).
        renderer: the picture renderer in use ("pyvista" or "raycast").
        view3d_mode: "interactive" (vtk.js scene in :attr:`scene3d`) or "image" (PNG in
            :attr:`view3d`).
        run, step, yaw: the selector widgets (set ``.value`` to drive it from code).
    """

    def __init__(self, traces: TraceSet, size: int = 320, renderer: str = "auto", view3d: str = "auto"):
        import ipywidgets as w

        if renderer not in ("auto", "pyvista", "raycast"):
            raise ValueError(f"renderer must be 'auto', 'pyvista' or 'raycast', got {renderer!r}")
        if view3d not in ("auto", "interactive", "image"):
            raise ValueError(f"view3d must be 'auto', 'interactive' or 'image', got {view3d!r}")
        self.traces = _as_dict(traces)
        self.settings = ViewSettings(size=size, side_size=size)
        if view3d == "auto":
            view3d = "interactive" if interactive_available() else "image"
        elif view3d == "interactive" and not interactive_available():
            raise RuntimeError("the interactive 3D view needs VTK off-screen rendering and "
                               "pip install \"pyvista[jupyter]\" (trame-pyvista, anywidget); use view3d='image'")
        self.view3d_mode = view3d
        if renderer == "auto":
            renderer = "pyvista" if view3d == "interactive" or pyvista_available() else "raycast"
        self.renderer = renderer
        self._pv = _PyvistaView(size) if renderer == "pyvista" or view3d == "interactive" else None
        self.scene3d = None
        self._scene_key: Optional[tuple] = None   # (run, step, yaw) of the scene the widget holds

        names = list(self.traces)
        self.run = w.Dropdown(options=names, value=names[-1], description="Run")
        n = len(self.traces[names[-1]].steps)
        self.step = w.IntSlider(value=n - 1, min=0, max=max(n - 1, 0), description="Step",
                                continuous_update=True, layout=w.Layout(width="420px"))
        self.play = w.Play(value=n - 1, min=0, max=max(n - 1, 0), interval=300)
        w.jslink((self.play, "value"), (self.step, "value"))
        self.yaw = w.IntSlider(value=90, min=-180, max=180, step=15, description="3D yaw°")
        img = lambda: w.Image(format="png", layout=w.Layout(width=f"{size}px"))  # noqa: E731
        self.overlay, self.keypoints, self.view3d = img(), img(), img()
        if view3d == "interactive":
            from trame_pyvista.jupyter import EmbeddableWidget

            # the widget exports the plotter's scene itself: set it up, do not export it here too
            self._pv.show(self.traces[names[-1]], n - 1, self.yaw.value)
            with _offline_trame():
                self.scene3d = EmbeddableWidget(self._pv.plotter, width=size, height=size)
            self._scene_key = (names[-1], n - 1, self.yaw.value)
            title3d = "3D — interactive: drag to orbit, scroll to zoom (vtk.js)"
            panel3d = self.scene3d
        else:
            title3d = f"3D — image ({self.renderer})"
            panel3d = self.view3d
        self.plot = w.Image(format="png", layout=w.Layout(width=f"{2 * size}px"))
        self.maps = w.HBox([])
        self.info = w.HTML()
        self.badge = w.HTML()

        def captioned(widget, text):
            return w.VBox([w.HTML(f"<b>{text}</b>"), widget])

        self.widget = w.VBox([
            w.HBox([self.run, self.play, self.step]),
            self.badge,
            w.HBox([captioned(self.overlay, "Mesh on the crop"),
                    captioned(self.keypoints, "Targets (green) vs projection (red)"),
                    w.VBox([w.HTML(f"<b>{title3d}</b>"), panel3d, self.yaw])]),
            self.info,
            captioned(self.maps, "Maps of this step"),
            captioned(self.plot, "Losses"),
        ])
        self.run.observe(self._on_run, names="value")
        self.step.observe(lambda ch: self.update(), names="value")
        self.yaw.observe(lambda ch: self._update_3d(), names="value")
        self.update()

    # ------------------------------------------------------------------ updates
    @property
    def trace(self) -> Trace:
        """The trace shown."""
        return self.traces[self.run.value]

    def _on_run(self, change) -> None:
        n = len(self.trace.steps)
        self.step.max = self.play.max = max(n - 1, 0)
        self.step.value = min(self.step.value, n - 1)
        self.update()

    def render_3d(self, index: int, yaw: float) -> np.ndarray:
        """The 3D view image of step ``index`` turned by ``yaw`` degrees."""
        tr = self.trace
        if tr.steps[index].vertices is None or tr.faces is None or not np.isfinite(tr.steps[index].vertices).all():
            return np.full((self.settings.side_size,) * 2 + (3,), 245, np.uint8)
        if self._pv is not None:
            return self._pv.render(tr, index, yaw)
        return side_view(tr, index, yaw_deg=yaw, settings=self.settings,
                         vertex_colors=trace_vertex_colors(tr, True))

    def _update_3d(self) -> None:
        if self.scene3d is not None:
            tr, i = self.trace, self.step.value
            key = (self.run.value, i, self.yaw.value)
            if key == self._scene_key:   # e.g. the first update after __init__: already exported
                return
            if tr.steps[i].vertices is not None and tr.faces is not None and np.isfinite(tr.steps[i].vertices).all():
                self.scene3d.scene = base64.b64encode(self._pv.scene(tr, i, self.yaw.value)).decode("ascii")
                self._scene_key = key
            return
        self.view3d.value = png_bytes(self.render_3d(self.step.value, self.yaw.value))

    def update(self) -> None:
        """Redraw everything for the current run and step."""
        tr, i = self.trace, self.step.value
        st = tr.steps[i]
        self.overlay.value = png_bytes(overlay_image(tr, i, self.settings))
        self.keypoints.value = png_bytes(keypoints_image(tr, i, self.settings))
        self._update_3d()
        rows = "".join(f"<tr><td>{k}</td><td>{v:.4g}</td></tr>" for k, v in st.losses.items())
        self.info.value = (f"<b>Step {i} of {len(tr.steps) - 1}: {st.label}</b>"
                           + (f"<table>{rows}</table>" if rows else ""))
        warn = tr.meta.get("warning")
        self.badge.value = f"<b style='color:#e8590c'>⚠ {warn}</b>" if warn else ""
        import ipywidgets as w

        self.maps.children = [w.VBox([w.HTML(cap), w.Image(value=png_bytes(img), format="png",
                                                             layout=w.Layout(width="220px"))])
                              for img, cap in map_panels(tr, i, ViewSettings(size=220))]
        self.plot.value = png_bytes(figure_to_image(loss_figure(tr, current=i, width_in=6.4)))

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def close(self) -> None:
        """Release the off-screen renderer and the widgets."""
        if self.scene3d is not None:
            self.scene3d.close()
        if self._pv is not None:
            self._pv.close()
        self.widget.close()

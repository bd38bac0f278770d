"""A Jupyter inspector over traces (ipywidgets): step slider, method selector, images, 3D.

>>> from studio.notebook import TraceInspector
>>> TraceInspector({"smplify": trace, "pymaf": other})      # displays itself in a notebook

Widgets: a run selector (one entry per trace), a step slider with a ▶ play button, the
mesh over the crop, target vs projected keypoints, the step's maps (IUV, features …),
a loss plot with the current step marked, and a 3D view turned by a yaw slider.

3D view: rendered off-screen with pyvista (VTK) when that works on the machine — VTK needs
an OpenGL context, which headless servers often lack — otherwise with the studio's CPU
ray caster (:func:`studio.views.side_view`), the same picture without VTK. ``renderer``
says which one is in use. Interactive orbiting in the notebook (pyvista's trame backend)
is not used: it needs a running trame server.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence, Union

import numpy as np

from core.trace import Trace

from .maps import map_panels
from .plots import figure_to_image, loss_figure
from .shading import look_at_camera
from .views import (BACKGROUND_3D, ViewSettings, framing_radius, keypoints_image, overlay_image, side_view,
                    trace_vertex_colors)

__all__ = ["TraceInspector", "png_bytes", "pyvista_available"]

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

            p = pv.Plotter(off_screen=True, window_size=(32, 32))
            p.add_mesh(pv.Sphere())
            img = p.screenshot(return_img=True)
            p.close()
            _PYVISTA_OK = img is not None and img.shape[:2] == (32, 32) and float(img.std()) > 0
        except Exception:  # noqa: BLE001 - any VTK/driver failure means "fall back"
            _PYVISTA_OK = False
    return _PYVISTA_OK


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

    def render(self, trace: Trace, index: int, yaw: float) -> np.ndarray:
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
        # screenshot() renders only on its first call; without this every later frame
        # repeated the first one (the frozen 3D panel)
        self.plotter.render()
        return np.asarray(self.plotter.screenshot(return_img=True))[..., :3].copy()

    def close(self) -> None:
        self.plotter.close()


class TraceInspector:
    """ipywidgets inspector over one or several traces.

    Args:
        traces: a Trace, a list of Traces, or a dict name → Trace.
        size: long side of the images (pixels).
        renderer: "auto" (pyvista if it renders here, else the ray caster), "pyvista" or
            "raycast".

    Attributes:
        widget: the root ipywidgets box (displayed by Jupyter).
        renderer: the 3D renderer in use ("pyvista" or "raycast").
        run, step, yaw: the selector widgets (set ``.value`` to drive it from code).
    """

    def __init__(self, traces: TraceSet, size: int = 320, renderer: str = "auto"):
        import ipywidgets as w

        if renderer not in ("auto", "pyvista", "raycast"):
            raise ValueError(f"renderer must be 'auto', 'pyvista' or 'raycast', got {renderer!r}")
        self.traces = _as_dict(traces)
        self.settings = ViewSettings(size=size, side_size=size)
        if renderer == "auto":
            renderer = "pyvista" if pyvista_available() else "raycast"
        self.renderer = renderer
        self._pv = _PyvistaView(size) if renderer == "pyvista" else None

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
                    w.VBox([w.HTML(f"<b>3D ({self.renderer})</b>"), self.view3d, self.yaw])]),
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
        if self._pv is not None:
            self._pv.close()
        self.widget.close()

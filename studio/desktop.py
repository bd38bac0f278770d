"""The desktop 3D window (Open3D's GUI: a ``SceneWidget`` and a side panel): a trace's meshes
step by step in front of the photo.

:func:`build_scene` turns a :class:`~core.trace.Trace` into a list of named Open3D
geometries — pure data, testable without a window:

* ``photo``: the crop as a textured quad behind the person, placed so that seen from the
  trace's camera it lines up with the meshes;
* ``step 007 · SMPLify body 30/100``: one vertex-coloured mesh per (selected) step;
* ``targets``: the target 2D keypoints as green dots on the photo, with a skeleton;
* ``joints 007``: the step's projected joints as red dots on the photo.

Everything is in the viewer frame of :mod:`studio.export` (y up, centred on the final mesh).

:func:`run_desktop` opens the window (:class:`StepWindow`), first seen from the trace's own
camera (the mesh on the person, the photo filling the view): a step slider, Prev/Play/Next
buttons and the keys Left/Right, Home/End and Space step through the meshes while the
photo and targets stay; photo and keypoints can be hidden; the title names the step.
:func:`window_unavailable_reason` says in one line why no window can open (no display,
< 24-bit colour, no Vulkan). :func:`render_offscreen` renders the same scene to an image
without a window (Open3D's ``OffscreenRenderer``; needs a working EGL or Vulkan driver — on
Debian, ``mesa-vulkan-drivers``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from core.trace import Trace

from .export import image_plane, to_viewer_frame
from .views import trace_intrinsics, trace_vertex_colors

__all__ = ["SceneItem", "DesktopScene", "build_scene", "render_offscreen", "run_desktop", "select_steps",
           "window_unavailable_reason"]

TARGET_RGB = (0.16, 0.78, 0.31)
PROJECTED_RGB = (0.92, 0.24, 0.2)
MESH_RGB = (0.62, 0.74, 0.92)


@dataclass
class SceneItem:
    """One named geometry of the desktop scene.

    Attributes:
        name: unique name (shown in the settings panel).
        geometry: an ``open3d.geometry`` TriangleMesh or LineSet.
        kind: "mesh" (lit, vertex colours), "photo" (unlit, textured), "points" (unlit
            point cloud, coloured by ``color``) or "lines" (unlit line set).
        group: "photo", "meshes", "keypoints".
        step: the step index the item belongs to (shown only at that step), None = always.
        texture: (H, W, 3) uint8 for "photo".
        color: (r, g, b) in [0, 1] of a "points" item (its material's colour).
    """

    name: str
    geometry: object
    kind: str
    group: str
    step: Optional[int] = None
    texture: Optional[np.ndarray] = None
    color: Optional[tuple] = None


@dataclass
class DesktopScene:
    """The scene graph of a trace: items plus the steps it covers."""

    items: list[SceneItem]
    steps: list[int]
    labels: list[str]
    camera_fov_deg: float
    """Vertical field of view of the trace's crop camera (degrees)."""
    center: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def names(self, group: Optional[str] = None) -> list[str]:
        """Item names (of one group)."""
        return [it.name for it in self.items if group is None or it.group == group]

    def counts(self) -> dict[str, int]:
        """Number of items per group."""
        out: dict[str, int] = {}
        for it in self.items:
            out[it.group] = out.get(it.group, 0) + 1
        return out

    def visible_at(self, step: int) -> list[str]:
        """Names shown when the window is at ``step``: static items and that step's items."""
        return [it.name for it in self.items if it.step is None or it.step == step]

    def item(self, name: str) -> SceneItem:
        for it in self.items:
            if it.name == name:
                return it
        raise KeyError(f"no scene item named {name!r}; items: {self.names()}")


def select_steps(n: int, max_steps: int) -> list[int]:
    """All of ``range(n)`` when short, else ``max_steps`` evenly spaced (first and last kept)."""
    if n <= max_steps:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, max_steps).round().astype(int).tolist()))


def _point_cloud(points: np.ndarray) -> object:
    """The keypoints (N, 3) as a point cloud, drawn as round dots of the material's point
    size and colour. (Small sphere meshes kept Filament's SceneWidget from ever drawing the
    window on Mesa's llvmpipe — the black window.)"""
    import open3d as o3d

    return o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, np.float64)))


def _lines(points: np.ndarray, edges, color) -> Optional[object]:
    import open3d as o3d

    if not edges:
        return None
    ls = o3d.geometry.LineSet(o3d.utility.Vector3dVector(points), o3d.utility.Vector2iVector(np.asarray(edges)))
    ls.paint_uniform_color(color)
    return ls


def _on_plane(uv: np.ndarray, K: np.ndarray, depth: float) -> np.ndarray:
    """Crop pixels (N, 2) → camera-frame points on the plane Z = depth."""
    xy = (uv - K[:2, 2]) / np.diag(K)[:2] * depth
    return np.concatenate([xy, np.full((len(uv), 1), depth)], axis=1)


def _keypoint_items(points_px: np.ndarray, ok: np.ndarray, K: np.ndarray, depth: float, center: np.ndarray,
                    color, name: str, step: Optional[int]) -> list[SceneItem]:
    from core.body.joint_names import BODY25_EDGES

    if not ok.any():
        return []
    idx = np.flatnonzero(ok)
    pts = to_viewer_frame(_on_plane(points_px[idx], K, depth), center).astype(np.float64)
    items = [SceneItem(name, _point_cloud(pts), "points", "keypoints", step, color=tuple(color))]
    if len(points_px) >= 25:
        pos = {j: k for k, j in enumerate(idx)}
        edges = [(pos[a], pos[b]) for a, b in BODY25_EDGES if a in pos and b in pos]
        ls = _lines(pts, edges, color)
        if ls is not None:
            items.append(SceneItem(f"{name} skeleton", ls, "lines", "keypoints", step))
    return items


def build_scene(trace: Trace, steps: Optional[Sequence[int]] = None, photo: bool = True,
                keypoints: bool = True, max_steps: int = 60) -> DesktopScene:
    """The trace as named Open3D geometries (no window needed).

    Args:
        trace: the trace.
        steps: step indices to include; None → up to ``max_steps`` evenly spaced ones.
        photo: include the crop as a textured quad behind the person.
        keypoints: include target keypoints and each step's projected joints.
        max_steps: cap on meshes when ``steps`` is None.
    Returns:
        :class:`DesktopScene`.
    Raises:
        ValueError: the trace has no steps or no mesh faces.
    """
    import open3d as o3d

    if not trace.steps:
        raise ValueError(f"the trace of {trace.method!r} has no steps")
    if trace.faces is None:
        raise ValueError(f"the trace of {trace.method!r} has no mesh faces; nothing to show in 3D")
    n = len(trace.steps)
    chosen = select_steps(n, max_steps) if steps is None else sorted({int(s) % n for s in steps})
    finals = [i for i in chosen if trace.steps[i].vertices is not None and np.isfinite(trace.steps[i].vertices).all()]
    if not finals:
        raise ValueError("none of the chosen steps has a finite mesh")
    ref = trace.steps[finals[-1]].vertices.astype(np.float64)
    center = (ref.min(0) + ref.max(0)) / 2.0
    K, _ = trace_intrinsics(trace)
    zmax = max(float(trace.steps[i].vertices[:, 2].max()) for i in finals)
    zmin = min(float(trace.steps[i].vertices[:, 2].min()) for i in finals)
    depth = zmax + 0.05 * (zmax - zmin + 1e-3)
    colors = trace_vertex_colors(trace, True)
    faces = o3d.utility.Vector3iVector(np.asarray(trace.faces, np.int32))

    items: list[SceneItem] = []
    if photo and trace.crop is not None and depth > 0:
        plane = image_plane(trace.crop, K, depth)
        quad = o3d.geometry.TriangleMesh(
            o3d.utility.Vector3dVector(to_viewer_frame(plane.corners, center).astype(np.float64)),
            o3d.utility.Vector3iVector(np.array([[0, 3, 2], [0, 2, 1]], np.int32)))
        # per-corner UVs of triangles (TL, BL, BR) and (TL, BR, TR); Open3D's v grows upwards
        uv = np.array([[0.0, 1.0], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
        quad.triangle_uvs = o3d.utility.Vector2dVector(uv)
        quad.triangle_material_ids = o3d.utility.IntVector([0, 0])
        quad.compute_vertex_normals()
        items.append(SceneItem("photo", quad, "photo", "photo", None, texture=np.ascontiguousarray(trace.crop)))
    if keypoints and trace.target_keypoints is not None:
        tk = trace.target_keypoints
        ok = (tk[:, 2] > 0) & np.isfinite(tk[:, :2]).all(1)
        items += _keypoint_items(tk[:, :2], ok, K, depth, center, TARGET_RGB, "targets", None)
    width = len(str(n - 1))
    for i in chosen:
        st = trace.steps[i]
        if st.vertices is None or not np.isfinite(st.vertices).all():
            continue
        mesh = o3d.geometry.TriangleMesh(
            o3d.utility.Vector3dVector(to_viewer_frame(st.vertices, center).astype(np.float64)), faces)
        if colors is not None:
            mesh.vertex_colors = o3d.utility.Vector3dVector(colors.astype(np.float64))
        else:
            mesh.paint_uniform_color(MESH_RGB)
        mesh.compute_vertex_normals()
        items.append(SceneItem(f"step {i:0{width}d} · {st.label}", mesh, "mesh", "meshes", i))
        if keypoints and st.joints2d is not None:
            j = st.joints2d[:25] if len(st.joints2d) >= 25 else st.joints2d
            ok = np.isfinite(j).all(1) & (np.abs(j) < 1e5).all(1)
            items += _keypoint_items(j, ok, K, depth, center, PROJECTED_RGB,
                                     f"joints {i:0{width}d}", i)
    (h, _w) = trace_intrinsics(trace)[1]
    fov = float(np.degrees(2.0 * np.arctan2(h / 2.0, K[1, 1])))
    return DesktopScene(items, chosen, [trace.steps[i].label for i in chosen], camera_fov_deg=fov, center=center)


def _material(item: SceneItem):
    import open3d as o3d

    mat = o3d.visualization.rendering.MaterialRecord()
    if item.kind == "mesh":
        mat.shader = "defaultLit"
    elif item.kind == "photo":
        mat.shader = "defaultUnlit"
        mat.albedo_img = o3d.geometry.Image(item.texture)
    elif item.kind == "lines":
        mat.shader = "unlitLine"
        mat.line_width = 2.0
    else:
        mat.shader = "defaultUnlit"
        mat.base_color = (*(item.color or (1.0, 1.0, 1.0)), 1.0)
        mat.point_size = 9.0
    return mat


def _camera_for(scene: DesktopScene, aspect: float = 1.0):
    """The first view: from the trace's own camera, so the mesh lies on the person in the
    photo and mesh + photo fill the view (the photo plane's height fills the window; wider
    windows show margins). Returns (vertical fov in degrees, eye, look-at, up) in the viewer
    frame."""
    eye = to_viewer_frame(np.zeros((1, 3)), scene.center)[0].astype(np.float64)
    # look along the optical axis (through the crop's centre), at the mesh's depth
    target = to_viewer_frame(np.array([[0.0, 0.0, scene.center[2]]]), scene.center)[0].astype(np.float64)
    fov = scene.camera_fov_deg * 1.04 / min(1.0, aspect)  # a small margin; portrait windows widen
    return float(fov), eye, target, np.array([0.0, 1.0, 0.0])


def render_offscreen(scene: DesktopScene, step: Optional[int] = None, width: int = 640, height: int = 480
                     ) -> np.ndarray:
    """Render the scene at ``step`` (default: the last) to an (H, W, 3) uint8 image without a
    window.

    Raises:
        RuntimeError: Open3D cannot create an offscreen renderer here (no EGL/Vulkan driver).
    """
    import open3d as o3d

    step = scene.steps[-1] if step is None else step
    r = o3d.visualization.rendering.OffscreenRenderer(width, height)
    try:
        r.scene.set_background([0.96, 0.965, 0.975, 1.0])
        visible = set(scene.visible_at(step))
        for it in scene.items:
            if it.name in visible:
                r.scene.add_geometry(it.name, it.geometry, _material(it))
        fov, eye, target, up = _camera_for(scene, width / height)
        r.setup_camera(fov, target, eye, up)
        return np.asarray(r.render_to_image()).copy()
    finally:
        del r


def _x_display_depth(name: str) -> Optional[int]:
    """Colour depth of the X display ``name``'s default screen; None when it cannot be
    opened; -1 when libX11 is missing (then nothing is known and nothing is refused)."""
    import ctypes
    import ctypes.util

    lib = ctypes.util.find_library("X11")
    if not lib:
        return -1
    x11 = ctypes.CDLL(lib)
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XDefaultScreen.argtypes = [ctypes.c_void_p]
    x11.XDefaultDepth.argtypes = [ctypes.c_void_p, ctypes.c_int]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    display = x11.XOpenDisplay(name.encode())
    if not display:
        return None
    try:
        return int(x11.XDefaultDepth(display, x11.XDefaultScreen(display)))
    finally:
        x11.XCloseDisplay(display)


def window_unavailable_reason() -> Optional[str]:
    """Why Open3D's window cannot open here, in one line, or None when it should.

    Checked before Open3D is touched, because without a display it waits forever in
    headless mode and on an 8/16-bit display or without a Vulkan driver it aborts the
    process: no display (``DISPLAY``/``WAYLAND_DISPLAY`` unset), an X display that cannot be
    opened or has fewer than 24 bits of colour, no Vulkan loader (``libvulkan.so.1``).
    """
    import ctypes.util
    import os
    import sys

    hint = "; the web studio (python -m studio) or the notebook inspector work without one"
    if sys.platform.startswith("linux"):
        display, wayland = os.environ.get("DISPLAY", ""), os.environ.get("WAYLAND_DISPLAY", "")
        if not display and not wayland:
            return "no display: DISPLAY is not set (the desktop window needs a graphical session or Xvfb)" + hint
        if display and not wayland:
            depth = _x_display_depth(display)
            if depth is None:
                return f"cannot open the X display {display!r}" + hint
            if 0 < depth < 24:
                return (f"the X display {display!r} has {depth}-bit colour; Open3D's window needs 24-bit "
                        f"(e.g. Xvfb :1 -screen 0 1400x1000x24)")
        if not ctypes.util.find_library("vulkan"):
            return ("no Vulkan driver: Open3D's window renders with Vulkan "
                    "(Debian/Ubuntu: apt-get install libvulkan1 mesa-vulkan-drivers)")
    return None


KEYS_HELP = "Left/Right: previous/next step · Home/End: first/last · Space: play/pause"


class StepWindow:
    """The desktop window: an Open3D ``SceneWidget`` with the scene and a side panel (step
    label and slider, ◀ ▶ and play buttons, photo/keypoint toggles, the keyboard help).

    Keyboard (window-wide): Left/Right previous/next step, Home/End first/last, Space
    play/pause.
    The window title names the step shown. Mouse: Open3D's arcball (drag to orbit, wheel to
    zoom, right-drag to pan).

    Args:
        scene: the :func:`build_scene` result.
        title: window title prefix.
        size: window (width, height) in pixels.
    """

    PLAY_INTERVAL_S = 0.35

    def __init__(self, scene: DesktopScene, title: str, size: tuple[int, int] = (1280, 860)):
        import open3d as o3d

        gui, rendering = o3d.visualization.gui, o3d.visualization.rendering
        self.scene_data, self.title_prefix = scene, title
        self.window = gui.Application.instance.create_window(title, *size)
        em = self.window.theme.font_size
        self.widget = gui.SceneWidget()
        self.widget.scene = rendering.Open3DScene(self.window.renderer)
        self.widget.scene.set_background([0.96, 0.965, 0.975, 1.0])
        for it in scene.items:
            self.widget.scene.add_geometry(it.name, it.geometry, _material(it))
        fov, eye, target, up = _camera_for(scene, size[0] / size[1])
        self.widget.setup_camera(fov, self.widget.scene.bounding_box, target)
        self.widget.look_at(target, eye, up)

        self.panel = gui.Vert(0.5 * em, gui.Margins(em, em, em, em))
        self.label = gui.Label("")
        self.slider = gui.Slider(gui.Slider.INT)
        self.slider.set_limits(0, len(scene.steps) - 1)
        self.slider.set_on_value_changed(lambda v: self.show(int(round(v))))
        buttons = gui.Horiz(0.25 * em)
        for text, fn in (("< Prev", lambda: self.step_by(-1)), ("Play", self.toggle_play),
                         ("Next >", lambda: self.step_by(+1))):
            b = gui.Button(text)
            b.set_on_clicked(fn)
            buttons.add_child(b)
        self.photo_box = gui.Checkbox("Photo")
        self.keypoints_box = gui.Checkbox("Keypoints")
        for box in (self.photo_box, self.keypoints_box):
            box.checked = True
            box.set_on_checked(lambda _: self.show(self.index))
        for w in (gui.Label("Step"), self.label, self.slider, buttons, self.photo_box, self.keypoints_box,
                  gui.Label(KEYS_HELP.replace(" · ", "\n"))):
            self.panel.add_child(w)
        self.window.add_child(self.widget)
        self.window.add_child(self.panel)
        self.window.set_on_layout(self._layout)
        self.window.set_on_key(self._on_key)
        self.widget.set_on_key(self._on_key)
        self.window.set_on_tick_event(self._on_tick)
        self.playing, self._last_tick, self.index = False, 0.0, -1
        self.show(len(scene.steps) - 1)

    # ------------------------------------------------------------------ state
    def show(self, k: int) -> None:
        """Show step ``k`` (an index into ``scene.steps``)."""
        sc = self.scene_data
        k = int(np.clip(k, 0, len(sc.steps) - 1))
        visible = set(sc.visible_at(sc.steps[k]))
        for it in sc.items:
            on = it.name in visible
            if it.group == "photo":
                on = on and self.photo_box.checked
            elif it.group == "keypoints":
                on = on and self.keypoints_box.checked
            self.widget.scene.show_geometry(it.name, on)
        self.index = k
        self.slider.int_value = k
        text = f"step {sc.steps[k]}: {sc.labels[k]}"
        self.label.text = f"{k + 1}/{len(sc.steps)} · {text}"
        self.window.title = f"{self.title_prefix} — {text}"
        self.window.post_redraw()

    def step_by(self, delta: int) -> None:
        self.show(self.index + delta)

    def toggle_play(self) -> None:
        self.playing = not self.playing
        if self.playing and self.index >= len(self.scene_data.steps) - 1:
            self.show(0)

    # ------------------------------------------------------------------ events
    def _on_key(self, event):
        import open3d as o3d

        gui = o3d.visualization.gui
        if event.type != gui.KeyEvent.Type.DOWN:
            return gui.Widget.EventCallbackResult.IGNORED
        moves = {gui.KeyName.LEFT: lambda: self.step_by(-1), gui.KeyName.RIGHT: lambda: self.step_by(+1),
                 gui.KeyName.HOME: lambda: self.show(0),
                 gui.KeyName.END: lambda: self.show(len(self.scene_data.steps) - 1),
                 gui.KeyName.SPACE: self.toggle_play}
        if event.key in moves:
            moves[event.key]()
            return gui.Widget.EventCallbackResult.CONSUMED
        return gui.Widget.EventCallbackResult.IGNORED

    def _on_tick(self) -> bool:
        import time

        if not self.playing or time.monotonic() - self._last_tick < self.PLAY_INTERVAL_S:
            return False
        self._last_tick = time.monotonic()
        if self.index >= len(self.scene_data.steps) - 1:
            self.playing = False
            return False
        self.step_by(+1)
        return True

    def _layout(self, ctx) -> None:
        r = self.window.content_rect
        width = min(340, r.width // 3)
        self.widget.frame = type(r)(r.x, r.y, r.width - width, r.height)
        self.panel.frame = type(r)(r.get_right() - width, r.y, width, r.height)


def run_desktop(trace: Trace, title: Optional[str] = None, max_steps: int = 60) -> None:
    """Open the desktop window (:class:`StepWindow`) on a trace (blocks until it is closed).

    Raises:
        RuntimeError: no display / graphics driver (the message says what to try; see
            :func:`window_unavailable_reason`).
    """
    reason = window_unavailable_reason()
    if reason:
        raise RuntimeError(f"cannot open the 3D window: {reason}")
    import open3d as o3d

    scene = build_scene(trace, max_steps=max_steps)
    app = o3d.visualization.gui.Application.instance
    try:
        app.initialize()
    except Exception as e:  # noqa: BLE001 - turn Open3D's driver errors into one clear message
        raise RuntimeError(f"cannot open an Open3D window here ({e}); use a machine with a display, or the web "
                           f"studio (python -m studio)") from e
    window = StepWindow(scene, title or f"HMR Studio — {trace.method}")  # held while the app runs
    app.run()
    del window

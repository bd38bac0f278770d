"""Images of a :class:`~core.trace.Trace`: the views every front end shows.

Pure functions of a trace (and a step index) returning ``(H, W, 3)`` uint8 RGB arrays:

* :func:`overlay_image` — the step's mesh over the crop, seen through the trace's camera;
* :func:`side_view` — the mesh turned 90° (or any yaw/pitch), framed the same for all steps;
* :func:`keypoints_image` — target keypoints (green) vs the step's projected joints (red);
* :func:`step_strip` — one overlay per step (the strip of M0..M3, SMPLify/TTO steps …);
* :func:`compare_strip` — the final overlay of several traces on the same photo.

Mesh colours: part colours from the trace's body when its vertex count matches, else a
clay colour; :func:`trace_vertex_colors` picks them.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

from core.render import project_points
from core.trace import Step, Trace

from .shading import blend, look_at_camera, shade_mesh

__all__ = [
    "ViewSettings",
    "trace_intrinsics",
    "crop_display",
    "overlay_image",
    "side_view",
    "keypoints_image",
    "step_strip",
    "compare_strip",
    "trace_vertex_colors",
    "framing_radius",
    "label_image",
    "mesh_status",
    "full_image_intrinsics",
    "intrinsics_in_crop",
    "overlay_in_crop",
]

TARGET_COLOR = (40, 200, 80)
PROJECTED_COLOR = (235, 60, 50)
BACKGROUND_3D = (245, 246, 248)


@dataclass(frozen=True)
class ViewSettings:
    """How views are drawn.

    Attributes:
        size: long side of overlay images in pixels (the crop is upscaled to it).
        side_size: side of the square side/top views.
        alpha: mesh opacity over the photo.
        part_colors: colour the mesh by body part (needs the trace's body), else clay.
    """

    size: int = 448
    side_size: int = 320
    alpha: float = 0.85
    part_colors: bool = False


def _step(trace: Trace, index: int) -> Step:
    if not trace.steps:
        raise ValueError(f"trace of {trace.method!r} has no steps to show")
    if not -len(trace.steps) <= index < len(trace.steps):
        raise IndexError(f"step {index} out of range: the trace has {len(trace.steps)} steps")
    return trace.steps[index]


def _crop_size(trace: Trace) -> tuple[int, int]:
    if trace.crop is not None:
        return int(trace.crop.shape[0]), int(trace.crop.shape[1])
    res = trace.camera.get("img_res")
    if res is not None:
        r = np.atleast_1d(np.asarray(res)).astype(int)
        return (int(r[0]), int(r[-1]))
    return 224, 224


def trace_intrinsics(trace: Trace) -> tuple[np.ndarray, tuple[int, int]]:
    """The crop camera of a trace.

    Returns:
        K (3, 3) float64 and the crop size (H, W) it refers to. Uses ``camera["focal"]``
        (scalar or (fx, fy)) and ``camera["center"]`` (2,); missing entries fall back to
        SPIN's (f = 5000, centre of the crop).
    """
    h, w = _crop_size(trace)
    focal = np.atleast_1d(np.asarray(trace.camera.get("focal", 5000.0), dtype=np.float64)).reshape(-1)
    fx, fy = (focal[0], focal[0]) if focal.size == 1 else (focal[0], focal[1])
    center = np.asarray(trace.camera.get("center", (w / 2.0, h / 2.0)), dtype=np.float64).reshape(2)
    K = np.array([[fx, 0.0, center[0]], [0.0, fy, center[1]], [0.0, 0.0, 1.0]])
    return K, (h, w)


def full_image_intrinsics(trace: Trace) -> Optional[np.ndarray]:
    """The trace's camera expressed in full-image pixels, via the crop's box
    (``camera["bbox_center"]``, ``camera["bbox_scale"]``); None when the trace lacks them.

    Returns:
        (3, 3) K with ``K_full = A⁻¹ K_crop``, A the crop transform of
        :func:`core.geometry.get_crop_transform` for the crop's (H, W).
    """
    from core.geometry import get_crop_transform

    if "bbox_center" not in trace.camera or "bbox_scale" not in trace.camera:
        return None
    K, hw = trace_intrinsics(trace)
    M = np.vstack([get_crop_transform(np.asarray(trace.camera["bbox_center"], np.float64).reshape(2),
                                      float(np.asarray(trace.camera["bbox_scale"]).reshape(-1)[0]), hw),
                   [0.0, 0.0, 1.0]])
    return np.linalg.inv(M) @ K


def intrinsics_in_crop(trace: Trace, center, scale: float, res) -> Optional[np.ndarray]:
    """The trace's camera seen in another crop (``center``, ``scale``, ``res`` = (H, W)) of the
    same photo — e.g. to draw a CLIFF mesh (256×192 crop) over the studio's 224 crop."""
    from core.geometry import get_crop_transform

    K_full = full_image_intrinsics(trace)
    if K_full is None:
        return None
    M = np.vstack([get_crop_transform(np.asarray(center, np.float64).reshape(2), float(scale), res),
                   [0.0, 0.0, 1.0]])
    return M @ K_full


def _display_size(crop_hw: tuple[int, int], long_side: int) -> tuple[int, int]:
    h, w = crop_hw
    s = long_side / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def crop_display(trace: Trace, long_side: int = 448) -> np.ndarray:
    """The trace's crop upscaled to ``long_side`` (a neutral gray canvas when it has none)."""
    hw = _display_size(_crop_size(trace), long_side)
    if trace.crop is None:
        return np.full(hw + (3,), 200, np.uint8)
    return cv2.resize(trace.crop, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)


@functools.lru_cache(maxsize=4)
def _body_part_colors(body_name: str, num_vertices: int) -> Optional[np.ndarray]:
    """(V, 3) float colours per vertex from the body's DensePose parts, or None."""
    if body_name != "open":  # SMPL needs the user's folder; the trace alone cannot load it
        return None
    try:
        from core.body import load_body

        body = load_body(body_name)
    except Exception:  # noqa: BLE001 - colours are cosmetic
        return None
    if body.num_vertices != num_vertices:
        return None
    colors = np.asarray(body.part_colors, dtype=np.float32)[np.asarray(body.vertex_part)] / 255.0
    return colors


def trace_vertex_colors(trace: Trace, part_colors: bool = True) -> Optional[np.ndarray]:
    """(V, 3) RGB in [0, 1] for the trace's meshes: body-part colours if asked and known,
    else None (the renderer's clay colour)."""
    if not part_colors or not trace.steps or trace.final.vertices is None:
        return None
    return _body_part_colors(trace.body, int(trace.final.vertices.shape[0]))


def mesh_status(step: Step, K: np.ndarray, crop_hw: tuple[int, int]) -> str:
    """'' when the mesh projects into the crop, else a short reason (for captions)."""
    v = step.vertices
    if v is None:
        return "no mesh in this step"
    if not np.isfinite(v).all():
        return "mesh has NaN/inf vertices"
    z = v[:, 2]
    if not (z > 0).any():
        return "mesh is behind the camera"
    uv = project_points(v[None], K)[0]  # nan behind the camera: never inside
    h, w = crop_hw
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
    if not inside.any():
        return "mesh projects outside the crop"
    return ""


def overlay_image(trace: Trace, index: int = -1, settings: ViewSettings = ViewSettings(),
                  vertex_colors: Optional[np.ndarray] = None) -> np.ndarray:
    """Step ``index``'s mesh over the crop, through the trace's camera.

    Args:
        trace: the trace.
        index: step index (negative counts from the end).
        settings: sizes and opacity.
        vertex_colors: (V, 3) colours in [0, 1]; None → :func:`trace_vertex_colors`.
    Returns:
        (H, W, 3) uint8 with the long side ``settings.size`` (the crop's aspect ratio).
    """
    step = _step(trace, index)
    base = crop_display(trace, settings.size)
    if step.vertices is None or trace.faces is None:
        return base
    K, crop_hw = trace_intrinsics(trace)
    if vertex_colors is None:
        vertex_colors = trace_vertex_colors(trace, settings.part_colors)
    shaded = shade_mesh(step.vertices, trace.faces, K, crop_hw, base.shape[:2], vertex_colors=vertex_colors)
    return blend(base, shaded, settings.alpha)


def framing_radius(trace: Trace) -> float:
    """One framing radius for all steps of a trace: the median over steps of the largest
    bounding-box half-side (×1.05), so one diverged step does not shrink the others."""
    radii = []
    for s in trace.steps:
        if s.vertices is not None and np.isfinite(s.vertices).all():
            lo, hi = s.vertices.min(axis=0), s.vertices.max(axis=0)
            radii.append(float((hi - lo).max() / 2.0) * 1.05)
    return float(np.median(radii)) if radii else 1.0


def side_view(trace: Trace, index: int = -1, yaw_deg: float = 90.0, pitch_deg: float = 0.0,
              settings: ViewSettings = ViewSettings(), radius: Optional[float] = None,
              vertex_colors: Optional[np.ndarray] = None) -> np.ndarray:
    """The step's mesh turned by ``yaw``/``pitch`` about its centre (90° yaw = side view,
    90° pitch = top view) on a light background.

    Args:
        radius: framing radius; None → :func:`framing_radius` of the trace (constant over
            steps, so meshes keep their relative size).
    Returns:
        (side_size, side_size, 3) uint8.
    """
    step = _step(trace, index)
    size = settings.side_size
    canvas = np.empty((size, size, 3), np.uint8)
    canvas[:] = BACKGROUND_3D
    v = step.vertices
    if v is None or trace.faces is None or not np.isfinite(v).all():
        return canvas
    r = framing_radius(trace) if radius is None else radius
    moved, K = look_at_camera(v, yaw_deg, pitch_deg, size, half_extent=r)
    if vertex_colors is None:
        vertex_colors = trace_vertex_colors(trace, settings.part_colors)
    shaded = shade_mesh(moved, trace.faces, K, (size, size), vertex_colors=vertex_colors)
    return blend(canvas, shaded, 1.0)


def _draw_skeleton(img: np.ndarray, pts: np.ndarray, ok: np.ndarray, edges, color, radius: int,
                   thickness: int) -> None:
    for a, b in edges:
        if a < len(pts) and b < len(pts) and ok[a] and ok[b]:
            cv2.line(img, tuple(int(round(x)) for x in pts[a]), tuple(int(round(x)) for x in pts[b]),
                     color, thickness, cv2.LINE_AA)
    for p, good in zip(pts, ok):
        if good:
            cv2.circle(img, (int(round(p[0])), int(round(p[1]))), radius, color, -1, cv2.LINE_AA)


def keypoints_image(trace: Trace, index: int = -1, settings: ViewSettings = ViewSettings(),
                    min_conf: float = 0.0, with_mesh: bool = False) -> np.ndarray:
    """Target keypoints (green) vs the step's projected joints (red) on the crop.

    Draws OpenPose BODY_25 (SPIN-49's first 25 joints) skeletons when the keypoints are in
    SPIN's 49-joint order (else points only), and a thin gray line from each target to its
    projection, so the 2D error is visible joint by joint.

    Args:
        min_conf: targets with confidence ≤ this are not drawn.
        with_mesh: draw the mesh overlay underneath.
    """
    from core.body.joint_names import BODY25_EDGES

    step = _step(trace, index)
    img = overlay_image(trace, index, settings) if with_mesh else crop_display(trace, settings.size)
    img = np.ascontiguousarray(img)
    _, (h, w) = trace_intrinsics(trace)
    s = img.shape[1] / w
    radius = max(2, round(settings.size / 160))
    thick = max(1, round(settings.size / 300))
    tgt = trace.target_keypoints
    proj = step.joints2d
    tgt_ok = None
    if tgt is not None:
        tgt_ok = (tgt[:, 2] > min_conf) & np.isfinite(tgt[:, :2]).all(axis=1)
        if proj is not None and len(proj) == len(tgt):
            for a, b, good in zip(tgt[:, :2] * s, proj * s, tgt_ok):
                if good and np.isfinite(b).all():
                    cv2.line(img, tuple(int(round(x)) for x in a), tuple(int(round(x)) for x in b),
                             (150, 150, 150), 1, cv2.LINE_AA)
    n_draw = 25 if (tgt is None or len(tgt) == 49) and (proj is None or len(proj) == 49) else None
    if proj is not None:
        pts = proj[:n_draw] * s
        ok = np.isfinite(pts).all(axis=1) & (np.abs(pts) < 1e5).all(axis=1)
        if tgt_ok is not None and len(tgt_ok) == len(proj):
            ok &= tgt_ok[:n_draw] | ~tgt_ok.any()
        _draw_skeleton(img, pts, ok, BODY25_EDGES if n_draw else (), PROJECTED_COLOR, radius, thick)
    if tgt is not None:
        pts = tgt[:n_draw, :2] * s
        _draw_skeleton(img, pts, tgt_ok[:n_draw], BODY25_EDGES if n_draw else (), TARGET_COLOR, radius, thick)
    return img


def label_image(img: np.ndarray, text: str, color=(255, 255, 255)) -> np.ndarray:
    """A copy of ``img`` with ``text`` on a dark band at the top."""
    out = np.ascontiguousarray(img.copy())
    scale = max(0.4, out.shape[1] / 700)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    band = th + base + 8
    out[:band] = (out[:band].astype(np.float32) * 0.35).astype(np.uint8)
    cv2.putText(out, text, (6, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)
    return out


def _strip_indices(n: int, max_items: int) -> list[int]:
    """All steps when few, else evenly spaced ones always including the first and last."""
    if n <= max_items:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, max_items).round().astype(int).tolist()))


def step_strip(trace: Trace, max_items: int = 24, settings: ViewSettings = ViewSettings(size=256)
               ) -> list[tuple[np.ndarray, str]]:
    """One overlay per step (evenly subsampled to ``max_items``), each with its label.

    Returns:
        list of (image (H, W, 3) uint8, caption) in step order.
    """
    colors = trace_vertex_colors(trace, settings.part_colors)
    out = []
    for i in _strip_indices(len(trace.steps), max_items):
        img = overlay_image(trace, i, settings, vertex_colors=colors)
        out.append((img, f"{i}: {trace.steps[i].label}"))
    return out


def _final_error(trace: Trace) -> str:
    for key in ("keypoints_2d_px", "keypoints_2d", "reprojection_px"):
        if key in trace.final.losses and np.isfinite(trace.final.losses[key]):
            return f"{key} {trace.final.losses[key]:.1f}"
    return ""


def overlay_in_crop(trace: Trace, index: int, crop: np.ndarray, center, scale: float,
                    settings: ViewSettings = ViewSettings()) -> np.ndarray:
    """Step ``index``'s mesh over another crop of the same photo (``crop`` cut at ``center``,
    ``scale``); falls back to the trace's own crop when its camera lacks the box."""
    hw = _display_size(crop.shape[:2], settings.size)
    K = intrinsics_in_crop(trace, center, scale, crop.shape[:2])
    step = _step(trace, index)
    if K is None or step.vertices is None or trace.faces is None:
        return overlay_image(trace, index, settings)
    base = cv2.resize(crop, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
    shaded = shade_mesh(step.vertices, trace.faces, K, crop.shape[:2], hw,
                        vertex_colors=trace_vertex_colors(trace, settings.part_colors))
    return blend(base, shaded, settings.alpha)


def compare_strip(traces: Sequence[Trace], settings: ViewSettings = ViewSettings(size=320),
                  reference: Optional[tuple[np.ndarray, np.ndarray, float]] = None
                  ) -> list[tuple[np.ndarray, str]]:
    """Each trace's final overlay and side view side by side, captioned with its method,
    the final 2D keypoint error when recorded, and an 'UNTRAINED' mark where it applies.

    Args:
        reference: (crop (H, W, 3) uint8, center (2,), scale) — draw every mesh over this one
            crop of the photo (so methods with other crops, e.g. CLIFF's 256×192, line up);
            None → each trace over its own crop.
    """
    out = []
    side_settings = ViewSettings(side_size=settings.size, part_colors=settings.part_colors)
    for tr in traces:
        if not tr.steps:
            continue
        if reference is not None:
            front = overlay_in_crop(tr, -1, reference[0], reference[1], reference[2], settings)
        else:
            front = overlay_image(tr, -1, settings)
        side = side_view(tr, -1, settings=side_settings)
        side = cv2.resize(side, (round(side.shape[1] * front.shape[0] / side.shape[0]), front.shape[0]))
        caption = tr.method
        err = _final_error(tr)
        if err:
            caption += f" — {err}"
        if tr.meta.get("weights_trained") is False:
            caption += " — UNTRAINED weights"
        out.append((np.concatenate([front, side], axis=1), caption))
    return out

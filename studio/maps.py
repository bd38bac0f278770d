"""Pictures of a step's named maps: IUV, per-vertex visibility, feature maps, sampling points.

:func:`map_panels` looks at every entry of ``step.maps`` and draws what it can:

* ``iuv`` (H, W, 3) = (part index 0–24, U, V): parts in the body's part colours over the
  crop, U and V with a colour map;
* ``visibility`` / ``vertex_visibility`` (V,) in [0, 1]: the mesh over the crop coloured
  green (visible → trust the per-pixel branch) … red (occluded → trust the regression);
* ``feature_sum`` (H, W) / ``feature_pca`` (H, W, 3): the feature map the step sampled,
  with the step's ``sampling_points`` on top;
* ``sampling_points`` (N, 2) crop pixels: dots on the crop;
* any other (H, W) or (H, W, 3) map as an image, any other (V,) map as mesh colours.

Entries that are not pictures (e.g. ``sampled_vertex_ids``) are skipped.
"""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from core.render import PART_PALETTE
from core.render import draw_points as _draw_points
from core.render import visibility_colors as _visibility_colors
from core.trace import Step, Trace

from .shading import blend, shade_mesh
from .views import ViewSettings, crop_display, trace_intrinsics

__all__ = ["colorize_scalar", "colorize_rgb", "colorize_parts", "draw_points", "map_panels",
           "has_maps", "visibility_colors", "PART_PALETTE"]

SKIP_MAPS = {"sampled_vertex_ids"}
# what each map is, in words (captions); a map not listed is named by its key with spaces
MAP_TITLES = {
    "feature_sum": "feature map, summed over channels",
    "feature_pca": "feature map, 3 principal components as colour",
    "sampling_points": "sampling points",
    "lowpoly_vertices": "low-poly mesh vertices",
    "lowpoly_xy": "low-poly vertices on the crop",
    "vertexpose_xy": "VertexPose branch vertices",
    "regression_xy": "regression branch vertices",
    "fused_xy": "fused vertices",
    "iuv_nearest": "IUV decoded by nearest vertex",
    "iuv_global_average": "IUV decoded by global average",
    "foreground": "foreground",
    "visibility": "visibility",
    "visibility_colors": "visibility (green = VertexPose, red = regression)",
    "visibility_full": "visibility on the full mesh",
    "visibility_render": "visibility rendered",
}


def map_title(name: str) -> str:
    """A map's caption in words (:data:`MAP_TITLES`, else its key with spaces)."""
    return MAP_TITLES.get(name, name.replace("_", " "))
VISIBILITY_NAMES = ("visibility", "vertex_visibility", "visibility_weight")


def colorize_scalar(values: np.ndarray, cmap: int = cv2.COLORMAP_VIRIDIS,
                    lo: Optional[float] = None, hi: Optional[float] = None) -> np.ndarray:
    """(H, W) floats → (H, W, 3) uint8 RGB with a colour map (robust 1–99 % range by default;
    NaN/inf drawn black)."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    if lo is None or hi is None:
        if finite.any():
            plo, phi = np.percentile(v[finite], [1, 99])
        else:
            plo, phi = 0.0, 1.0
        lo = plo if lo is None else lo
        hi = phi if hi is None else hi
    t = np.clip((np.where(finite, v, lo) - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    img = cv2.applyColorMap(np.round(t * 255).astype(np.uint8), cmap)
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    img[~finite] = 0
    return img


def colorize_rgb(values: np.ndarray) -> np.ndarray:
    """(H, W, 3) floats (e.g. a 3-component PCA of features) → uint8, each channel stretched
    to its 1–99 % range."""
    v = np.asarray(values, dtype=np.float64)
    out = np.zeros(v.shape, np.uint8)
    for c in range(3):
        ch = v[..., c]
        finite = np.isfinite(ch)
        if not finite.any():
            continue
        lo, hi = np.percentile(ch[finite], [1, 99])
        t = np.clip((np.where(finite, ch, lo) - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
        out[..., c] = np.round(t * 255)
    return out


def colorize_parts(part_index: np.ndarray, palette: Optional[np.ndarray] = None) -> np.ndarray:
    """(H, W) part indices 0–24 (0 = background) → (H, W, 3) uint8 colours
    (default :data:`core.render.PART_PALETTE`)."""
    pal = PART_PALETTE if palette is None else np.asarray(palette, np.uint8)
    idx = np.clip(np.round(np.nan_to_num(np.asarray(part_index, np.float64))), 0, len(pal) - 1).astype(int)
    return pal[idx]


def draw_points(img: np.ndarray, points: np.ndarray, src_hw: tuple[int, int], color=(255, 60, 60),
                radius: Optional[int] = None) -> np.ndarray:
    """Dots at ``points`` (N, 2) given in continuous pixels of an image of size ``src_hw`` (H, W),
    drawn on a copy of ``img`` (any size: points are rescaled) by :func:`core.render.draw_points`."""
    r = radius if radius is not None else max(1, round(img.shape[1] / 180))
    return _draw_points(img, np.asarray(points, np.float64).reshape(-1, 2), colors=color, radius=r,
                        source_size=tuple(src_hw))


def _upscale(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    return cv2.resize(img, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)


def visibility_colors(values: np.ndarray) -> np.ndarray:
    """(V,) visibility in [0, 1] → (V, 3) colours in [0, 1]: red (0, trust regression) … green (1),
    :func:`core.render.visibility_colors` (NaN counts as 0)."""
    return _visibility_colors(np.nan_to_num(np.asarray(values, np.float64))) / 255.0


def _body_palette(trace: Trace) -> Optional[np.ndarray]:
    if trace.body != "open":
        return None
    try:
        from core.body import load_body

        pal = np.asarray(load_body("open").part_colors, np.uint8)
        return pal if pal.shape == (25, 3) else None
    except Exception:  # noqa: BLE001 - colours are cosmetic
        return None


def has_maps(step: Step) -> bool:
    """Whether :func:`map_panels` has anything to draw for this step."""
    return any(k not in SKIP_MAPS for k in step.maps)


def map_panels(trace: Trace, index: int = -1, settings: ViewSettings = ViewSettings(size=320)
               ) -> list[tuple[np.ndarray, str]]:
    """Pictures of step ``index``'s maps, each (image (H, W, 3) uint8, caption).

    Feature maps get the step's sampling points on top (PyMAF: the 21×21 grid at level 0,
    the projected mesh-aligned vertices at levels 1–2).
    """
    step = trace.steps[index]
    K, crop_hw = trace_intrinsics(trace)
    crop = crop_display(trace, settings.size)
    hw = crop.shape[:2]
    points = step.maps.get("sampling_points")
    if points is not None and (points.ndim != 2 or points.shape[1] != 2):
        points = None
    V = None if step.vertices is None else step.vertices.shape[0]
    panels: list[tuple[np.ndarray, str]] = []
    for name, m in step.maps.items():
        if name in SKIP_MAPS:
            continue
        m = np.asarray(m)
        if name == "iuv" and m.ndim == 3 and m.shape[2] == 3:
            parts = _upscale(colorize_parts(m[..., 0], _body_palette(trace)), hw)
            fg = _upscale((np.round(np.nan_to_num(m[..., 0])) > 0).astype(np.uint8), hw).astype(bool)
            over = crop.copy()
            over[fg] = (0.35 * crop[fg] + 0.65 * parts[fg]).astype(np.uint8)
            panels.append((over, f"IUV parts ({m.shape[0]}×{m.shape[1]})"))
            for c, lab in ((1, "U"), (2, "V")):
                img = _upscale(colorize_scalar(m[..., c], lo=0.0, hi=1.0), hw)
                img[~fg] = (0.3 * crop[~fg]).astype(np.uint8)
                panels.append((img, f"IUV {lab} coordinate"))
        elif name == "sampling_points":
            if points is not None:
                panels.append((draw_points(crop, points, crop_hw), f"sampling points ({len(points)})"))
        elif m.ndim == 1 and V is not None and m.shape[0] == V and trace.faces is not None:
            if name in VISIBILITY_NAMES or "visib" in name:
                colors, caption = visibility_colors(m), f"{map_title(name)}: green = visible, red = occluded"
            else:
                colors, caption = colorize_scalar(m[None])[0].astype(np.float32) / 255.0, f"{map_title(name)} (per vertex)"
            shaded = shade_mesh(step.vertices, trace.faces, K, crop_hw, hw, vertex_colors=colors)
            panels.append((blend(crop, shaded, 0.9), caption))
        elif (m.ndim == 2 and m.shape[1] == 3 and V is not None and m.shape[0] == V
              and trace.faces is not None):
            # per-vertex RGB (e.g. MeshPose's visibility_colors): paint it on the mesh
            rgb = np.nan_to_num(m.astype(np.float32))
            colors = rgb / 255.0 if rgb.max() > 1.0 else rgb
            shaded = shade_mesh(step.vertices, trace.faces, K, crop_hw, hw, vertex_colors=colors)
            panels.append((blend(crop, shaded, 0.9), f"{map_title(name)} (per-vertex colours)"))
        elif m.ndim == 2 and m.shape[1] == 2 and m.shape[0] > 3:
            # a point set in crop pixels (e.g. MeshPose's VertexPose / regression / fused 2D)
            panels.append((draw_points(crop, m, crop_hw), f"{map_title(name)} ({m.shape[0]} points)"))
        elif m.ndim == 2 and min(m.shape) > 3:
            # a 2-D map (feature summaries, masks); lists of 3-vectors or faces are not images
            img = _upscale(colorize_scalar(m), hw)
            if points is not None and name.startswith("feature"):
                img = draw_points(img, points, crop_hw)
            panels.append((img, f"{map_title(name)} ({m.shape[0]}×{m.shape[1]})"))
        elif m.ndim == 3 and m.shape[2] == 3 and min(m.shape[:2]) > 1:
            img = _upscale(colorize_rgb(m), hw)
            if points is not None and name.startswith("feature"):
                img = draw_points(img, points, crop_hw)
            panels.append((img, f"{map_title(name)} ({m.shape[0]}×{m.shape[1]})"))
    return panels

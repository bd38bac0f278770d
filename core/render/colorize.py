"""Turning maps into pictures: IUV → RGB, visibility colours, feature maps → RGB.

All outputs are RGB uint8. Inputs may be numpy or torch.
"""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

__all__ = [
    "PART_PALETTE",
    "LSP6_PALETTE",
    "colorize_labels",
    "iuv_to_rgb",
    "visibility_colors",
    "render_visibility",
    "apply_colormap",
    "feature_map_to_rgb",
]


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _palette(n: int) -> np.ndarray:
    """n distinct colours (uint8): tab20 then tab20b, 0 = black."""
    import matplotlib

    cols = list(matplotlib.colormaps["tab20"].colors) + list(matplotlib.colormaps["tab20b"].colors)
    out = np.zeros((n, 3), np.uint8)
    out[1:] = np.round(np.asarray(cols[: n - 1]) * 255).astype(np.uint8)
    return out


PART_PALETTE = _palette(25)
"""(25, 3) uint8 colour of each DensePose part id; 0 (background) is black."""
PART_PALETTE.setflags(write=False)

LSP6_PALETTE = np.array([[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25],
                         [0, 130, 200], [245, 130, 48], [145, 30, 180]], np.uint8)
"""(7, 3) uint8 colours of the LSP 6-part labels (0 background, see :mod:`core.render.parts`)."""
LSP6_PALETTE.setflags(write=False)


def colorize_labels(labels, palette=PART_PALETTE) -> np.ndarray:
    """Integer label map (..., H, W) → (..., H, W, 3) uint8 with a (N, 3) palette."""
    labels = _numpy(labels).astype(np.int64)
    palette = np.asarray(palette, np.uint8)
    if labels.size and (labels.min() < 0 or labels.max() >= len(palette)):
        raise ValueError(f"labels must be in [0, {len(palette)}), got range [{labels.min()}, {labels.max()}]")
    return palette[labels]


def iuv_to_rgb(part, u=None, v=None, mode: str = "iuv") -> np.ndarray:
    """DensePose-like pictures of IUV maps.

    Args:
        part: (..., H, W) part ids 0..24; u, v: (..., H, W) in [0, 1] (needed for modes using them).
        mode: "part" — I as a categorical colour (:data:`PART_PALETTE`);
              "u" / "v" — that coordinate through the "jet" colormap on the body;
              "iuv" — channels (R, G, B) = (I/24, U, V)·255, as PyMAF stores its IUV images.
    Returns:
        (..., H, W, 3) uint8; background black.
    """
    part = _numpy(part).astype(np.int64)
    if mode == "part":
        return colorize_labels(part)
    if u is None or v is None:
        raise ValueError(f"iuv_to_rgb(mode={mode!r}) needs u and v")
    u, v = _numpy(u).astype(np.float64), _numpy(v).astype(np.float64)
    if u.shape != part.shape or v.shape != part.shape:
        raise ValueError(f"part, u, v must have one shape, got {part.shape}, {u.shape}, {v.shape}")
    fg = part > 0
    if mode == "iuv":
        rgb = np.stack([part / 24.0, u, v], axis=-1)
        return np.where(fg[..., None], np.clip(np.round(rgb * 255), 0, 255), 0).astype(np.uint8)
    if mode in ("u", "v"):
        rgb = apply_colormap(u if mode == "u" else v, "jet", vmin=0.0, vmax=1.0)
        return np.where(fg[..., None], rgb, 0).astype(np.uint8)
    raise ValueError(f"mode must be 'part', 'u', 'v' or 'iuv', got {mode!r}")


def visibility_colors(weights) -> np.ndarray:
    """Per-vertex colours for visibility weights: 1 → green (0, 255, 0), 0 → red (255, 0, 0), linear.

    Args:
        weights: (..., V) in [0, 1] (bool accepted). Returns (..., V, 3) uint8.
    """
    w = np.clip(_numpy(weights).astype(np.float64), 0.0, 1.0)
    rgb = np.stack([1.0 - w, w, np.zeros_like(w)], axis=-1)
    return np.round(rgb * 255).astype(np.uint8)


def render_visibility(image, vertices, faces, K, weights, mode: str = "mesh", alpha: float = 0.8,
                      radius: Optional[int] = None, supersample: int = 1) -> np.ndarray:
    """Show per-vertex visibility over an image (green = visible / weight 1, red = 0).

    Args:
        image: (H, W, 3); vertices: (V, 3) camera-frame; faces: (F, 3); K: (3, 3); weights: (V,).
        mode: "mesh" — the shaded mesh with the colours interpolated over faces;
              "points" — one dot per vertex at its projection, visible ones drawn last.
        supersample: anti-aliasing for "mesh" (see :func:`core.render.overlay.shade_mesh`).
    Returns:
        (H, W, 3) uint8.
    """
    from .camera import project_points
    from .draw import draw_points
    from .overlay import render_overlay

    colors = visibility_colors(weights)
    if mode == "mesh":
        return render_overlay(image, vertices, faces, K, vertex_colors=colors, alpha=alpha,
                              supersample=supersample)
    if mode == "points":
        pts = project_points(_numpy(vertices)[None], K)[0]
        order = np.argsort(_numpy(weights).astype(np.float64), kind="stable")
        return draw_points(image, pts[order], colors[order], radius=radius)
    raise ValueError(f"mode must be 'mesh' or 'points', got {mode!r}")


def apply_colormap(values, cmap: str = "viridis", vmin: Optional[float] = None,
                   vmax: Optional[float] = None) -> np.ndarray:
    """Scalar map (...) → (..., 3) uint8 through a matplotlib colormap (range: data min/max by default)."""
    import matplotlib

    x = _numpy(values).astype(np.float64)
    finite = np.isfinite(x)
    lo = float(np.min(x[finite])) if vmin is None and finite.any() else (vmin or 0.0)
    hi = float(np.max(x[finite])) if vmax is None and finite.any() else (1.0 if vmax is None else vmax)
    scaled = np.where(finite, (x - lo) / (hi - lo) if hi > lo else 0.0, 0.0)
    rgba = matplotlib.colormaps[cmap](np.clip(scaled, 0.0, 1.0))
    return np.round(rgba[..., :3] * 255).astype(np.uint8)


def feature_map_to_rgb(features, mode: str = "sum", cmap: str = "viridis", out_size=None) -> np.ndarray:
    """Picture of a (C, H, W) feature map.

    Args:
        features: (C, H, W) numpy or torch.
        mode: "sum" — channel sum through ``cmap`` (min–max scaled);
              "pca" — the 3 leading principal components of the per-pixel C-vectors as
              R, G, B (each scaled by its 1st–99th percentile range).
        out_size: (H', W') to resize to (nearest neighbour, so cells stay visible); None keeps H, W.
    Returns:
        (H', W', 3) uint8.
    """
    f = _numpy(features).astype(np.float64)
    if f.ndim != 3:
        raise ValueError(f"features must be (C, H, W), got {f.shape}")
    C, H, W = f.shape
    if mode == "sum":
        rgb = apply_colormap(f.sum(0), cmap)
    elif mode == "pca":
        X = f.reshape(C, -1).T                                     # (H·W, C)
        X = X - X.mean(0, keepdims=True)
        k = min(3, C, X.shape[0])
        if k == 0 or not np.any(X):
            comps = np.zeros((X.shape[0], 3))
        else:
            _, _, Vt = np.linalg.svd(X, full_matrices=False)
            comps = np.zeros((X.shape[0], 3))
            comps[:, :k] = X @ Vt[:k].T
        out = np.zeros_like(comps)
        for i in range(3):
            lo, hi = np.percentile(comps[:, i], [1, 99])
            if hi > lo:
                out[:, i] = np.clip((comps[:, i] - lo) / (hi - lo), 0.0, 1.0)
        rgb = np.round(out.reshape(H, W, 3) * 255).astype(np.uint8)
    else:
        raise ValueError(f"mode must be 'sum' or 'pca', got {mode!r}")
    if out_size is not None:
        oh, ow = (out_size, out_size) if isinstance(out_size, int) else out_size
        rgb = cv2.resize(rgb, (int(ow), int(oh)), interpolation=cv2.INTER_NEAREST)
    return rgb
